"""Wake-ups between an engine and its executors, instead of waiting out a poll tick.

Polling alone makes a small request pay for the sleeps of both sides: an idle
executor sleeps up to a few milliseconds before it claims the new request, and
the waiting caller sleeps as long again before it sees the request finished. Two
pipes, made before the executors fork, carry a byte each way: the engine writes
one when it has submitted work, an executor when it has finished some. A third
carries the records of the requests an executor ended to the engine waiting for
them, so that it need not read them back from the store. Polling stays as the
fallback (other processes on the same store cannot write to them).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import struct
import threading
from collections.abc import Iterable, Iterator
from typing import cast

from cairn.store import ClaimedCall, RequestRecord

_LENGTH = struct.Struct("<I")


class _Pipe:
    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)

    def poke(self) -> None:
        try:
            os.write(self.write_fd, b"\0")
        except (BlockingIOError, OSError):
            pass  # full: a wake-up is pending anyway; closed: nobody waits

    def wait(self, timeout_s: float, *also: int) -> bool:
        """Sleep until poked, ``timeout_s`` passes or one of the ``also`` file
        descriptors is readable; swallow the pokes. True if poked."""
        try:
            ready, _, _ = select.select([self.read_fd, *also], [], [], timeout_s)
            if self.read_fd in ready:
                os.read(self.read_fd, 4096)
                return True
        except (BlockingIOError, InterruptedError):
            pass  # another process took the byte, or a signal came first
        return False

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


class EndedRequests(_Pipe):
    """Records of requests an executor's commit ended, for the engine that
    waits for them (it then need not read them from the store).

    Each is one write of at most PIPE_BUF bytes, which a pipe takes whole or not
    at all: every executor writes here without interleaving, and none blocks
    when nobody reads. A record that does not fit (a large input or output), or
    finds the pipe full, is not sent: the engine reads it from the store.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        # The engine's side: the requests its threads wait for, and their records
        # once taken from the pipe (records of no awaited request are dropped).
        self._awaited: dict[str, RequestRecord | None] = {}

    @contextlib.contextmanager
    def awaiting(self, request_id: str) -> Iterator[None]:
        """While the caller waits for ``request_id``, keep its record if it comes."""
        with self._lock:
            self._awaited[request_id] = None
        try:
            yield
        finally:
            with self._lock:
                self._awaited.pop(request_id, None)

    def reported(self, request_id: str) -> RequestRecord | None:
        """The record of ``request_id`` (awaited), if an executor sent it."""
        with self._lock:
            for record in self._take_all():
                if record.id in self._awaited:
                    self._awaited[record.id] = record
            return self._awaited.get(request_id)

    def send_all(self, records: Iterable[RequestRecord]) -> None:
        """Send records (what does not fit is not sent)."""
        for record in records:
            self.send(record)

    def send(self, record: RequestRecord) -> bool:
        """Send a record (False: not sent)."""
        body = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        message = _LENGTH.pack(len(body)) + body
        if len(message) > select.PIPE_BUF:
            return False
        try:
            os.write(self.write_fd, message)
        except OSError:
            return False  # full (or closed): the engine reads the store instead
        return True

    def _take_all(self) -> list[RequestRecord]:
        """The records sent since the last call (whole messages only: each was
        written at once)."""
        data = bytearray()
        try:
            while part := os.read(self.read_fd, 65536):
                data += part
        except (BlockingIOError, InterruptedError):
            pass  # drained
        records, at = [], 0
        while at + _LENGTH.size <= len(data):
            (size,) = _LENGTH.unpack_from(data, at)
            body = data[at + _LENGTH.size : at + _LENGTH.size + size]
            at += _LENGTH.size + size
            records.append(cast(RequestRecord, pickle.loads(body)))
        return records


class Wake:
    """The two directions: work for the executors, news for the engine (and the
    records of the requests that news ended)."""

    def __init__(self) -> None:
        self.executors = _Pipe()
        self.engine = _Pipe()
        self.ended = EndedRequests()

    def close(self) -> None:
        self.executors.close()
        self.engine.close()
        self.ended.close()


class HandOff:
    """A call its supervisor claimed for one executor, sent to it directly.

    The local engine creates its own request with the application call already
    claimed by an idle executor, and sends the claim down this pipe: the
    executor starts at once, with no poll, no claim query and no race with its
    siblings. The store holds the claim either way, so an executor that dies
    before reading it has its calls released as always.
    """

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()

    def in_child(self) -> None:
        """The executor keeps the reading end only."""
        os.close(self.write_fd)
        self.write_fd = -1

    def in_parent(self) -> None:
        """The supervisor keeps the writing end only: a dead executor's pipe
        then fails the write (EPIPE) instead of filling up."""
        os.close(self.read_fd)
        self.read_fd = -1

    def send(self, claimed: ClaimedCall) -> bool:
        """Send a claim (False: the executor is gone)."""
        body = pickle.dumps(claimed, protocol=pickle.HIGHEST_PROTOCOL)
        message = memoryview(_LENGTH.pack(len(body)) + body)
        try:
            while message:
                message = message[os.write(self.write_fd, message) :]
        except OSError:
            return False
        return True

    def take(self, wait_s: float = 0.0) -> ClaimedCall | None:
        """A claim sent to this executor, if one comes within ``wait_s``."""
        ready, _, _ = select.select([self.read_fd], [], [], wait_s)
        if not ready:
            return None
        header = _read_exactly(self.read_fd, _LENGTH.size)
        if header is None:
            return None  # the supervisor closed its end
        body = _read_exactly(self.read_fd, _LENGTH.unpack(header)[0])
        return None if body is None else cast(ClaimedCall, pickle.loads(body))

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.read_fd = self.write_fd = -1


def _read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes from a blocking pipe (None at its end)."""
    parts, left = [], size
    while left:
        part = os.read(fd, left)
        if not part:
            return None
        parts.append(part)
        left -= len(part)
    return b"".join(parts)
