"""``RequestContext``: request id, headers, durable state, progress and metrics."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from cairn import _events, _serialization, errors
from cairn._execution import frames as _frames
from cairn._execution import waits as _waits
from cairn.observability import _metrics, _streaming
from cairn.store import Event

MAX_STATE_KEY_BYTES = 1024


class Headers(Mapping[str, str]):
    """The invoking HTTP request's headers, case-insensitive."""

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self._items: dict[str, list[str]] = {}
        for name, value in (headers or {}).items():
            self._items.setdefault(name.lower(), []).append(value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][-1]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def getlist(self, name: str) -> list[str]:
        """Every value of a header."""
        return list(self._items.get(name.lower(), []))


class RequestState:
    """Key/value state shared by every call of one request, durable and replayed.

    Values are pickled. A call's writes are recorded with its checkpoint, so a
    replay that serves the call from its checkpoint re-applies them.
    """

    def __init__(self, frame: _frames.Frame) -> None:
        self._frame = frame

    def set(self, key: str, value: Any) -> None:
        """Set ``key`` to ``value``."""
        _check_key(key)
        blob = _serialization.dumps(value, f"request state value {key!r}")
        _frames.process().store.state_set(self._frame.run.request_id, key, blob)
        self._frame.state_writes[key] = blob

    def get(self, key: str, default: Any | None = None) -> Any | None:
        """The value of ``key``, or ``default``."""
        _check_key(key)
        blob = _frames.process().store.state_get(self._frame.run.request_id, key)
        if blob is None:
            return default
        return _serialization.loads(blob, f"request state value {key!r}")


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not key:
        raise errors.SDKUsageError(
            f"request state keys must be non-empty strings, got {key!r}"
        )
    if len(key.encode()) > MAX_STATE_KEY_BYTES:
        raise errors.SDKUsageError(
            f"request state key is {len(key.encode())} bytes; the limit is {MAX_STATE_KEY_BYTES}"
        )


class FunctionProgress:
    """Progress of the running call, streamed to clients; each update resets its timeout."""

    def __init__(self, frame: _frames.Frame) -> None:
        self._frame = frame

    def update(
        self,
        current: float,
        total: float,
        message: str | None = None,
        attributes: dict[str, str] | None = None,
    ) -> None:
        """Report ``current`` of ``total`` steps done, and push this call's deadline.

        Raises:
            SDKUsageError: a number is negative or not finite, or a type is wrong.
        """
        for label, value in (("current", current), ("total", total)):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise errors.SDKUsageError(
                    f"progress.update({label}=...) must be a finite number >= 0, got {value!r}"
                )
        if message is not None and not isinstance(message, str):
            raise errors.SDKUsageError(
                f"progress message must be a str or None, got {message!r}"
            )
        if attributes is not None and (
            not isinstance(attributes, dict)
            or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
            )
        ):
            raise errors.SDKUsageError("progress attributes must map str to str")
        frame = self._frame
        frame.heartbeat()
        step, of = _number(current), _number(total)
        text = (
            message
            if message is not None
            else (f"{frame.key.function}: executing step {step} of {of}")
        )
        now = _frames.process().clock.now_ms()
        payload: dict[str, object] = {
            "request_id": frame.run.request_id,
            "function_name": frame.key.function,
            "function_run_id": frame.key.id,
            "message": text,
            "step": step,
            "total": of,
            "attributes": dict(attributes or {}),
            "created_at": _events.iso(now),
        }
        _frames.process().store.set_progress(
            frame.run.request_id,
            payload,
            Event(kind="RequestProgressUpdated", payload=payload, created_at_ms=now),
        )


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


class Metrics:
    """Counters and timers, recorded as events of the request."""

    def __init__(self, frame: _frames.Frame) -> None:
        self._frame = frame

    def counter(self, name: str, value: int = 1) -> None:
        """Add ``value`` to counter ``name``."""
        self._emit("MetricCounterIncremented", name, value)

    def timer(self, name: str, value: float) -> None:
        """Record a duration ``value`` (seconds) under ``name``."""
        self._emit("MetricTimerRecorded", name, value)

    def _emit(self, kind: str, name: str, value: float) -> None:
        if not isinstance(name, str) or not name:
            raise errors.SDKUsageError(
                f"metric names must be non-empty strings, got {name!r}"
            )
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise errors.SDKUsageError(
                f"metric value must be a finite number, got {value!r}"
            )
        if _metrics.M is not None:
            function = self._frame.key.function
            if kind == "MetricCounterIncremented":
                _metrics.M.user_counter.labels(name, function).inc(value)
            else:
                _metrics.M.user_timer.labels(name, function).observe(value)
        now = _frames.process().clock.now_ms()
        payload = {
            "request_id": self._frame.run.request_id,
            "function_name": self._frame.key.function,
            "name": name,
            "value": value,
            "created_at": _events.iso(now),
        }
        _frames.process().store.append_events(
            self._frame.run.request_id,
            [Event(kind=kind, payload=payload, created_at_ms=now)],
        )


class RequestContext:
    """The context of the request the running call belongs to.

    Get it with ``RequestContext.get()`` inside a function call.
    """

    def __init__(self, frame: _frames.Frame) -> None:
        self._frame = frame
        self.state = RequestState(frame)
        self.progress = FunctionProgress(frame)
        self.metrics = Metrics(frame)
        self.stream = _streaming.RequestStream(frame)

    @classmethod
    def get(cls) -> RequestContext:
        """The context of the running call.

        Raises:
            SDKUsageError: outside a function call, or in a thread the user started.
        """
        return cls(_frames.current())

    @property
    def request_id(self) -> str:
        """The request's id."""
        return self._frame.run.request_id

    @property
    def headers(self) -> Headers:
        """Headers of the HTTP request that invoked the application (may be empty)."""
        run = self._frame.run
        if run.headers is None:
            record = _frames.process().store.get_request(run.request_id)
            run.headers = dict(record.headers) if record else {}
        return Headers(run.headers)

    @property
    def function_call_id(self) -> str:
        """The durable id of the running call."""
        return self._frame.key.id

    def sleep(self, seconds: float) -> None:
        """Sleep durably: across crashes and restarts, and not again when a replay
        passes here after the timer fired. A sleep over a second parks the request:
        it holds no process until the timer fires (see docs/howto/waits.md).

        Raises:
            SDKUsageError: ``seconds`` is negative or not a finite number.
        """
        _waits.sleep(seconds)

    def wait_for_signal(self, name: str, timeout_s: float | None = None) -> Any:
        """Wait for the signal ``name`` sent to this request (``Request.signal``,
        ``cairn requests signal``, the HTTP API, the dashboard) and return its
        value. A signal sent before the wait is kept for it; each signal is
        delivered to one wait. The request parks while it waits.

        Raises:
            TimeoutError: no such signal came within ``timeout_s`` seconds.
        """
        return _waits.wait_for_signal(name, timeout_s)

    def __repr__(self) -> str:
        return f"RequestContext(request_id={self.request_id!r})"
