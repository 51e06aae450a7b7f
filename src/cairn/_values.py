"""Raw values and small helpers exported for Tensorlake compatibility."""

from __future__ import annotations

import json
import sys
import time
from typing import Any


class File:
    """Raw bytes with a content type; never pickled or JSON-encoded at the boundary."""

    def __init__(
        self, content: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        if not isinstance(content, bytes | bytearray):
            raise TypeError(f"File content must be bytes, got {type(content).__name__}")
        self.content = bytes(content)
        self.content_type = content_type

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, File)
            and other.content == self.content
            and other.content_type == self.content_type
        )

    def __hash__(self) -> int:
        return hash((self.content, self.content_type))

    def __repr__(self) -> str:
        return f"File({len(self.content)} bytes, {self.content_type!r})"


class HttpBody(File):
    """An HTTP body: bytes and an optional content type."""

    def __init__(self, content: bytes, content_type: str | None = None) -> None:
        super().__init__(content, content_type or "application/octet-stream")

    def text(self) -> str:
        """The body as UTF-8 text."""
        return self.content.decode()

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.content)


class Image:
    """A container image description; recorded, not built (Cairn runs your environment)."""

    def __init__(
        self, name: str = "default", tag: str = "latest", base_image: str | None = None
    ) -> None:
        self.name = name
        self.tag = tag
        self.base_image = base_image

    def __repr__(self) -> str:
        return f"Image(name={self.name!r}, tag={self.tag!r})"


class Logger:
    """Structured JSON-lines logging to stdout, as Tensorlake's ``Logger``."""

    def __init__(self, context: dict[str, Any]) -> None:
        self._context = context

    @classmethod
    def get_logger(cls, **context: Any) -> Logger:
        """A logger that adds ``context`` to every line."""
        return cls(dict(context))

    def bind(self, **context: Any) -> Logger:
        """A logger with more context."""
        return Logger({**self._context, **context})

    def _log(self, level: str, message: str, fields: dict[str, Any]) -> None:
        line = {
            "level": level,
            "message": message,
            "timestamp": time.time(),
            **self._context,
            **fields,
        }
        print(json.dumps(line, default=str), file=sys.stdout, flush=True)

    def info(self, message: str, **fields: Any) -> None:
        """Log at info level."""
        self._log("info", message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        """Log at warning level."""
        self._log("warning", message, fields)

    def error(self, message: str, **fields: Any) -> None:
        """Log at error level."""
        self._log("error", message, fields)

    def debug(self, message: str, **fields: Any) -> None:
        """Log at debug level."""
        self._log("debug", message, fields)
