"""``serve()``: uvicorn with the API, next to an embedded worker process.

The worker (an ``Engine`` and its executor processes) runs in a child process
forked before uvicorn starts: the engine forks executors whenever one is
replaced (after a timeout, a crash, a cancel), and forking is only safe in a
process without other threads, which the server's event loop and thread pool are
not. The two meet only in the store: the API creates requests, the worker's
executors claim them. The worker sits in its own process group (a Ctrl-C in the
terminal reaches the server only, which then stops the worker with one SIGTERM:
drain, then exit) and dies with the server (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import uvicorn

from cairn import errors
from cairn.observability import _metrics
from cairn.store import open_store
from cairn.worker import Engine

from . import _auth, _guard, _http

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


# The embedded worker's niceness, 0 by default. A lower priority let the API answer
# first on a quiet machine (200 clients: p99 invoke 31-69 ms at 10, 36-96 ms at 0),
# but on a loaded one the server then waits for SQLite's write lock held by a
# worker the scheduler put aside (p99 1.25 s at 10, 0.5 s at 0; docs/benchmarks.md).
WORKER_NICE = 0


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    """How ``serve`` runs."""

    store_url: str
    """The store the API and the worker share."""
    host: str = "127.0.0.1"
    """Address to bind (default loopback)."""
    port: int = 8900
    """Port to bind (default 8900)."""
    api_key: str | None = None
    """Bearer key every route but /healthz needs (default: none, auth off)."""
    allow_no_auth: bool = False
    """Whether to serve an address other machines can reach without a key
    (default False: ``serve`` refuses)."""
    allowed_hosts: tuple[str, ...] = ()
    """Names the server answers to in ``Host`` besides loopback and ``host``
    (default none; any name when ``host`` is every interface and none is given)."""
    namespace: str = "default"
    """The namespace served (default ``default``)."""
    concurrency: int | None = None
    """Executor processes of the embedded worker (default: cores, at least 2)."""
    grace_s: float = 30.0
    """How long a stopping worker lets running calls finish (default 30 s)."""
    worker: bool = True
    """Whether to run the embedded worker (default True)."""
    worker_nice: int = WORKER_NICE
    """How much lower the embedded worker's CPU priority is than the server's, on
    nice(1)'s scale from 0 (the same, the default) to 19: on shared cores, the API
    answers first while requests run (best with PostgreSQL: on SQLite the server
    may wait for the write lock of a worker put aside)."""
    log_level: str = "info"
    """uvicorn's log level (default info)."""


class EmbeddedWorker:
    """The worker child process."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._status: int | None = None
        self._lock = threading.Lock()

    @classmethod
    def start(cls, options: ServeOptions) -> EmbeddedWorker:
        """Fork the worker and wait until its executors are up.

        Raises:
            CairnError: the worker could not start (its message says why).
        """
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            os.close(read_fd)
            code = 1
            try:
                code = _worker_main(options, write_fd, parent)
            except BaseException as error:
                _report(write_fd, f"{type(error).__name__}: {error}")
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.close(write_fd)
        worker = cls(pid)
        with os.fdopen(read_fd, "rb") as pipe:
            line = pipe.readline().decode(errors="replace").strip()
        if line != "ready":
            worker.stop(0.0)
            raise errors.CairnError(
                f"the embedded worker did not start: {line or 'it exited'}"
            )
        return worker

    def poll(self) -> int | None:
        """The exit code if it exited, else None (never blocks)."""
        with self._lock:
            if self._status is None:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self._status = os.waitstatus_to_exitcode(status)
            return self._status

    def stop(self, grace_s: float) -> int:
        """SIGTERM (drain within ``grace_s``), then SIGKILL if it lingers."""
        if self.poll() is None:
            _signal(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s + 5.0
            while self.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if self.poll() is None:
                _signal(self.pid, signal.SIGKILL)
                while self.poll() is None:
                    time.sleep(0.01)
        code = self.poll()
        assert code is not None
        return code


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _report(fd: int, line: str) -> None:
    try:
        os.write(fd, (line.replace("\n", " ") + "\n").encode())
        os.close(fd)
    except OSError:
        pass


def _worker_main(
    options: ServeOptions, ready_fd: int, parent: int
) -> int:  # pragma: no cover
    os.setpgid(0, 0)
    os.nice(options.worker_nice)  # its executors, forked from it, inherit it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        return 0
    engine = Engine(options.store_url, concurrency=options.concurrency, serving=True)
    engine.start()
    _report(ready_fd, "ready")
    return engine.serve(grace_s=options.grace_s, stop=lambda: os.getppid() != parent)


def serve(options: ServeOptions) -> int:
    """Serve the applications of the loaded code until SIGINT/SIGTERM.

    Load the code first (its applications are what is served). Returns the exit
    code.

    Raises:
        SDKUsageError: ``host`` is reachable from other machines and there is no
            API key (unless ``allow_no_auth``).
        StoreError: the store cannot be opened.
        CairnError: the embedded worker could not start.
    """
    from . import create_app

    if not 0 <= options.worker_nice <= 19:
        raise errors.SDKUsageError(
            f"worker_nice must be from 0 to 19, got {options.worker_nice!r}"
        )
    if _auth.unprotected(options.host, options.api_key, options.allow_no_auth):
        raise errors.SDKUsageError(
            f"refusing to serve {options.host} without an API key: anyone who "
            "can reach it could run requests; set api_key, or allow_no_auth=True "
            "to serve it unauthenticated"
        )

    # Open (and migrate) the store once up front, so that a bad URL fails here,
    # before anything is forked; closed again: no connection crosses a fork.
    open_store(options.store_url).close()
    _metrics.enable()  # before the worker forks: its processes write their figures
    worker = EmbeddedWorker.start(options) if options.worker else None
    app = create_app(
        options.store_url,
        api_key=options.api_key,
        namespace=options.namespace,
        allowed_hosts=_guard.allowed_hosts(options.host, options.allowed_hosts),
    )
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_level=options.log_level,
        lifespan="on",
        timeout_graceful_shutdown=2,
        **_http.config(),
    )
    server = uvicorn.Server(config)
    done = threading.Event()
    died: list[int] = []
    if worker is not None:
        threading.Thread(
            target=_watch_worker,
            args=(worker, server, done, died),
            name="cairn-worker-watch",
            daemon=True,
        ).start()
    # uvicorn re-raises the signal that stopped it once it is done; a SIGTERM with
    # its default action would end this process before the worker is stopped.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    finally:
        done.set()
        if worker is not None:
            worker.stop(options.grace_s)
        signal.signal(signal.SIGTERM, previous)
    return 1 if died else 0


def _watch_worker(
    worker: EmbeddedWorker,
    server: uvicorn.Server,
    done: threading.Event,
    died: list[int],
) -> None:
    """Stop the server if the worker exits while it serves."""
    while not done.wait(0.2):
        code = worker.poll()
        if code is not None:
            logger.error(
                "the embedded worker exited (code %s); stopping the server", code
            )
            died.append(code)
            server.should_exit = True
            return
