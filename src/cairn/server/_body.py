"""The invoke request: size limit, Accept, Idempotency-Key, body -> arguments.

The body maps to the application's parameters as Tensorlake does: an empty body
means no arguments; any other body is the first positional argument, as JSON; a
``multipart/form-data`` body has one part per argument, named with an integer
(positional, counted from 0 or 1 without gaps) or a parameter name (keyword),
each part's content JSON. A body or part for a parameter typed ``File`` is not
JSON but raw bytes, kept with its content type.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

import pydantic
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from cairn import _values

from . import _errors, _models

M = TypeVar("M", bound=pydantic.BaseModel)

MAX_BODY_BYTES = 10 * 1024 * 1024
# How long the body may stop arriving before the request is given up (408).
BODY_IDLE_S = 10.0
MAX_PARTS = 256
JSON = "application/json"
EVENT_STREAM = "text/event-stream"

_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,35}", re.ASCII)
_POSITION = re.compile(r"[0-9]{1,4}", re.ASCII)
_KEYWORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}", re.ASCII)


def accepted(request: Request) -> str:
    """``application/json`` or ``text/event-stream``, from the Accept header."""
    header = request.headers.get("accept", "").strip()
    if not header:
        return JSON
    best: tuple[float, int, str] | None = None
    for item in header.split(","):
        media, _, params = item.strip().partition(";")
        media = media.strip().lower()
        quality = _quality(params)
        if quality <= 0:
            continue
        choice = {
            JSON: JSON,
            "application/*": JSON,
            "*/*": JSON,
            EVENT_STREAM: EVENT_STREAM,
            "text/*": EVENT_STREAM,
        }.get(media)
        # Exact types win over wildcards at the same quality; then the first listed.
        exact = 0 if "*" in media else 1
        if choice is not None and (best is None or (quality, exact) > best[:2]):
            best = (quality, exact, choice)
    if best is None:
        raise _errors.ApiError(
            406,
            "not_acceptable",
            f"cannot answer with any of Accept: {header[:200]!r}; "
            f"accept {JSON} (the request id) or {EVENT_STREAM} (its events)",
        )
    return best[2]


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                return 0.0
            return quality if 0.0 <= quality <= 1.0 else 0.0
    return 1.0


def idempotency_key(request: Request) -> str | None:
    """The ``Idempotency-Key`` header, which becomes the request id."""
    values = request.headers.getlist("idempotency-key")
    if not values:
        return None
    if len(values) > 1:
        raise _errors.bad_request(
            "bad_idempotency_key", "send one Idempotency-Key header, not several"
        )
    key = values[0]
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise _errors.bad_request(
            "bad_idempotency_key",
            f"Idempotency-Key {key[:40]!r} is not 1 to 36 characters of letters, "
            "digits, '-', '_', '~' and '.' (not first)",
        )
    return key


async def read(request: Request) -> bytes:
    """The whole body, refusing more than ``MAX_BODY_BYTES``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit():
        if int(declared) > MAX_BODY_BYTES:
            raise _too_large()
    chunks: list[bytes] = []
    size = 0
    stream = request.stream()
    while True:
        # A client that stops sending its body would otherwise hold the
        # connection (and this task) for as long as it stays connected.
        try:
            async with asyncio.timeout(BODY_IDLE_S):
                chunk = await anext(stream, None)
        except TimeoutError:
            raise _errors.ApiError(
                408,
                "body_timeout",
                f"no part of the body arrived for {BODY_IDLE_S:g} s",
                {"Connection": "close"},
            ) from None
        if chunk is None:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)


def _too_large() -> _errors.ApiError:
    return _errors.ApiError(
        413,
        "body_too_large",
        f"the body is larger than the limit of {MAX_BODY_BYTES} bytes (10 MiB)",
    )


def _no_file(key: int | str) -> bool:
    return False


def arguments(
    request: Request, data: bytes, takes_file: Callable[[int | str], bool] = _no_file
) -> tuple[list[Any], dict[str, Any]]:
    """The application's positional and keyword arguments from the body.

    ``takes_file(position or name)`` says which parameters are typed ``File``:
    their value is the JSON form of a File (bytes and content type).
    """
    content_type = request.headers.get("content-type", "")
    media, options = parse_options_header(content_type)
    if media == b"multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            raise _errors.bad_request(
                "bad_content_type",
                "Content-Type multipart/form-data needs a boundary parameter",
            )
        return _from_parts(_parts(data, boundary), takes_file)
    if not data.strip():
        return [], {}
    if takes_file(0):
        return [_file_json(data, content_type)], {}
    require_json(request)
    return [decode_json(data, "the body")], {}


def _file_json(data: bytes, content_type: str) -> dict[str, Any]:
    file = _values.File(data, content_type or "application/octet-stream")
    return _values.file_to_json(file)


def require_json(request: Request) -> None:
    """Refuse (415) a body to be read as JSON whose Content-Type says otherwise.

    A page of any site can make a browser send ``text/plain`` or form bodies
    without asking the server first (CORS "simple" requests); JSON is never sent
    that way. A body without a Content-Type (a raw client) is read as JSON.
    """
    content_type = request.headers.get("content-type")
    if content_type is None:
        return
    media, _ = parse_options_header(content_type)
    if media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    ):
        return
    raise _errors.ApiError(
        415,
        "unsupported_media_type",
        f"the body is JSON: send Content-Type: application/json, "
        f"not {content_type[:80]!r}",
    )


def model(data: bytes, body: type[M]) -> M:
    """A JSON body read into its model, with a 400 ``invalid_body`` naming the
    field that does not fit."""
    value = decode_json(data, "the body")
    try:
        return body.model_validate(value)
    except pydantic.ValidationError as error:
        raise _errors.bad_request(
            "invalid_body", _models.problem(body, error)
        ) from None


def decode_json(data: bytes, what: str) -> Any:
    """JSON text -> value, with a 400 naming ``what`` when it is not JSON."""
    try:
        return json.loads(data, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise _errors.bad_request(
            "bad_json",
            f"{what} is not valid JSON: {error.msg} at line {error.lineno} "
            f"column {error.colno}",
        ) from None
    except (ValueError, RecursionError) as error:
        # Not UTF-8, an integer too long to convert, nesting too deep.
        detail = "nested too deeply" if isinstance(error, RecursionError) else error
        raise _errors.bad_request(
            "bad_json", f"{what} is not valid JSON: {detail}"
        ) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class _Part:
    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.data: list[bytes] = []


def _parts(data: bytes, boundary: bytes) -> list[tuple[str, bytes, str]]:
    parts: list[_Part] = []
    field: list[bytes] = []
    value: list[bytes] = []
    ended = False

    def on_part_begin() -> None:
        if len(parts) >= MAX_PARTS:
            raise _errors.bad_request(
                "too_many_parts", f"a multipart body may have at most {MAX_PARTS} parts"
            )
        parts.append(_Part())

    def on_header_end() -> None:
        parts[-1].headers[b"".join(field).strip().lower()] = b"".join(value).strip()
        field.clear()
        value.clear()

    def on_end() -> None:
        nonlocal ended
        ended = True

    callbacks: Any = {
        "on_part_begin": on_part_begin,
        "on_part_data": lambda d, s, e: parts[-1].data.append(d[s:e]),
        "on_header_field": lambda d, s, e: field.append(d[s:e]),
        "on_header_value": lambda d, s, e: value.append(d[s:e]),
        "on_header_end": on_header_end,
        "on_end": on_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(data)
        parser.finalize()
    except (MultipartParseError, ValueError) as error:
        raise _errors.bad_request(
            "bad_multipart", f"the multipart body is malformed: {error}"
        ) from None
    if not ended:
        raise _errors.bad_request(
            "bad_multipart",
            "the multipart body ends before its closing boundary "
            "(or its boundary does not match the Content-Type's)",
        )
    named: list[tuple[str, bytes, str]] = []
    for part in parts:
        disposition, options = parse_options_header(
            part.headers.get(b"content-disposition", b"")
        )
        raw_name = options.get(b"name")
        if disposition != b"form-data" or raw_name is None:
            raise _errors.bad_request(
                "bad_multipart",
                "every part needs 'Content-Disposition: form-data; name=...'",
            )
        part_type = part.headers.get(b"content-type", b"application/octet-stream")
        named.append(
            (
                raw_name.decode("latin-1"),
                b"".join(part.data),
                part_type.decode("latin-1"),
            )
        )
    return named


def _from_parts(
    parts: list[tuple[str, bytes, str]], takes_file: Callable[[int | str], bool]
) -> tuple[list[Any], dict[str, Any]]:
    positional: dict[int, tuple[bytes, str]] = {}
    keywords: dict[str, tuple[bytes, str]] = {}
    for name, data, part_type in parts:
        if _POSITION.fullmatch(name):
            target: dict[Any, Any] = positional
            key: Any = int(name)
        elif _KEYWORD.fullmatch(name):
            target, key = keywords, name
        else:
            raise _errors.bad_request(
                "bad_multipart",
                f"part name {name[:60]!r} is neither a position (0, 1, ...) nor a "
                "parameter name",
            )
        if key in target:
            raise _errors.bad_request("bad_multipart", f"two parts are named {name!r}")
        target[key] = (data, part_type)
    first = min(positional, default=0)
    if first not in (0, 1) or sorted(positional) != list(
        range(first, first + len(positional))
    ):
        raise _errors.bad_request(
            "bad_multipart",
            "positional parts must be numbered 0, 1, 2, ... (or 1, 2, 3, ...) "
            f"without gaps, got {sorted(positional)}",
        )

    def value(key: int | str, name: str, part: tuple[bytes, str]) -> Any:
        if takes_file(key):
            return _file_json(*part)
        return decode_json(part[0], f"part {name!r}")

    args = [value(i - first, str(i), positional[i]) for i in sorted(positional)]
    return args, {k: value(k, k, part) for k, part in keywords.items()}
