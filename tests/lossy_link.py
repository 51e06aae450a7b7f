"""A TCP proxy in front of PostgreSQL that cuts the link at a transaction's COMMIT.

``cut_at_commit(forward=True)`` lets the next ``COMMIT`` reach the server, with
whatever the client sends after it before an answer (a pipeline's Sync), and cuts
the link before its answer comes back (the commit happened, the client cannot
know); ``forward=False`` cuts it before the server sees the ``COMMIT`` (it never
happens). ``marker`` cuts at other bytes instead: a statement that commits alone
sends no COMMIT, but its parameters. ``meanwhile`` runs while the client still waits for its answer (a
server restart, say). Links made after the cut pass everything through.

``turns`` counts round trips: the times a client speaks again after the server
answered (statements sent together in a pipeline count once); ``sent`` holds
every byte clients sent.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse
from collections.abc import Callable


class LossyLink:
    """Forwards 127.0.0.1:<port> (``port``, or a free one) to a PostgreSQL server,
    cutting at one COMMIT."""

    def __init__(self, server_url: str, port: int = 0) -> None:
        parts = urllib.parse.urlsplit(server_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port = int(self._listener.getsockname()[1])
        self._armed: tuple[bytes, bool, Callable[[], None]] | None = None
        self._lock = threading.Lock()
        self.cuts = 0
        self.turns = 0
        self.sent = bytearray()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, server_url: str) -> str:
        """``server_url`` through the link (without TLS, so COMMIT can be seen)."""
        return through(server_url, self.port)

    def cut_at_commit(
        self,
        *,
        forward: bool,
        meanwhile: Callable[[], None] = lambda: None,
        marker: bytes = b"COMMIT",
    ) -> None:
        """Cut the link of the next COMMIT (or ``marker``) sent through it."""
        with self._lock:
            self._armed = (marker, forward, meanwhile)

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            cut = threading.Event()
            answered = threading.Event()
            answered.set()
            threading.Thread(
                target=self._upstream,
                args=(client, server, cut, answered),
                daemon=True,
            ).start()
            threading.Thread(
                target=_downstream, args=(server, client, cut, answered), daemon=True
            ).start()

    def _upstream(
        self,
        client: socket.socket,
        server: socket.socket,
        cut: threading.Event,
        answered: threading.Event,
    ) -> None:
        while chunk := _recv(client):
            with self._lock:
                self.sent += chunk
                if answered.is_set():
                    answered.clear()
                    self.turns += 1
                armed = self._armed
                if armed is not None and armed[0] in chunk:
                    self._armed = None
                else:
                    armed = None
            if armed is None:
                server.sendall(chunk)
                continue
            _, forward, meanwhile = armed
            cut.set()  # no answer goes back from here on
            if forward:
                server.sendall(chunk)
                # The server commits and answers into the void; what the client
                # sends meanwhile goes too (a pipeline's Sync, which commits a
                # statement sent in the pipeline, may follow its Execute apart).
                self._forward_for(client, server, 0.3)
            else:
                _shut(server)  # the server sees the client go: it rolls back
            meanwhile()
            self.cuts += 1
            break
        for end in (client, server):
            _shut(end)

    def _forward_for(
        self, client: socket.socket, server: socket.socket, seconds: float
    ) -> None:
        """Pass what ``client`` sends to ``server`` for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            client.settimeout(left)
            if not (chunk := _recv(client)):
                break  # quiet until the deadline, gone or closed
            with self._lock:
                self.sent += chunk
            server.sendall(chunk)
        time.sleep(max(0.0, deadline - time.monotonic()))


def through(server_url: str, port: int) -> str:
    """``server_url`` through a link on 127.0.0.1:``port``, without TLS."""
    parts = urllib.parse.urlsplit(server_url)
    user = f"{parts.username}@" if parts.username else ""
    query = "&".join(filter(None, [parts.query, "sslmode=disable"]))
    netloc = f"{user}127.0.0.1:{port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def _downstream(
    server: socket.socket,
    client: socket.socket,
    cut: threading.Event,
    answered: threading.Event,
) -> None:
    while (chunk := _recv(server)) and not cut.is_set():
        answered.set()
        try:
            client.sendall(chunk)
        except OSError:
            break
    if not cut.is_set():
        _shut(client)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
