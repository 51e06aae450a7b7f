"""Prometheus metrics of a worker and a server, through ``prometheus_client``.

A worker is a supervisor and forked executor processes (and ``cairn serve`` a
server process above them); a call's figures are made in the executor that ran
it. So the metrics use ``prometheus_client``'s multiprocess mode: every process
writes its values to memory-mapped files in one directory and ``/metrics`` sums
them. Counters and histograms of a dead executor stay in the sums (its calls
happened); its live gauges go with it (``process_died``). The alternative,
sending every figure to the parent over a pipe, would add a message per call to
the hot path, which the executor design avoids.

Metrics are off (one ``None`` check per hook) until ``enable`` is called, which
``cairn serve`` and ``cairn worker --metrics-port`` do before they fork anything.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_READ_TRIES = 5
# Call durations from a millisecond step to an hour-long agent run.
_DURATION_BUCKETS_S = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    1800,
    3600,
)
_COMMIT_BUCKETS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.5,
    1,
)


@dataclass(frozen=True)
class Metrics:
    """Every metric Cairn exports (names as Prometheus shows them, less ``_total``)."""

    requests_started: Any
    requests_finished: Any
    call_duration: Any
    retries: Any
    timeouts: Any
    oom_kills: Any
    executors: Any
    executors_busy: Any
    commit_latency: Any
    store_errors: Any
    sse_clients: Any
    user_counter: Any
    user_timer: Any


#: the metrics of this process, or None while metrics are off
M: Metrics | None = None
directory: str | None = None


def enable(path: str | None = None) -> str:
    """Turn metrics on in this process and those it forks from now on; the
    directory of their files (``PROMETHEUS_MULTIPROC_DIR`` if set, else ``path``,
    else a new temporary one)."""
    global M, directory
    if M is not None and directory is not None:
        return directory
    chosen = (
        os.environ.get(MULTIPROC_ENV)
        or path
        or tempfile.mkdtemp(prefix="cairn-metrics-")
    )
    os.makedirs(chosen, exist_ok=True)
    os.environ[MULTIPROC_ENV] = chosen
    from prometheus_client import values

    # The value class is chosen when prometheus_client is first imported: if the
    # application imported it before the directory was set, choose again.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    M = _define()
    directory = chosen
    return chosen


def _remove(path: str, owner_pid: int) -> None:
    if os.getpid() == owner_pid:  # not in a forked child that exits normally
        shutil.rmtree(path, ignore_errors=True)


def _define(registry: Any = None) -> Metrics:
    """The metrics, registered in ``registry`` (default: prometheus_client's)."""
    from prometheus_client import REGISTRY, Counter, Gauge, Histogram

    into: dict[str, Any] = {"registry": REGISTRY if registry is None else registry}
    return Metrics(
        requests_started=Counter(
            "cairn_requests_started",
            "Runs of requests started",
            ["application"],
            **into,
        ),
        requests_finished=Counter(
            "cairn_requests_finished",
            "Runs of requests finished, by outcome (succeeded, failed)",
            ["application", "outcome"],
            **into,
        ),
        call_duration=Histogram(
            "cairn_call_duration_seconds",
            "Attempts of function calls, by function and outcome",
            ["function", "outcome"],
            buckets=_DURATION_BUCKETS_S,
            **into,
        ),
        retries=Counter(
            "cairn_call_retries",
            "Failed attempts that will be retried",
            ["function"],
            **into,
        ),
        timeouts=Counter(
            "cairn_call_timeouts",
            "Attempts stopped at their deadline",
            ["function"],
            **into,
        ),
        oom_kills=Counter(
            "cairn_oom_kills",
            "Executors killed over their memory limit, by the call they ran",
            ["function"],
            **into,
        ),
        executors=Gauge(
            "cairn_executors",
            "Live executor processes",
            multiprocess_mode="livesum",
            **into,
        ),
        executors_busy=Gauge(
            "cairn_executors_busy",
            "Executor processes running a call (utilisation: busy / executors)",
            multiprocess_mode="livesum",
            **into,
        ),
        commit_latency=Histogram(
            "cairn_checkpoint_commit_seconds",
            "Time to commit checkpoints (one transaction, one or more calls)",
            buckets=_COMMIT_BUCKETS_S,
            **into,
        ),
        store_errors=Counter(
            "cairn_store_errors",
            "Store failures that stopped an executor",
            ["kind"],
            **into,
        ),
        sse_clients=Gauge(
            "cairn_sse_clients",
            "Clients following a request's events",
            multiprocess_mode="livesum",
            **into,
        ),
        user_counter=Counter(
            "cairn_user_counter",
            "ctx.metrics.counter(name, value) of user code",
            ["name", "function"],
            **into,
        ),
        user_timer=Histogram(
            "cairn_user_timer_seconds",
            "ctx.metrics.timer(name, seconds) of user code",
            ["name", "function"],
            buckets=_DURATION_BUCKETS_S,
            **into,
        ),
    )


class _CommitTimer:
    """Times a checkpoint commit into ``commit_latency`` (nothing when off)."""

    __slots__ = ("_started",)

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *_: object) -> None:
        if M is not None:
            M.commit_latency.observe(time.perf_counter() - self._started)


_NO_TIMER = contextlib.nullcontext()


def commit_timer() -> contextlib.AbstractContextManager[None]:
    """A context that records how long the commit inside it took."""
    return _NO_TIMER if M is None else _CommitTimer()


def process_died(pid: int) -> None:
    """A process that wrote metrics is gone: drop its live gauges."""
    if M is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def exposition(extra: list[Any] | None = None) -> tuple[bytes, str]:
    """The text format of every process's metrics (and ``extra`` collectors),
    with its content type."""
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        generate_latest,
    )
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    if directory is not None:
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    for collector in extra or ():
        registry.register(collector)
    for attempt in range(_READ_TRIES):
        try:
            return generate_latest(registry), CONTENT_TYPE_LATEST
        except (OSError, ValueError):
            # A process creating its file right now leaves it empty for a moment,
            # and prometheus_client cannot read an empty file.
            if attempt == _READ_TRIES - 1:
                raise
            time.sleep(0.005)
    raise AssertionError("unreachable")


def serve_in_child(port: int, host: str = "0.0.0.0") -> int:
    """Serve ``/metrics`` on ``port`` from a forked child process (the
    supervisor forks executors, so it runs no server thread); its pid."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class _Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ.get("PATH_INFO") not in ("/metrics", "/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: the metrics are at /metrics\n"]
        body, content_type = exposition()
        start_response("200 OK", [("Content-Type", content_type)])
        return [body]

    server = make_server(host, port, app, handler_class=_Quiet)  # bind before forking
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            _die_with_parent()
            server.serve_forever()
        except BaseException:
            code = 1
        finally:
            sys.stdout.flush()
            os._exit(code)
    server.server_close()
    return pid


def _die_with_parent() -> None:
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
