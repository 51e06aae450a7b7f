"""One benchmark workload per process: ``python bench/workloads.py WORKLOAD [options]``.

Prints one line ``BENCH-RESULT {json}`` with the raw timings (seconds) of every
repetition and the peak memory of the process and its executors. ``run.py``
starts one such process per workload and durability setting, so each memory
figure belongs to one workload, and turns the raw timings into figures.

Workloads (every repetition on a fresh store file in a fresh temporary directory):

- ``seq``: A/B/A/B in this process: a Cairn request of N sequential no-op calls,
  then the same N calls through ``floor.py``, plus the plain loop and a 0-call
  request (the fixed cost of a request).
- ``scale``: a Cairn request of N sequential calls (``--save-store`` keeps a copy
  of the first repetition's store for ``replay``).
- ``map``: a request mapping a trivial function over N items.
- ``replay``: ``get_request(id).replay()`` of a request of N completed calls, each
  repetition on a fresh copy of a store holding it.
- ``cold``: this fresh process imports Cairn and runs one 1-call request.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

MARKER = "BENCH-RESULT "
_KB = 1024 if sys.platform == "darwin" else 1  # ru_maxrss is bytes on macOS


class Failed(Exception):
    """A workload went wrong (wrong output, missing store...)."""


# -- memory ---------------------------------------------------------------------------
def _children_hwm_kb() -> list[int]:
    """Peak RSS (VmHWM, KiB) of every live child process (the executors)."""
    me = os.getpid()
    peaks = []
    try:
        entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return []
    for pid in entries:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                stat = handle.read()
            if int(stat.rsplit(")", 1)[1].split()[1]) != me:
                continue
            with open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]))
        except (OSError, ValueError, IndexError):
            continue
    return peaks


class Memory:
    """Peaks of this process and of the executors it forked."""

    def __init__(self) -> None:
        self.executor_peak_kb = 0
        self.executors_sum_kb = 0
        self.executors_seen = 0
        self.main_kb: int | None = None

    def freeze_main(self) -> None:
        """Report this process's peak as of now (what follows is bookkeeping)."""
        self.main_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // _KB

    def sample(self) -> None:
        """Read the executors' peaks while they are alive (after each request)."""
        peaks = _children_hwm_kb()
        if peaks:
            self.executor_peak_kb = max(self.executor_peak_kb, *peaks)
            self.executors_sum_kb = max(self.executors_sum_kb, sum(peaks))
            self.executors_seen = max(self.executors_seen, len(peaks))

    def report(self) -> dict[str, Any]:
        """KiB; ``tree_kb`` adds the per-process peaks (an upper bound of the sum)."""
        main_kb = self.main_kb or (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // _KB
        )
        waited_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // _KB
        executor_kb = max(self.executor_peak_kb, waited_kb)
        executors_kb = max(self.executors_sum_kb, executor_kb)
        return {
            "main_kb": main_kb,
            "executor_max_kb": executor_kb,
            "executors": self.executors_seen,
            "tree_kb": main_kb + executors_kb,
        }


# -- helpers ----------------------------------------------------------------------------
def repetitions(args: argparse.Namespace, out: dict[str, Any]) -> Iterator[int]:
    """``range(args.reps)``, stopping early (after at least one) past ``--budget-s``."""
    started = time.perf_counter()
    last = 0.0
    for rep in range(args.reps):
        spent = time.perf_counter() - started
        if rep and args.budget_s and spent + last > args.budget_s:
            out["stopped_by_budget"] = f"{rep} of {args.reps} runs in {spent:.1f}s"
            return
        began = time.perf_counter()
        yield rep
        last = time.perf_counter() - began


def _load() -> tuple[Any, Any, float]:
    """Import Cairn and the bench applications; return them and the import time."""
    started = time.perf_counter()
    apps = importlib.import_module("bench_apps")
    cairn = importlib.import_module("cairn")
    return apps, cairn, time.perf_counter() - started


def release_engine() -> None:
    """Stop the executors a finished local run left warm, outside any timing.

    Cairn keeps the process's latest local engine (its executor processes) alive
    for the next run on the same store. Every run here uses a new store, so the
    next run would stop it inside its own timing, and idle executors would poll
    while the floor runs. Nothing to do on a Cairn that does not keep one.
    """
    module = sys.modules.get("cairn._request")
    engine = getattr(module, "_local_engine", None)
    if engine is not None:
        engine.close()
        module._local_engine = None  # type: ignore[union-attr]


class Stores:
    """Fresh store files, one temporary directory each, removed after use."""

    def __init__(self, root: str | None, synchronous: str) -> None:
        self.root = root
        self.synchronous = synchronous
        self._dirs: list[str] = []

    def new_path(self) -> str:
        directory = tempfile.mkdtemp(prefix="cairn-bench-", dir=self.root)
        self._dirs.append(directory)
        return os.path.join(directory, "store.db")

    def url(self, path: str) -> str:
        return f"sqlite:///{os.path.abspath(path)}?synchronous={self.synchronous}"

    def cleanup(self) -> None:
        release_engine()
        for directory in self._dirs:
            shutil.rmtree(directory, ignore_errors=True)
        self._dirs.clear()


def time_request(
    cairn: Any, app: Any, n: int, url: str, memory: Memory
) -> tuple[float, str, Any]:
    """Invoke to output of one local request; returns (seconds, request id, output)."""
    release_engine()
    started = time.perf_counter()
    request = cairn.run_local_application(app, n, cairn_store=url)
    output = request.output()
    elapsed = time.perf_counter() - started
    memory.sample()
    release_engine()
    return elapsed, request.id, output


def time_plain(apps: Any, n: int) -> float:
    """Seconds for the plain loop of ``n`` calls (averaged over >= ~20k calls)."""
    loops = max(1, 20_000 // max(n, 1))
    started = time.perf_counter()
    for _ in range(loops):
        apps.plain_sequential(n)
    return (time.perf_counter() - started) / loops


def time_floor(apps: Any, n: int, path: str, synchronous: str) -> float:
    """Seconds for ``n`` calls through the floor decorator (opening the file included)."""
    from floor import FloorStore

    started = time.perf_counter()
    store = FloorStore(path, synchronous)
    noop = store.durable(apps.plain_noop)
    total = 0
    for i in range(n):
        total += noop(i)
    store.close()
    elapsed = time.perf_counter() - started
    if total != apps.expected_sum(n):
        raise Failed(f"floor loop returned {total}")
    return elapsed


def _check(apps: Any, what: str, n: int, output: Any) -> None:
    if output != apps.expected_sum(n):
        raise Failed(f"{what} of {n} returned {output!r}, not {apps.expected_sum(n)}")


def copy_store(source: str, target: str) -> None:
    """A consistent copy of a SQLite store (WAL included) via the backup API."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


# -- workloads ------------------------------------------------------------------------------
def seq(args: argparse.Namespace, out: dict[str, Any], memory: Memory) -> None:
    apps, cairn, out["import_s"] = _load()
    stores = Stores(args.tmp, args.sync)
    n = args.n
    # Warm-up pair (not reported): first-use costs belong to the cold-start figure.
    time_request(
        cairn, apps.bench_sequential, 100, stores.url(stores.new_path()), memory
    )
    time_floor(apps, 100, stores.new_path(), args.sync)
    stores.cleanup()
    for key in ("plain_s", "cairn_s", "floor_s", "fixed_s"):
        out[key] = []
    for _ in repetitions(args, out):
        plain = time_plain(apps, n)
        elapsed, _id, output = time_request(
            cairn, apps.bench_sequential, n, stores.url(stores.new_path()), memory
        )
        _check(apps, "sequential request", n, output)
        floor = time_floor(apps, n, stores.new_path(), args.sync)
        fixed, _id, output = time_request(
            cairn, apps.bench_sequential, 0, stores.url(stores.new_path()), memory
        )
        _check(apps, "empty request", 0, output)
        # Append together, so a failure mid-repetition leaves aligned lists.
        out["plain_s"].append(plain)
        out["cairn_s"].append(elapsed)
        out["floor_s"].append(floor)
        out["fixed_s"].append(fixed)
        stores.cleanup()


def scale(args: argparse.Namespace, out: dict[str, Any], memory: Memory) -> None:
    apps, cairn, out["import_s"] = _load()
    stores = Stores(args.tmp, args.sync)
    out["plain_s"], out["cairn_s"] = [], []
    for rep in repetitions(args, out):
        plain = time_plain(apps, args.n)
        path = stores.new_path()
        elapsed, request_id, output = time_request(
            cairn, apps.bench_sequential, args.n, stores.url(path), memory
        )
        _check(apps, "sequential request", args.n, output)
        out["plain_s"].append(plain)
        out["cairn_s"].append(elapsed)
        if rep == 0 and args.save_store:
            copy_store(path, args.save_store)
            out["saved_store"] = args.save_store
            out["request_id"] = request_id
        stores.cleanup()


def map_items(args: argparse.Namespace, out: dict[str, Any], memory: Memory) -> None:
    apps, cairn, out["import_s"] = _load()
    stores = Stores(args.tmp, args.sync)
    out["cairn_s"] = []
    for _ in repetitions(args, out):
        elapsed, _id, output = time_request(
            cairn, apps.bench_map, args.n, stores.url(stores.new_path()), memory
        )
        _check(apps, "map request", args.n, output)
        out["cairn_s"].append(elapsed)
        stores.cleanup()


def replay(args: argparse.Namespace, out: dict[str, Any], memory: Memory) -> None:
    apps, cairn, out["import_s"] = _load()
    stores = Stores(args.tmp, args.sync)
    template, request_id = args.template, args.request_id
    if not (template and request_id and os.path.exists(template)):
        # No store from the scale workload: build one here (outside the timings;
        # the memory figure then includes the build).
        template = stores.new_path()
        _s, request_id, output = time_request(
            cairn, apps.bench_sequential, args.n, stores.url(template), memory
        )
        _check(apps, "sequential request", args.n, output)
        out["built_store_here"] = True
    out["replay_s"] = []
    for rep in repetitions(args, out):
        path = stores.new_path()
        copy_store(template, path)
        url = stores.url(path)
        release_engine()
        started = time.perf_counter()
        request = cairn.get_request(request_id, store=url)
        request.replay()
        elapsed = time.perf_counter() - started
        memory.sample()
        release_engine()
        _check(apps, "replayed request", args.n, request.output())
        out["replay_s"].append(elapsed)
        if rep == args.reps - 1:
            # Listing 10k calls costs memory the replay did not use: freeze the
            # main process's peak first.
            memory.freeze_main()
            calls = [c for c in request.calls() if c.kind == "call"]
            out["calls"] = len(calls)
            out["served_from_checkpoint"] = sum(c.served_from_checkpoint for c in calls)
            out["ran_again"] = sum(c.ran_in_latest_run for c in calls)
            if out["served_from_checkpoint"] != args.n:
                raise Failed(
                    f"replay served {out['served_from_checkpoint']} of {args.n} calls "
                    "from checkpoints"
                )
    stores.cleanup()


def cold(args: argparse.Namespace, out: dict[str, Any], memory: Memory) -> None:
    apps, cairn, out["import_s"] = _load()
    stores = Stores(args.tmp, args.sync)
    started = time.perf_counter()
    request = cairn.run_local_application(
        apps.bench_sequential, 1, cairn_store=stores.url(stores.new_path())
    )
    output = request.output()
    out["request_s"] = time.perf_counter() - started
    memory.sample()
    _check(apps, "1-call request", 1, output)
    stores.cleanup()


WORKLOADS: dict[str, Callable[[argparse.Namespace, dict[str, Any], Memory], None]] = {
    "seq": seq,
    "scale": scale,
    "map": map_items,
    "replay": replay,
    "cold": cold,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--sync", default="full", choices=["full", "normal"])
    parser.add_argument("--n", type=int, default=1000, help="calls or items")
    parser.add_argument("--reps", type=int, default=1, help="repetitions")
    parser.add_argument(
        "--budget-s", type=float, default=0.0, help="no new run past this (0: none)"
    )
    parser.add_argument("--tmp", default=None, help="where to put store files")
    parser.add_argument("--save-store", default=None, help="scale: copy a store here")
    parser.add_argument("--template", default=None, help="replay: the store to copy")
    parser.add_argument("--request-id", default=None, help="replay: the request")
    args = parser.parse_args(argv)
    out: dict[str, Any] = {"workload": args.workload, "sync": args.sync, "n": args.n}
    memory = Memory()
    code = 0
    try:
        WORKLOADS[args.workload](args, out, memory)
    except BaseException as error:
        out["error"] = f"{type(error).__name__}: {error}"
        out["traceback"] = traceback.format_exc()
        code = 1
    finally:
        try:
            release_engine()  # so that the executors count in RUSAGE_CHILDREN
        except Exception as error:
            out.setdefault("error", f"closing the engine: {error}")
        out["memory"] = memory.report()
    sys.stdout.flush()
    print(MARKER + json.dumps(out), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
