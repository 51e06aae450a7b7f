"""Spans of calls and attempts, in one process (the execution core without
executors) with the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace

from cairn._execution import driver
from cairn.observability import _tracing
from tests.unit.core_support import core, spec


def _key(frame: Any, name: str) -> Any:
    return frame.child_key(["FunctionCall", name], [], name, "call")


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_a_call_is_a_span_over_its_attempts(tmp_path, spans):
    outcomes = iter([ValueError("one"), ValueError("two"), None])

    def flaky(x: int) -> int:
        error = next(outcomes)
        if error is not None:
            raise error
        return x + 1

    flaky_spec = spec("core_flaky", flaky, max_retries=3, delay_s=1.0)
    with core(tmp_path) as c, c.run() as frame:
        key = _key(frame, "core_flaky")
        assert driver.run_inline(frame, key, flaky_spec, (4,), {}) == 5
    (call,) = spans.named("call ")
    attempts = spans.named("attempt ")
    assert [_attrs(a)["cairn.attempt"] for a in attempts] == [1, 2, 3]
    assert [_attrs(a)["cairn.outcome"] for a in attempts] == [
        "failed",
        "failed",
        "succeeded",
    ]
    assert [a.status.status_code.name for a in attempts] == ["ERROR", "ERROR", "UNSET"]
    assert all(a.parent.span_id == call.context.span_id for a in attempts)
    assert call.context.span_id == _tracing.call_span_id(key.id, 1)
    assert _attrs(call) == {
        "cairn.request_id": c.request_id,
        "cairn.application": "core_app",
        "cairn.function": "core_flaky",
        "cairn.call_id": key.id,
        "cairn.run": 1,
        "cairn.outcome": "succeeded",
        "cairn.served": False,
    }
    # No span is current in the test: the call hangs under its caller's call span,
    # in the trace every process derives from the request id.
    assert call.parent.span_id == _tracing.call_span_id(c.request_id, 1)
    trace_ids = {s.context.trace_id for s in spans.all()}
    assert trace_ids == {_tracing.RequestTrace(c.request_id, 1, {}).trace_id}
    assert call.start_time <= attempts[0].start_time
    assert call.end_time >= attempts[-1].end_time


def test_a_final_failure_marks_the_call_failed(tmp_path, spans):
    def broken() -> None:
        raise KeyError("price")

    with core(tmp_path) as c, c.run() as frame:
        with pytest.raises(Exception, match="price"):
            driver.run_inline(
                frame, _key(frame, "core_b"), spec("core_b", broken), (), {}
            )
    (call,) = spans.named("call ")
    assert _attrs(call)["cairn.outcome"] == "failed"
    assert call.status.status_code.name == "ERROR"
    assert [e.name for e in call.events] == ["exception"]


def test_user_spans_nest_under_the_attempt_and_children_under_user_spans(
    tmp_path, spans
):
    user_tracer = spans.provider.get_tracer("shop")

    def leaf() -> int:
        return 1

    def outer() -> int:
        with user_tracer.start_as_current_span("user work"):
            from cairn._execution import frames

            inner = frames.current()
            return driver.run_inline(
                inner, _key(inner, "core_leaf"), spec("core_leaf", leaf), (), {}
            )

    with core(tmp_path) as c, c.run() as frame:
        driver.run_inline(
            frame, _key(frame, "core_outer"), spec("core_outer", outer), (), {}
        )
    by_name = {s.name: s for s in spans.all()}
    user = by_name["user work"]
    assert user.parent.span_id == by_name["attempt core_outer"].context.span_id
    assert by_name["call core_leaf"].parent.span_id == user.context.span_id
    assert (
        by_name["attempt core_leaf"].parent.span_id
        == by_name["call core_leaf"].context.span_id
    )
    assert len({s.context.trace_id for s in spans.all()}) == 1


def test_a_replayed_call_is_a_short_span_marked_served(tmp_path, spans):
    runs: list[int] = []

    def once(x: int) -> int:
        runs.append(x)
        return x * 10

    once_spec = spec("core_once", once)
    with core(tmp_path) as c:
        with c.run() as frame:
            driver.run_inline(frame, _key(frame, "core_once"), once_spec, (1,), {})
        spans.exporter.clear()
        with c.run(run=2) as frame:
            key = _key(frame, "core_once")
            assert driver.run_inline(frame, key, once_spec, (1,), {}) == 10
    assert runs == [1]
    (served,) = spans.all()
    assert served.name == "call core_once"
    assert _attrs(served)["cairn.served"] is True
    assert _attrs(served)["cairn.outcome"] == "served"
    assert _attrs(served)["cairn.run"] == 2
    assert served.context.span_id == _tracing.call_span_id(key.id, 2)
    assert served.end_time - served.start_time < 50_000_000  # ns


def test_no_provider_no_tracing_work(tmp_path):
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    _tracing.reset()
    assert _tracing.tracer() is None
    assert _tracing.current_traceparent() == {}
    with core(tmp_path) as c, c.run() as frame:
        key = _key(frame, "core_plain")
        attempt = driver.Attempt(
            frame.run, key, spec("core_plain", int), None, b"", frame
        )
        assert attempt.trace is None


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",  # no flags
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero span
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # version ff
        "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",  # not hex
    ],
)
def test_a_malformed_traceparent_is_ignored(header):
    assert _tracing.parse_traceparent(header) is None
    request = _tracing.RequestTrace("req-1", 1, {"traceparent": header})
    assert request.remote is None
    assert request.trace_id == _tracing.RequestTrace("req-1", 1, {}).trace_id


def test_a_traceparent_continues_the_callers_trace(spans):
    header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    request = _tracing.RequestTrace("req-2", 3, {"TraceParent": header})
    assert request.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    request.request_span("shop", 1_000.0, "succeeded", None)
    (span,) = spans.all()
    assert span.parent.span_id == 0xB7AD6B7169203331 and span.parent.is_remote
    assert span.context.trace_id == request.trace_id
    assert span.context.span_id == _tracing.request_span_id("req-2", 3)
    assert _attrs(span)["cairn.run"] == 3
    assert span.start_time == 1_000_000_000
