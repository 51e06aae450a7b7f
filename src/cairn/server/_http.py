"""uvicorn's HTTP/1.1 protocol, with a deadline for a request's head.

uvicorn closes a connection idle between requests (``timeout_keep_alive``), but
not one that sent part of a request head and stopped: any data cancels the idle
timer, and nothing else is armed. A client sending a byte now and then (or one
half-sent request per connection) could hold every connection the server can
open. So each connection gets ``HEAD_TIMEOUT_S`` to deliver a whole request head,
from when it opens or when it starts its next request; past it, it is closed. The
body is ``_body.read``'s to time (``BODY_IDLE_S``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

#: How long a client has to send a whole request head.
HEAD_TIMEOUT_S = 5.0
#: Keep-alive: how long an idle connection between requests stays open.
KEEP_ALIVE_S = 5.0
#: The largest request head (the request line and headers) read, in bytes.
MAX_HEAD_BYTES = 16 * 1024
#: Connections and requests at once before uvicorn answers 503 (each is a file
#: descriptor; an event stream holds one for as long as it is watched).
MAX_CONNECTIONS = 1000
#: Connections the kernel queues before they are accepted.
BACKLOG = 2048


def config() -> dict[str, Any]:
    """The ``uvicorn.Config`` arguments that bound what a client can hold."""
    return {
        "http": Protocol,
        "timeout_keep_alive": KEEP_ALIVE_S,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
        "limit_concurrency": MAX_CONNECTIONS,
        "backlog": BACKLOG,
    }


class Protocol(H11Protocol):
    """``H11Protocol`` closing connections whose request head is late."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request's head."""
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        """Read; the clock runs while the head of a request is incomplete."""
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock."""
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _late(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
