"""One engine under test, driven by ``run.py``: ``python bench/worker.py MODE SYSTEM``.

SYSTEM is ``cairn`` or ``floor`` (the project's interpreter) or ``dbos`` (the
interpreter of ``bench/.venv-dbos``). Modes:

- ``serve``: read one JSON command per line on stdin, answer one line
  ``RESULT {json}`` each; first line ``READY {json}`` (versions, import time).
  Every command runs one workload on a fresh store it is given (a file path or a
  PostgreSQL database URL) and closes it again; the timings are seconds from
  ``time.perf_counter``. Anything the engines print goes to stderr.
- ``cold``: a fresh process imports the engine and runs its first 1-call request
  on a new store, then prints ``DONE {json}`` with the ``perf_counter`` instant it
  had the output (the parent took one just before starting the process; on Linux
  both read the same monotonic clock).
- ``profile``: a warm-up, then ``--reps`` requests of ``--n`` calls; for py-spy.

Commands (``op``): ``seq`` (a request of n sequential no-op calls after a 1-call
warm-up; peak memory of the request), ``three`` (the first 3-call request on a new
store, engine start included, then ``requests`` more, each timed), ``map``
(``map`` over n no-op items), ``replay`` (replay a request of n completed calls
held in a copy of a store), ``workers`` (Cairn only: ``map`` over n no-op items
run by ``workers`` ``cairn worker`` processes this process starts, see
``scaling.py``), ``probe`` (open, warm up, close: does this backend work here?),
``quit``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from typing import Any

from memory import Memory
from plain import expected_sum, plain_sequential

_SYSTEMS = {
    "cairn": ("sys_cairn", "CairnSystem"),
    "floor": ("sys_floor", "FloorSystem"),
    "dbos": ("sys_dbos", "DbosSystem"),
}


class Failed(Exception):
    """A workload went wrong (wrong output, a replay that ran calls again...)."""


def load(name: str) -> Any:
    import importlib

    module_name, class_name = _SYSTEMS[name]
    module = importlib.import_module(module_name)
    return getattr(module, class_name)()


def check(what: str, n: int, output: Any) -> None:
    if output != expected_sum(n):
        raise Failed(f"{what} of {n} returned {output!r}, not {expected_sum(n)}")


def time_plain(n: int) -> float:
    """Seconds for the plain loop of ``n`` calls (averaged over >= ~20k calls)."""
    loops = max(1, 20_000 // max(n, 1))
    started = time.perf_counter()
    for _ in range(loops):
        plain_sequential(n)
    return (time.perf_counter() - started) / loops


# -- workloads ----------------------------------------------------------------------------
def op_seq(system: Any, cmd: dict[str, Any], memory: Memory) -> dict[str, Any]:
    n = cmd["n"]
    system.open(cmd["setting"], cmd["store"])
    try:
        system.warm()
        plain = time_plain(n)
        memory.reset()
        started = time.perf_counter()
        output = system.request(n)
        elapsed = time.perf_counter() - started
        memory.sample()
        check("sequential request", n, output)
        return {
            "elapsed_s": elapsed,
            "plain_s": plain,
            "request_id": system.last_id,
            "memory": memory.report(),
            "effective": system.effective,
        }
    finally:
        system.close()


def op_three(system: Any, cmd: dict[str, Any], memory: Memory) -> dict[str, Any]:
    del memory
    started = time.perf_counter()
    system.open(cmd["setting"], cmd["store"])
    try:
        check("3-call request", 3, system.request(3))
        first = time.perf_counter() - started
        warm = []
        for _ in range(cmd["requests"]):
            began = time.perf_counter()
            output = system.request(3)
            warm.append(time.perf_counter() - began)
            check("3-call request", 3, output)
        return {
            "first_s": first,
            "warm_s": warm,
            "elapsed_s": statistics.median(warm),
            "effective": system.effective,
        }
    finally:
        system.close()


def op_map(system: Any, cmd: dict[str, Any], memory: Memory) -> dict[str, Any]:
    n = cmd["n"]
    system.open(cmd["setting"], cmd["store"], queues=True)
    try:
        system.warm()
        memory.reset()
        started = time.perf_counter()
        output = system.map(n)
        elapsed = time.perf_counter() - started
        memory.sample()
        check("map", n, output)
        report = memory.report()
        verified = system.verify_map(n) if cmd.get("verify") else {}
        return {
            "elapsed_s": elapsed,
            "memory": report,
            "effective": system.effective,
            **verified,
        }
    finally:
        system.close()


def op_replay(system: Any, cmd: dict[str, Any], memory: Memory) -> dict[str, Any]:
    n = cmd["n"]
    system.open(cmd["setting"], cmd["store"], queues=True)
    try:
        system.warm()
        system.before_replay()
        memory.reset()
        started = time.perf_counter()
        output = system.replay(cmd["request_id"], n)
        elapsed = time.perf_counter() - started
        memory.sample()
        report = memory.report()
        check("replayed request", n, output)
        verified = system.verify_replay(n)
        return {
            "elapsed_s": elapsed,
            "memory": report,
            "effective": system.effective,
            **verified,
        }
    finally:
        system.close()


def op_workers(system: Any, cmd: dict[str, Any], memory: Memory) -> dict[str, Any]:
    del memory
    system.open(cmd["setting"], cmd["store"])
    try:
        result = system.over_workers(cmd["n"], cmd["workers"], cmd["log_dir"])
        return {**result, "effective": system.effective}
    finally:
        system.close()


def op_probe(system: Any, cmd: dict[str, Any], memory: Memory) -> dict[str, Any]:
    del memory
    system.open(cmd["setting"], cmd["store"])
    try:
        system.warm()
        return {"effective": system.effective}
    finally:
        system.close()


OPS = {
    "seq": op_seq,
    "three": op_three,
    "map": op_map,
    "replay": op_replay,
    "workers": op_workers,
    "probe": op_probe,
}


# -- modes ----------------------------------------------------------------------------------
def _protocol_channel() -> Any:
    """A private copy of stdout for the protocol; fd 1 then goes to stderr, so that
    whatever an engine prints cannot break a line."""
    sys.stdout.flush()
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return channel


def serve(name: str) -> int:
    channel = _protocol_channel()
    started = time.perf_counter()
    system = load(name)
    info = {
        "system": name,
        "import_s": time.perf_counter() - started,
        "pid": os.getpid(),
    }
    info.update(system.info())
    channel.write("READY " + json.dumps(info) + "\n")
    memory = Memory()
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        try:
            result = {"ok": True, **OPS[cmd["op"]](system, cmd, memory)}
        except BaseException as error:
            result = {
                "ok": False,
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(),
            }
        channel.write("RESULT " + json.dumps(result) + "\n")
    return 0


def cold(name: str, setting: dict[str, Any], store: str) -> int:
    channel = _protocol_channel()
    began = time.perf_counter()
    system = load(name)
    imported = time.perf_counter()
    system.open(setting, store)
    output = system.request(1)
    done = time.perf_counter()
    memory = Memory(reset=False)  # the whole life of the process
    memory.sample()
    check("1-call request", 1, output)
    result = {
        "done_at": done,
        "import_s": imported - began,
        "request_s": done - imported,
        "memory": memory.report(),
        "effective": system.effective,
    }
    system.close()
    channel.write("DONE " + json.dumps(result) + "\n")
    return 0


def profile(name: str, setting: dict[str, Any], store: str, n: int, reps: int) -> int:
    channel = _protocol_channel()
    system = load(name)
    system.open(setting, store)
    times = []
    try:
        system.warm()
        for _ in range(reps):
            began = time.perf_counter()
            check("sequential request", n, system.request(n))
            times.append(time.perf_counter() - began)
    finally:
        system.close()
    per_request_ms = statistics.median(times) * 1000
    timing = {"per_call_ms": per_request_ms / n, "per_request_ms": per_request_ms}
    channel.write("PROFILE " + json.dumps(timing) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["serve", "cold", "profile"])
    parser.add_argument("system", choices=sorted(_SYSTEMS))
    parser.add_argument("--setting", default="{}", help="JSON (cold, profile)")
    parser.add_argument("--store", default="", help="store path or URL")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=1)
    args = parser.parse_args(argv)
    if args.mode == "serve":
        return serve(args.system)
    setting = json.loads(args.setting)
    if args.mode == "cold":
        return cold(args.system, setting, args.store)
    return profile(args.system, setting, args.store, args.n, args.reps)


if __name__ == "__main__":
    sys.exit(main())
