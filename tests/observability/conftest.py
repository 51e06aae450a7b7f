"""Fixtures of the observability tests: an in-memory span exporter, an OTLP receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from cairn.observability import _tracing
from tests.observability.otlp_receiver import Receiver
from tests.observability.tracing_support import Spans


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[Spans]:
    """The SDK with the in-memory exporter as this test's tracer provider (the
    process's global provider is left alone)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    _tracing.reset()
    yield Spans(provider, exporter)
    _tracing.reset()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An OTLP/HTTP receiver on loopback."""
    running = Receiver()
    yield running
    running.server.shutdown()
    running.server.server_close()
