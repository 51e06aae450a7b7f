"""Logging through the standard ``logging`` module, with the running call's context.

Every record created inside a function call (Cairn's own and the user's) carries
``cairn_request_id``, ``cairn_call_id``, ``cairn_function`` and ``cairn_attempt``,
so a log line can be joined to its request, its call and its trace. The names are
prefixed: a plain ``request_id`` would make ``extra={"request_id": ...}`` raise,
as ``logging`` refuses an ``extra`` key that a record already has.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

#: record attribute -> key in a JSON line / the text suffix
CONTEXT_FIELDS = {
    "cairn_request_id": "request_id",
    "cairn_call_id": "call_id",
    "cairn_function": "function",
    "cairn_attempt": "attempt",
}
#: the extra key under which ``Logger`` passes its structured fields
FIELDS_ATTRIBUTE = "cairn_fields"
LOG_FORMATS = ("text", "json")

_installed = False


class _Frame(Protocol):
    """What a log record reads of the running call (``_execution.frames.Frame``)."""

    @property
    def run(self) -> Any: ...
    @property
    def key(self) -> Any: ...
    @property
    def attempt(self) -> int: ...


def install_log_context(current: Callable[[], _Frame | None]) -> None:
    """Make every record created inside a call (``current()``, the running call)
    carry the call's context: once per process; a record factory sees the
    records of every logger, the user's too."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        frame = current()
        if frame is not None:
            record.cairn_request_id = frame.run.request_id
            record.cairn_call_id = frame.key.id
            record.cairn_function = frame.key.function
            record.cairn_attempt = frame.attempt
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


def context_of(record: logging.LogRecord) -> dict[str, Any]:
    """The call context a record carries (empty outside a call)."""
    return {
        key: getattr(record, attribute)
        for attribute, key in CONTEXT_FIELDS.items()
        if hasattr(record, attribute)
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the call's context,
    ``Logger`` fields and the exception's traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **context_of(record),
            **getattr(record, FIELDS_ATTRIBUTE, {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """The message, then the call's context and ``Logger`` fields as ``key=value``."""

    def __init__(self, fmt: str = "%(message)s") -> None:
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        pairs = {**context_of(record), **getattr(record, FIELDS_ATTRIBUTE, {})}
        if pairs:
            text += " [" + " ".join(f"{k}={v}" for k, v in pairs.items()) + "]"
        return text


def _iso(created_s: float) -> str:
    seconds = int(created_s)
    millis = int((created_s - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class _StdoutHandler(logging.Handler):
    """Writes to whatever ``sys.stdout`` is at the time (tests and notebooks swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
            sys.stdout.flush()
        except Exception:
            self.handleError(record)


#: where ``Logger`` lines go while the application configured no logging: JSON
#: lines on stdout at every level, as Tensorlake's ``Logger`` prints them
_fallback = _StdoutHandler()
_fallback.setFormatter(JsonFormatter())

APP_LOGGER = "cairn.app"


def log_structured(level: int, message: str, fields: dict[str, Any]) -> None:
    """Log ``message`` with structured ``fields`` on the ``cairn.app`` logger.

    With no handler configured anywhere (a script that never set up logging), the
    line is printed to stdout as JSON, as Tensorlake's ``Logger`` does.
    """
    logger = logging.getLogger(APP_LOGGER)
    if logger.hasHandlers():
        if logger.isEnabledFor(level):
            logger.log(level, message, extra={FIELDS_ATTRIBUTE: fields}, stacklevel=3)
        return
    record = logger.makeRecord(
        APP_LOGGER,
        level,
        "(Logger)",
        0,
        message,
        (),
        None,
        extra={FIELDS_ATTRIBUTE: fields},
    )
    _fallback.handle(record)


def configure(
    level: str, log_format: str, text_handler: logging.Handler | None = None
) -> None:
    """Set up the root logger for a CLI command: one handler (on stderr, or
    ``text_handler`` for text), in ``log_format``, the call context on every line."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, got {log_format!r}")
    handler: logging.Handler
    if log_format == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
    else:
        handler = text_handler or logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            TextFormatter(
                "%(message)s" if text_handler else "%(levelname)s %(name)s: %(message)s"
            )
        )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
