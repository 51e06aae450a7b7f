"""OpenTelemetry spans of requests, calls and attempts, with the application's
tracer provider (``cairn[otel]``); nothing at all when none is configured.

A request's calls run in several processes, on several hosts, so a span's parent
must be known without asking its process. Two spans get ids every process can
compute: a request run's span (from its request id and run) and a call's span
(from its durable id and run). A call's span is emitted once, when the call ends,
by the process that ends it, with the time it began; its attempts are real spans
under it, and user code's own spans nest under the running attempt. A request
started with a W3C ``traceparent`` (an HTTP invoke's header, or the span around
``run_local_application``) belongs to that trace; otherwise its trace id derives
from its request id.

Choosing an id needs the OpenTelemetry SDK's ``Tracer`` (its ``id_generator``);
with another implementation, spans still nest within a process, and a call run
in another process starts its own branch under a parent no one exports.
"""

from __future__ import annotations

import contextvars
import hashlib
import os
import re
import sys
import time
from typing import Any

# OpenTelemetry, imported once something needs it: a provider can only have been
# set by code that imported it, so until then tracing costs a dict lookup, and
# importing Cairn does not import OpenTelemetry (about 0.1 s).
otel_trace: Any = None
otel_context: Any = None
_PROVIDER_ENV = "OTEL_PYTHON_TRACER_PROVIDER"


def _load() -> bool:
    """Import OpenTelemetry (the ``cairn[otel]`` extra); False without it."""
    global otel_trace, otel_context
    if otel_trace is None:
        try:
            from opentelemetry import context, trace
        except ImportError:  # pragma: no cover - without the extra
            return False
        otel_trace, otel_context = trace, context
    return True


TRACER_NAME = "cairn"
TRACEPARENT = "traceparent"
_TRACEPARENT_RE = re.compile(
    r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$"
)
_SAMPLED = 0x01

# The ids the next span must get (trace, span), for ``_ChosenIds``.
_chosen: contextvars.ContextVar[tuple[int | None, int] | None] = contextvars.ContextVar(
    "cairn_span_ids", default=None
)
_tracer: Any = None
# Spans ended since the last flush (an idle executor flushes only then).
_pending = False


class _ChosenIds:
    """The SDK tracer's id generator, giving the ids ``_chosen`` holds when set."""

    def __init__(self, fallback: Any) -> None:
        self._fallback = fallback

    def generate_span_id(self) -> int:
        chosen = _chosen.get()
        return self._fallback.generate_span_id() if chosen is None else chosen[1]

    def generate_trace_id(self) -> int:
        chosen = _chosen.get()
        if chosen is None or chosen[0] is None:
            return int(self._fallback.generate_trace_id())
        return chosen[0]

    def is_trace_id_random(self) -> bool:
        return _chosen.get() is None and bool(self._fallback.is_trace_id_random())


def tracer() -> Any:
    """Cairn's tracer from the application's tracer provider, or None (no
    OpenTelemetry, or no provider set: Cairn then does no tracing work)."""
    global _tracer
    if _tracer is not None:
        return _tracer
    if "opentelemetry.trace" not in sys.modules and not _provider_env():
        return None
    if not _load():
        return None
    provider = otel_trace.get_tracer_provider()
    if isinstance(
        provider, otel_trace.ProxyTracerProvider | otel_trace.NoOpTracerProvider
    ):
        return None
    made: Any = provider.get_tracer(TRACER_NAME)
    generator = getattr(made, "id_generator", None)
    if generator is not None:
        made.id_generator = _ChosenIds(generator)
    _tracer = made
    return made


def reset() -> None:
    """Forget the tracer (tests that swap providers)."""
    global _tracer
    _tracer = None
    _forget_provider_env()


# Whether the provider's environment variable is set, read once per process (and
# again in a forked child): a miss in os.environ costs microseconds, and every
# call asks whether anyone traces.
_provider_env_set: bool | None = None


def _provider_env() -> bool:
    global _provider_env_set
    if _provider_env_set is None:
        _provider_env_set = bool(os.environ.get(_PROVIDER_ENV))
    return _provider_env_set


def _forget_provider_env() -> None:
    global _provider_env_set
    _provider_env_set = None


os.register_at_fork(after_in_child=_forget_provider_env)


def _id(*parts: object, bits: int) -> int:
    digest = hashlib.sha256("\0".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[: bits // 8], "big") or 1


def call_span_id(call_id: str, run: int) -> int:
    """The span id of a call in a run of its request (every process agrees)."""
    return _id("call", call_id, run, bits=64)


def request_span_id(request_id: str, run: int) -> int:
    """The span id of a run of a request."""
    return _id("request", request_id, run, bits=64)


def parse_traceparent(value: str | None) -> Any:
    """The remote span context of a W3C ``traceparent``, or None when it is absent
    or malformed (the spec says to ignore an invalid one and start a new trace)."""
    if not isinstance(value, str) or not _load():
        return None
    match = _TRACEPARENT_RE.match(value.strip().lower())
    if match is None or match.group(1) == "ff":
        return None
    trace_id, span_id = int(match.group(2), 16), int(match.group(3), 16)
    if trace_id == 0 or span_id == 0:
        return None
    return otel_trace.SpanContext(
        trace_id,
        span_id,
        is_remote=True,
        trace_flags=otel_trace.TraceFlags(int(match.group(4), 16)),
    )


def current_traceparent() -> dict[str, str]:
    """``{"traceparent": ...}`` for the span current here (empty when none)."""
    if tracer() is None:
        return {}
    context = otel_trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    flags = int(context.trace_flags)
    return {
        TRACEPARENT: f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"
    }


class RequestTrace:
    """What every span of one run of a request shares: its trace id, and the
    request span's context (the root call's parent)."""

    def __init__(self, request_id: str, run: int, headers: dict[str, str]) -> None:
        _load()
        lowered = {k.lower(): v for k, v in headers.items()}
        self.remote = parse_traceparent(lowered.get(TRACEPARENT))
        self.trace_id = (
            self.remote.trace_id
            if self.remote is not None
            else _id("trace", request_id, bits=128)
        )
        self.flags = otel_trace.TraceFlags(
            int(self.remote.trace_flags) if self.remote is not None else _SAMPLED
        )
        self.request_id = request_id
        self.run = run
        self.started_ms: float | None = None

    def context_of(self, span_id: int) -> Any:
        """A context whose current span is the (possibly remote) span ``span_id``."""
        span_context = otel_trace.SpanContext(
            self.trace_id, span_id, is_remote=False, trace_flags=self.flags
        )
        return otel_trace.set_span_in_context(otel_trace.NonRecordingSpan(span_context))

    def request_span(
        self,
        application: str,
        started_ms: float,
        outcome: str,
        error: BaseException | None,
    ) -> None:
        """Emit the span of this run of the request (when its application call ended)."""
        made = tracer()
        if made is None:
            return
        parent = (
            otel_trace.set_span_in_context(otel_trace.NonRecordingSpan(self.remote))
            if self.remote is not None
            else otel_context.Context()
        )
        _emit(
            made,
            f"request {application}",
            parent,
            (
                None if self.remote is not None else self.trace_id,
                request_span_id(self.request_id, self.run),
            ),
            started_ms,
            {
                "cairn.request_id": self.request_id,
                "cairn.application": application,
                "cairn.run": self.run,
                "cairn.outcome": outcome,
            },
            error,
            kind=otel_trace.SpanKind.SERVER,
        )


def _emit(
    made: Any,
    name: str,
    parent: Any,
    ids: tuple[int | None, int],
    started_ms: float,
    attributes: dict[str, Any],
    error: BaseException | None,
    kind: Any = None,
) -> None:
    token = _chosen.set(ids)
    try:
        span = made.start_span(
            name,
            context=parent,
            kind=kind or otel_trace.SpanKind.INTERNAL,
            attributes=attributes,
            start_time=int(started_ms * 1_000_000),
        )
    finally:
        _chosen.reset(token)
    _end(span, error)


def _end(span: Any, error: BaseException | None) -> None:
    global _pending
    if error is not None:
        span.record_exception(error)
        span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, str(error)))
    span.end()
    _pending = True


class CallTrace:
    """The spans of one call in this process: its attempts, and the call's own
    span when it ends here. ``parent`` is the context the call was made in (an
    inline call), or None for a dispatched call (its caller's call span)."""

    def __init__(
        self, request: RequestTrace, key: Any, application: str, parent: Any = None
    ) -> None:
        self.request = request
        self.key = key
        self.application = application
        if (
            parent is not None
            and otel_trace.get_current_span(parent).get_span_context().is_valid
        ):
            self.parent = parent
        elif key.parent_id is None:
            self.parent = request.context_of(
                request_span_id(request.request_id, request.run)
            )
        else:
            self.parent = request.context_of(call_span_id(key.parent_id, request.run))
        self.span_id = call_span_id(key.id, request.run)
        self.started_ms: float | None = None
        self._span: Any = None
        self._token: Any = None

    def _attributes(self) -> dict[str, Any]:
        return {
            "cairn.request_id": self.request.request_id,
            "cairn.application": self.application,
            "cairn.function": self.key.function,
            "cairn.call_id": self.key.id,
            "cairn.run": self.request.run,
        }

    def attempt_started(self, attempt: int, started_ms: float | None = None) -> None:
        """An attempt starts: its span becomes the current one for user code."""
        made = tracer()
        if made is None:
            return
        now_ms = started_ms if started_ms is not None else time.time() * 1000
        if self.started_ms is None:
            self.started_ms = now_ms
        self._span = made.start_span(
            f"attempt {self.key.function}",
            context=self.request.context_of(self.span_id),
            attributes={**self._attributes(), "cairn.attempt": attempt},
            start_time=int(now_ms * 1_000_000),
        )
        self._token = otel_context.attach(otel_trace.set_span_in_context(self._span))

    def attempt_ended(self, outcome: str, error: BaseException | None = None) -> None:
        """The attempt is over (``outcome``: succeeded, failed, retrying, …)."""
        span, self._span = self._span, None
        if span is None:
            return
        if self._token is not None:
            otel_context.detach(self._token)
            self._token = None
        span.set_attribute("cairn.outcome", outcome)
        _end(span, error)

    def call_ended(
        self,
        outcome: str,
        error: BaseException | None = None,
        started_ms: float | None = None,
    ) -> None:
        """The call's final outcome in this run: emit its span."""
        made = tracer()
        if made is None:
            return
        began = started_ms or self.started_ms or time.time() * 1000
        _emit(
            made,
            f"call {self.key.function}",
            self.parent,
            (None, self.span_id),
            began,
            {**self._attributes(), "cairn.outcome": outcome, "cairn.served": False},
            error,
        )

    def served(self) -> None:
        """The call was served from its checkpoint: a short span, marked served."""
        made = tracer()
        if made is None:
            return
        _emit(
            made,
            f"call {self.key.function}",
            self.parent,
            (None, self.span_id),
            time.time() * 1000,
            {**self._attributes(), "cairn.outcome": "served", "cairn.served": True},
            None,
        )


def current_context() -> Any:
    """The OpenTelemetry context here (an inline call's parent)."""
    return otel_context.get_current()


def flush(timeout_ms: int = 5000) -> None:
    """Export the spans the provider holds, if any ended since the last flush (an
    executor going idle or about to exit, a request about to finish)."""
    global _pending
    if not _pending or otel_trace is None:
        return
    _pending = False
    force_flush = getattr(otel_trace.get_tracer_provider(), "force_flush", None)
    if force_flush is not None:
        force_flush(timeout_ms)


_requests: dict[tuple[str, int], RequestTrace] = {}
_MAX_REQUESTS = 256


def request_trace(request_id: str, run: int, store: Any) -> RequestTrace:
    """The trace of a run of a request (its stored headers read once per process)."""
    found = _requests.get((request_id, run))
    if found is None:
        record = store.get_request(request_id)
        found = RequestTrace(request_id, run, dict(record.headers) if record else {})
        if record is not None:
            found.started_ms = record.started_at_ms or record.created_at_ms
        if len(_requests) >= _MAX_REQUESTS:
            _requests.pop(next(iter(_requests)))
        _requests[(request_id, run)] = found
    return found


def call_trace(
    request_id: str, run: int, application: str, key: Any, store: Any, *, inline: bool
) -> CallTrace | None:
    """The spans of a call about to run here, or None when nobody traces."""
    if tracer() is None:
        return None
    request = request_trace(request_id, run, store)
    return CallTrace(request, key, application, current_context() if inline else None)
