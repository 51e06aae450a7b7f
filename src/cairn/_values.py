"""Raw values and small helpers exported for Tensorlake compatibility."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from cairn import errors
from cairn.observability import _logging

# A File in a request's stored JSON input or output: one key no JSON value of a
# user's is likely to have, so a stored output can be told from JSON by its first
# bytes (the server answers it as the raw body, with its content type).
FILE_KEY = "__cairn_file__"
FILE_JSON_PREFIX = b'{"' + FILE_KEY.encode() + b'":'


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


def file_to_json(file: File) -> dict[str, Any]:
    """The JSON form of a File: its content type and its bytes in base64."""
    return {
        FILE_KEY: {
            "content_type": file.content_type,
            "base64": base64.b64encode(file.content).decode("ascii"),
        }
    }


def file_from_json(value: Any, kind: type[File] = File) -> File | None:
    """The File whose JSON form ``value`` is, or None when it is not one."""
    if not isinstance(value, dict) or len(value) != 1 or FILE_KEY not in value:
        return None
    inner = value[FILE_KEY]
    if not isinstance(inner, dict) or not isinstance(inner.get("base64"), str):
        return None
    try:
        content = base64.b64decode(inner["base64"], validate=True)
    except (binascii.Error, ValueError):
        return None
    content_type = inner.get("content_type")
    if not isinstance(content_type, str):
        content_type = "application/octet-stream"
    return kind(content, content_type)


def file_json_bytes(file: File) -> bytes:
    """A File as stored JSON bytes, which start with ``FILE_JSON_PREFIX``."""
    return json.dumps(file_to_json(file), separators=(",", ":")).encode()


def file_from_json_bytes(data: bytes) -> File | None:
    """The File stored as ``data``, or None when ``data`` is other JSON."""
    if not data.startswith(FILE_JSON_PREFIX):
        return None
    return file_from_json(json.loads(data))


class Image:
    """A container image description, as Tensorlake's: recorded, not built.

    Cairn runs your functions in the environment that runs Cairn, so the builder
    methods (``run``, ``env``, ``copy``, ``add``, ``workdir``) only record their
    operation, in order, in ``operations``; each returns the image, for chaining.
    """

    def __init__(
        self,
        name: str = "default",
        tag: str = "latest",
        base_image: str = "python:3.14-trixie",
    ) -> None:
        self.name = name
        self.tag = tag
        self.base_image = base_image
        #: ``(operation, arguments, options)`` in the order they were added.
        self.operations: list[tuple[str, list[str], dict[str, str]]] = []

    def add(self, src: str, dest: str, options: dict[str, str] | None = None) -> Image:
        """Record an ``ADD src dest``."""
        return self._record("add", [src, dest], options)

    def copy(self, src: str, dest: str, options: dict[str, str] | None = None) -> Image:
        """Record a ``COPY src dest``."""
        return self._record("copy", [src, dest], options)

    def env(self, key: str, value: str) -> Image:
        """Record an ``ENV key=value``."""
        return self._record("env", [key, value], None)

    def run(
        self, commands: str | list[str], options: dict[str, str] | None = None
    ) -> Image:
        """Record a ``RUN`` of one command or several."""
        return self._record(
            "run", list(commands) if isinstance(commands, list) else [commands], options
        )

    def workdir(self, directory: str) -> Image:
        """Record a ``WORKDIR directory``."""
        return self._record("workdir", [directory], None)

    def build(self, **options: Any) -> dict[str, Any]:
        """Not available: Cairn does not build images.

        Raises:
            SDKUsageError: always.
        """
        raise errors.SDKUsageError(
            f"Image {self.name!r}: Cairn does not build images; it runs your functions "
            "in the environment it runs in"
        )

    def _record(
        self, operation: str, arguments: list[str], options: dict[str, str] | None
    ) -> Image:
        self.operations.append((operation, arguments, dict(options or {})))
        return self

    def __repr__(self) -> str:
        return f"Image(name={self.name!r}, tag={self.tag!r})"


class Logger:
    """Tensorlake's structured ``Logger``, through the ``logging`` module.

    Records go to the ``cairn.app`` logger with their fields (and the running
    call's context); where no logging is configured, they print as JSON lines
    to stdout, as Tensorlake's do.
    """

    def __init__(self, context: dict[str, Any]) -> None:
        self._context = context

    @classmethod
    def get_logger(cls, **context: Any) -> Logger:
        """A logger that adds ``context`` to every line."""
        return cls(dict(context))

    def bind(self, **context: Any) -> Logger:
        """A logger with more context."""
        return Logger({**self._context, **context})

    def _log(self, level: int, message: str, fields: dict[str, Any]) -> None:
        _logging.log_structured(level, message, {**self._context, **fields})

    def info(self, message: str, **fields: Any) -> None:
        """Log at info level."""
        self._log(logging.INFO, message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        """Log at warning level."""
        self._log(logging.WARNING, message, fields)

    def error(self, message: str, **fields: Any) -> None:
        """Log at error level."""
        self._log(logging.ERROR, message, fields)

    def debug(self, message: str, **fields: Any) -> None:
        """Log at debug level."""
        self._log(logging.DEBUG, message, fields)
