"""Wake-ups between an engine and its executors, instead of waiting out a poll tick.

Polling alone makes a small request pay for the sleeps of both sides: an idle
executor sleeps up to a few milliseconds before it claims the new request, and
the waiting caller sleeps as long again before it sees the request finished. Two
pipes, made before the executors fork, carry a byte each way: the engine writes
one when it has submitted work, an executor when it has finished some. Polling
stays as the fallback (other processes on the same store cannot write to them).
"""

from __future__ import annotations

import os
import select


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

    def wait(self, timeout_s: float) -> None:
        """Sleep until poked or ``timeout_s`` passes, then swallow the pokes."""
        try:
            ready, _, _ = select.select([self.read_fd], [], [], timeout_s)
            if ready:
                os.read(self.read_fd, 4096)
        except (BlockingIOError, InterruptedError):
            pass  # another process took the byte, or a signal came first

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


class Wake:
    """The two directions: work for the executors, news for the engine."""

    def __init__(self) -> None:
        self.executors = _Pipe()
        self.engine = _Pipe()

    def close(self) -> None:
        self.executors.close()
        self.engine.close()
