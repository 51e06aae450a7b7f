"""Every error the API answers is JSON: ``{"error": {"code": ..., "message": ...}}``."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cairn import errors

from . import _models

logger = logging.getLogger(__name__)

# The status each Cairn error code answers with when it escapes a route.
_STATUS_OF_CODE = {
    errors.SDKUsageError.code: 400,
    errors.SerializationError.code: 400,
    errors.DeserializationError.code: 400,
    errors.RequestNotFound.code: 404,
    errors.RequestFinished.code: 409,
    errors.ScheduleNotFound.code: 404,
    errors.StoreError.code: 503,
}

# Starlette raises these itself (unknown path, wrong method).
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """An answer other than success, raised anywhere below a route."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(code: str, message: str) -> ApiError:
    """A 400 naming what is wrong with the request."""
    return ApiError(400, code, message)


def not_found(code: str, message: str) -> ApiError:
    """A 404 naming what does not exist."""
    return ApiError(404, code, message)


def conflict(code: str, message: str) -> ApiError:
    """A 409: the request is valid, but not in the resource's current state."""
    return ApiError(409, code, message)


def body(code: str, message: str) -> dict[str, Any]:
    """The JSON body of an error (text that cannot be UTF-8 is escaped)."""
    safe = message.encode("utf-8", "backslashreplace").decode("utf-8")
    detail = _models.ErrorDetail(code=code, message=safe)
    return _models.Error(error=detail).model_dump(mode="json")


def response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error response."""
    return JSONResponse(body(code, message), status_code=status, headers=headers)


def from_cairn(error: errors.CairnError) -> ApiError:
    """The API error for a Cairn error raised by the engine or the store."""
    status = _STATUS_OF_CODE.get(error.code, 500)
    return ApiError(status, error.code, error.message)


async def _on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return response(exc.status, exc.code, exc.message, exc.headers)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return response(exc.status_code, code, message, dict(exc.headers or {}))


async def _on_cairn_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.CairnError)
    error = from_cairn(exc)
    if error.status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc)
    return response(error.status, error.code, error.message)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # Last resort, so that even a bug answers JSON; the tests fuzz the API to make
    # sure no input gets here.
    logger.exception("%s %s failed", request.method, request.url.path)
    return response(500, "internal_error", f"{type(exc).__name__}: {exc}")


HANDLERS: dict[Any, Any] = {
    ApiError: _on_api_error,
    HTTPException: _on_http_exception,
    errors.CairnError: _on_cairn_error,
    Exception: _on_unexpected,
}
