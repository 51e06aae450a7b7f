"""What the supervisor reports of the attempts it ends (a timeout, a crash, an
executor over its memory limit): their metrics and spans. The attempt's own
process is dead, so it could report nothing itself."""

from __future__ import annotations

from typing import Any

from cairn.observability import _metrics, _tracing

_COUNTED = {"timed_out": "timeouts", "out_of_memory": "oom_kills"}


def attempt_ended(
    store: Any,
    key: Any,
    application: str,
    failure: Any,
    outcome: str,
    now_ms: float,
) -> None:
    """An attempt the supervisor ended and recorded (``failure``, a CallFailure);
    ``outcome`` as stored: ``timed_out``, ``out_of_memory``, ``crashed`` or
    ``interrupted``."""
    started_ms = failure.started_at_ms or now_ms
    final = failure.retry_delay_s is None
    if _metrics.M is not None:
        took_s = max(0.0, now_ms - started_ms) / 1000.0
        _metrics.M.call_duration.labels(key.function, outcome).observe(took_s)
        counter = _COUNTED.get(outcome)
        if counter is not None:
            getattr(_metrics.M, counter).labels(key.function).inc()
        if not final and outcome != "interrupted":
            _metrics.M.retries.labels(key.function).inc()
        if final and key.kind == "app":
            _metrics.M.requests_finished.labels(application, "failed").inc()
    trace = _tracing.call_trace(
        key.request_id, failure.run, application, key, store, inline=False
    )
    if trace is None:
        return
    error = RuntimeError(str(failure.error.get("message") or outcome))
    trace.attempt_started(failure.attempt, started_ms)
    trace.attempt_ended(outcome, error)
    if final:
        trace.call_ended("failed", error, started_ms)
        if key.kind == "app":
            request = trace.request
            request.request_span(
                application, request.started_ms or started_ms, "failed", error
            )
    _tracing.flush()
