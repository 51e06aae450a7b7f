"""Workers as real subprocesses (``cairn worker``), killed with real signals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest

from cairn.store import Store, open_store
from cairn.types import CallStatus

APPS = Path(__file__).with_name("apps.py")
CAIRN = str(Path(sys.executable).parent / "cairn")


class Workers:
    """Starts and stops ``cairn worker`` processes on one store."""

    def __init__(self, store_url: str, effects: Path, apps: Path = APPS) -> None:
        self.store_url = store_url
        self.effects = effects
        self.apps = apps
        self.running: list[subprocess.Popen[bytes]] = []
        self._logs: dict[int, Path] = {}

    def start(
        self, faults: str = "", prefix: Sequence[str] = (), **env: str
    ) -> subprocess.Popen[bytes]:
        """A worker on the store; ``prefix`` runs it through another command."""
        environ = {
            **os.environ,
            "CAIRN_TEST_EFFECTS": str(self.effects),
            "CAIRN_CONCURRENCY": "2",
            "CAIRN_FAULTS": faults,
            **env,
        }
        log = self.effects.with_name(f"worker-{len(self.running)}.log")
        with open(log, "wb") as stderr:
            command = [*prefix, CAIRN, "--log-level", "info", "worker", str(self.apps)]
            process = subprocess.Popen(
                [*command, "--store", self.store_url, "--grace", "5"],
                env=environ,
                stderr=stderr,
            )
        self.running.append(process)
        self._logs[process.pid] = log
        return process

    def wait_serving(self, process: subprocess.Popen[bytes], timeout_s: float) -> None:
        """Until the worker has started its executors and serves (its log says so)."""
        log = self._logs[process.pid]
        deadline = time.monotonic() + timeout_s
        # The engine's "worker ID serving URL with N executor(s)", once started.
        while not re.search(r"worker \S+ serving ", log.read_text(errors="replace")):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker did not start serving: {log.read_text()}")
            time.sleep(0.01)

    def logs(self) -> str:
        """Everything the workers wrote to stderr."""
        return "".join(
            path.read_text(errors="replace")
            for path in sorted(self.effects.parent.glob("worker-*.log"))
        )

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait()

    def effect_counts(self) -> Counter[str]:
        if not self.effects.exists():
            return Counter()
        return Counter(self.effects.read_text().splitlines())


@pytest.fixture
def workers(store_url: str, tmp_path: Path) -> Iterator[Workers]:
    os.environ["CAIRN_TEST_EFFECTS"] = str(tmp_path / "effects.log")
    manager = Workers(store_url, tmp_path / "effects.log")
    yield manager
    manager.stop_all()
    os.environ.pop("CAIRN_TEST_EFFECTS", None)


def wait_finished(store: Store, request_id: str, timeout_s: float = 60.0) -> None:
    """Wait until the request reaches a final state (fails the test otherwise)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = store.get_request(request_id)
        if record is not None and record.status.finished:
            return
        time.sleep(0.05)
    raise AssertionError(f"request {request_id} did not finish in {timeout_s}s")


def assert_nothing_left_behind(store: Store, request_id: str) -> None:
    """No call of a finished request is still pending or running."""
    stuck = [
        (c.function, c.status)
        for c in store.list_calls(request_id)
        if c.status in (CallStatus.PENDING, CallStatus.RUNNING)
    ]
    assert stuck == []


@pytest.fixture
def crash_store(store_url: str) -> Iterator[Store]:
    store = open_store(store_url)
    yield store
    store.close()


def peak_overlap(lines: Iterable[str]) -> int:
    """Most calls running at once, from ``start T ...`` / ``end T ...`` lines."""
    timeline = sorted(
        (float(line.split()[1]), 1 if line.startswith("start") else -1)
        for line in lines
    )
    running = peak = 0
    for _, delta in timeline:
        running += delta
        peak = max(peak, running)
    return peak


def assert_no_step_began_after_its_checkpoint(
    store: Store, ids: list[str], effects: Path
) -> None:
    """A step that ran again after its checkpoint committed was run twice."""
    began: dict[str, list[float]] = {}
    for line in effects.with_name("effects.log.times").read_text().splitlines():
        label, at_ms = line.split("\t")
        began.setdefault(label, []).append(float(at_ms))
    for seed, request_id in enumerate(ids):
        steps = [
            c for c in store.list_calls(request_id) if c.function == "crash_ten_step"
        ]
        assert len(steps) == 10
        for step in steps:
            assert step.status is CallStatus.SUCCEEDED and step.finished_at_ms
            label = f"r{request_id} {seed * 100 + step.seq}"
            assert max(began[label]) <= step.finished_at_ms, (label, began[label])
