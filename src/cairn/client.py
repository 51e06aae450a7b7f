"""``Client``: the Cairn HTTP API from Python (``run_remote_application`` and the CLI use it).

Example::

    from cairn.client import Client

    with Client("http://127.0.0.1:8900") as client:
        request_id = client.invoke("agent", ["find the answer"])
        for seq, event in client.events("agent", request_id):
            print(seq, event)
        print(client.output("agent", request_id))
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
import pydantic
import pydantic_core

from cairn import _values, errors

__all__ = ["DEFAULT_URL", "Client", "ServerError", "ServerEvent"]

DEFAULT_URL = "http://127.0.0.1:8900"
_JSON = "application/json"
_FINISHED = ("succeeded", "failed", "cancelled")
# Streams get a keep-alive every second; a minute of silence is a dead connection.
_STREAM_TIMEOUT = httpx.Timeout(10.0, read=60.0)

ServerEvent = tuple[int, dict[str, Any]]
"""An event of a request's stream: its sequence number and ``{"Kind": {...}}``."""


def _segment(value: str) -> str:
    return quote(value, safe="")


class Client:
    """A synchronous client of one Cairn server (one namespace).

    Args:
        url: the server (default ``CAIRN_API_URL``, else ``http://127.0.0.1:8900``).
        api_key: sent as ``Authorization: Bearer`` (default ``CAIRN_API_KEY``).
        namespace: requests go under ``/v1/namespaces/<namespace>``
            (default ``default``).
        timeout_s: timeout of each HTTP call, not of event streams.
        transport: an httpx transport, for tests.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        namespace: str = "default",
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = (url or os.environ.get("CAIRN_API_URL") or DEFAULT_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("CAIRN_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.namespace = namespace
        self._prefix = f"/v1/namespaces/{_segment(namespace)}"
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=timeout_s,
            transport=transport,
        )

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------
    def _path(self, *parts: str) -> str:
        return self._prefix + "".join("/" + _segment(p) for p in parts)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise errors.RemoteAPIError(
                0, f"cannot reach the Cairn server at {self.url}: {error}"
            ) from error
        if response.status_code >= 400:
            raise _api_error(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    # -- applications -------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``GET /healthz``."""
        result: dict[str, Any] = self._json("GET", "/healthz")
        return result

    def applications(self) -> list[dict[str, Any]]:
        """The served applications."""
        result: list[dict[str, Any]] = self._json("GET", self._path("applications"))[
            "applications"
        ]
        return result

    def application(self, name: str) -> dict[str, Any]:
        """An application's manifest."""
        result: dict[str, Any] = self._json("GET", self._path("applications", name))
        return result

    def invoke(
        self,
        application: str,
        args: list[Any] | tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> str:
        """Start a request; its id.

        One positional argument travels as the JSON body, several arguments as
        multipart parts named ``0``, ``1``, ... and by keyword, as Tensorlake's
        client sends them. A ``File`` travels as its raw bytes with its content
        type.

        Raises:
            SerializationError: an argument is not JSON-serializable.
            RemoteAPIError: the server refused (``code``: ``invalid_input``,
                ``request_exists`` for a used idempotency key, ...).
        """
        kwargs = kwargs or {}
        extra = {"Accept": _JSON, **(headers or {})}
        if idempotency_key is not None:
            extra["Idempotency-Key"] = idempotency_key
        path = self._path("applications", application)
        if not kwargs and len(args) == 1:
            body, extra["Content-Type"] = _encode(args[0], "argument 0")
            response = self._request("POST", path, content=body, headers=extra)
        elif not kwargs and not args:
            response = self._request("POST", path, content=b"", headers=extra)
        else:
            parts = [
                (str(i), (str(i), *_encode(v, f"argument {i}")))
                for i, v in enumerate(args)
            ]
            parts += [
                (k, (k, *_encode(v, f"argument {k!r}"))) for k, v in kwargs.items()
            ]
            response = self._request("POST", path, files=parts, headers=extra)
        request_id: str = response.json()["request_id"]
        return request_id

    # -- requests ---------------------------------------------------------------
    def requests(
        self,
        application: str | None = None,
        *,
        limit: int = 20,
        cursor: str | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """One page of requests, newest first: ``{"requests", "next_cursor"}``."""
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        if status is not None:
            params["status"] = status
        path = (
            self._path("requests")
            if application is None
            else self._path("applications", application, "requests")
        )
        result: dict[str, Any] = self._json("GET", path, params=params)
        return result

    def request(self, application: str | None, request_id: str) -> dict[str, Any]:
        """A request's metadata (``application`` None: find it in any application)."""
        path = (
            self._path("requests", request_id)
            if application is None
            else self._path("applications", application, "requests", request_id)
        )
        result: dict[str, Any] = self._json("GET", path)
        return result

    def _request_path(self, application: str, request_id: str, *rest: str) -> str:
        return self._path("applications", application, "requests", request_id, *rest)

    def output_bytes(self, application: str, request_id: str) -> tuple[bytes, str]:
        """The request's output as sent: JSON bytes and their content type."""
        response = self._request(
            "GET", self._request_path(application, request_id, "output")
        )
        return response.content, response.headers.get("content-type", "")

    def output(self, application: str, request_id: str) -> Any:
        """The request's output, decoded from JSON; a ``File`` when it is not JSON."""
        data, content_type = self.output_bytes(application, request_id)
        if not content_type.startswith(_JSON):
            return _values.File(data, content_type or "application/octet-stream")
        return json.loads(data)

    def call_output(self, application: str, request_id: str, call_id: str) -> bytes:
        """One function call's output, pickled."""
        return self._request(
            "GET", self._request_path(application, request_id, "output", call_id)
        ).content

    def replay(
        self,
        application: str,
        request_id: str,
        *,
        from_call: str | None = None,
        strict: bool = False,
    ) -> int:
        """Start a replay of the request; the new run's number."""
        run: int = self._json(
            "POST",
            self._request_path(application, request_id, "replay"),
            json={"from_call": from_call, "strict": strict},
        )["run"]
        return run

    def cancel(self, application: str, request_id: str) -> dict[str, Any]:
        """Cancel the request (nothing happens once it finished)."""
        result: dict[str, Any] = self._json(
            "POST", self._request_path(application, request_id, "cancel")
        )
        return result

    def signal(
        self, application: str, request_id: str, name: str, value: Any = None
    ) -> dict[str, Any]:
        """Send the signal ``name`` with a JSON ``value`` to the request."""
        result: dict[str, Any] = self._json(
            "POST",
            self._request_path(application, request_id, "signals", name),
            json=value,
        )
        return result

    # -- schedules ----------------------------------------------------------------
    def add_schedule(
        self, application: str, cron: str, input: Any = None
    ) -> dict[str, Any]:
        """Start ``application`` on ``cron`` (UTC) with ``input`` (JSON)."""
        result: dict[str, Any] = self._json(
            "POST",
            self._path("applications", application, "schedules"),
            json={"cron": cron, "input": input},
        )
        return result

    def schedules(self) -> list[dict[str, Any]]:
        """Every schedule, oldest first."""
        found: list[dict[str, Any]] = self._json("GET", self._path("schedules"))[
            "schedules"
        ]
        return found

    def change_schedule(self, schedule_id: str, verb: str) -> dict[str, Any]:
        """``pause`` or ``resume`` a schedule."""
        result: dict[str, Any] = self._json(
            "POST", self._path("schedules", schedule_id, verb)
        )
        return result

    def delete_schedule(self, schedule_id: str) -> None:
        """Delete a schedule (its requests stay)."""
        self._request("DELETE", self._path("schedules", schedule_id))

    def delete(self, application: str, request_id: str) -> None:
        """Delete a finished request."""
        self._request("DELETE", self._request_path(application, request_id))

    def events(
        self,
        application: str,
        request_id: str,
        *,
        after: int | None = 0,
        reconnect_s: float = 0.5,
        max_reconnects: int = 20,
    ) -> Iterator[ServerEvent]:
        """The request's events until it finishes, reconnecting where it left off.

        ``after=0`` starts with the first event, ``after=n`` after event ``n``;
        ``None`` lets the server choose (a finished request's final event, or the
        events of the current run). A dropped connection resumes with
        ``Last-Event-ID``, so no event is lost or repeated.
        """
        path = self._request_path(application, request_id, "progress")
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if after is not None:
                headers["Last-Event-ID"] = str(after)
            try:
                with self._http.stream(
                    "GET", path, headers=headers, timeout=_STREAM_TIMEOUT
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise _api_error(response)
                    for seq, event in _parse_sse(response.iter_lines()):
                        failures = 0
                        after = seq
                        yield seq, event
            except httpx.TransportError as error:
                failures += 1
                if failures > max_reconnects:
                    raise errors.RemoteAPIError(
                        0, f"lost the event stream of request {request_id}: {error}"
                    ) from error
                time.sleep(reconnect_s)
                continue
            # The server ends a stream when the request finished, or when it stops.
            if self._finished(application, request_id):
                return
            time.sleep(reconnect_s)

    def _finished(self, application: str, request_id: str) -> bool:
        try:
            metadata = self.request(application, request_id)
        except ServerError as error:
            if error.status_code == 404:
                return True
            raise
        return metadata.get("status") in _FINISHED


class ServerError(errors.RemoteAPIError):
    """The server answered with an error; ``error_code`` names it.

    E.g. ``request_exists`` (409, a used Idempotency-Key), ``invalid_input`` (400),
    ``request_not_found`` (404).
    """

    def __init__(self, status_code: int, error_code: str, message: str) -> None:
        super().__init__(status_code, message)
        self.error_code = error_code


_ANY: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(Any)


def _encode(value: Any, what: str) -> tuple[bytes, str]:
    """An argument as a body: a File's raw bytes and content type, else JSON."""
    if isinstance(value, _values.File):
        return value.content, value.content_type
    try:
        return _ANY.dump_json(value), _JSON
    except pydantic_core.PydanticSerializationError as error:
        raise errors.SerializationError(
            f"{what} is not JSON-serializable: {error}"
        ) from error


def _api_error(response: httpx.Response) -> ServerError:
    code, message = "http_error", response.text[:500] or response.reason_phrase
    try:
        body = response.json()
        code = body["error"]["code"]
        message = body["error"]["message"]
    except (ValueError, KeyError, TypeError):
        pass
    return ServerError(response.status_code, code, message)


def _parse_sse(lines: Iterator[str]) -> Iterator[ServerEvent]:
    """Events of an SSE stream that have an id and JSON data (comments skipped)."""
    data: list[str] = []
    event_id: str | None = None
    for line in lines:
        if not line:
            if data and event_id is not None and event_id.isdigit():
                try:
                    event = json.loads("\n".join(data))
                except ValueError:
                    event = None
                if isinstance(event, dict):
                    yield int(event_id), event
            data, event_id = [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "id":
            event_id = value
