"""Benchmark Cairn against DBOS and a minimal durable floor, and write the docs.

``make bench`` (``make bench BENCH_ARGS=--quick`` for a short run), or
``.venv/bin/python bench/run.py --dbos-python bench/.venv-dbos/bin/python``.

One process tree: this script (which imports no engine) starts worker processes,
one per engine (``worker.py``: Cairn and the floor under the project's
interpreter, DBOS under ``bench/.venv-dbos``), and runs every workload at every
durability setting in rounds: each round runs Cairn, DBOS and the floor once each,
one after the other, in an order that rotates from round to round, so the
machine's drift lands on all of them and the per-round ratios cancel it. Every
run gets a fresh store (a new SQLite file, or a new PostgreSQL database dropped
after). The ``workers`` workload is Cairn's alone: a ``map`` shared by 1, 2 and 4
``cairn worker`` processes, its rounds rotating over the number of workers
(``scaling.py``); so are ``invoke`` (``invoke_load.py``) and ``progress``, the
latency of a progress update to an SSE client (``progress_latency.py``), and
``parked``, 10,000 requests waiting for a signal (``parked.py``), and
``observability``, the per-call cost of tracing and metrics and streamed output's
latency (``observability.py``), and ``roundtrips``, the round trips to PostgreSQL of
a request and of a call (``roundtrips.py``). Then it profiles Cairn with py-spy, and writes:

- ``bench/results/latest.json``: every raw timing and figure of this run (and,
  when it writes the docs, ``bench/results/docs.json``, which a later
  ``--no-docs`` run leaves alone: the figures behind the committed docs);
- ``docs/benchmarks.md``: the tables, machine, versions, settings, command;
- ``docs/images/bench_overhead.png``: per-call overhead against calls per request.

No figure is carried over from an earlier run: whatever fails is reported missing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from figures import all_figures
from harness import Block, PgServer, Runner, Stores, fsync_ms

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
DOC = REPO / "docs" / "benchmarks.md"
PLOT = REPO / "docs" / "images" / "bench_overhead.png"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SYSTEMS = ["cairn", "dbos", "floor"]

SETTINGS: dict[str, dict[str, Any]] = {
    "sqlite-full": {
        "name": "sqlite-full",
        "backend": "sqlite",
        "journal": "wal",
        "synchronous": "full",
        "label": "SQLite, WAL, synchronous=FULL",
        "survives": "power loss and OS crashes: every commit fsyncs the WAL "
        "(Cairn's default)",
    },
    "sqlite-normal": {
        "name": "sqlite-normal",
        "backend": "sqlite",
        "journal": "wal",
        "synchronous": "normal",
        "label": "SQLite, WAL, synchronous=NORMAL",
        "survives": "a crash of the process; on power loss or an OS crash the "
        "latest commits may be rolled back (the WAL is fsynced only at "
        "checkpoints), the database stays consistent",
    },
    "dbos-default": {
        "name": "dbos-default",
        "backend": "sqlite",
        "journal": None,
        "synchronous": None,
        "label": "SQLite as DBOS configures it: rollback journal (DELETE), "
        "synchronous=FULL",
        "survives": "power loss and OS crashes (journal and database fsynced at "
        "every commit)",
    },
    "pg": {
        "name": "pg",
        "backend": "postgresql",
        "label": "PostgreSQL, synchronous_commit=on",
        "survives": "power loss of the database server: the commit waits for its "
        "WAL flush",
    },
}


# -- the plan ------------------------------------------------------------------------------
@dataclass
class Sizes:
    seq: int
    scale: list[int]
    map_n: int
    replay_n: int
    three_requests: int
    workers_n: int = 10_000
    workers: tuple[int, ...] = (1, 2, 4)


class Planner:
    """The blocks of a run: workload by workload, each at every setting."""

    def __init__(self, args: argparse.Namespace, pg: bool) -> None:
        self.args = args
        self.quick, self.thorough = args.quick, args.thorough
        quick = self.quick
        self.sizes = Sizes(
            seq=1_000,
            scale=[1_000, 2_000] if quick else [1_000, 10_000, 100_000],
            map_n=500 if quick else 10_000,
            replay_n=2_000 if quick else 10_000,
            three_requests=10 if quick else 20,
        )
        names = ("sqlite-full", "sqlite-normal")
        self.lite = [SETTINGS[s] for s in names if s in args.settings]
        self.pgs = [SETTINGS["pg"]] if pg and "pg" in args.settings else []
        self.every = self.lite + self.pgs

    def rounds(self, quick: int, default: int, thorough: int) -> int:
        if self.args.rounds:
            return int(self.args.rounds)
        return quick if self.quick else thorough if self.thorough else default

    def want(self, workload: str) -> bool:
        return not self.args.only or workload in self.args.only

    def plan(self) -> list[Block]:
        blocks: list[Block] = []
        if self.want("seq"):
            blocks += self.small_requests()
        if self.want("three"):
            blocks += [
                Block(
                    "three",
                    s,
                    SYSTEMS,
                    rounds=self.rounds(3, 5, 7)
                    if s in self.lite
                    else self.rounds(1, 3, 5),
                    requests=self.sizes.three_requests,
                )
                for s in self.every
            ]
        blocks += self.large_requests()
        if self.want("replay"):
            blocks += [
                Block(
                    "replay",
                    s,
                    SYSTEMS,
                    n=self.sizes.replay_n,
                    rounds=self.rounds(2, 3, 5)
                    if s in self.lite
                    else self.rounds(1, 2, 3),
                    fresh=True,
                    cap_s=0 if self.thorough else 45 if s in self.lite else 20,
                )
                for s in self.every
            ]
        if self.want("map"):
            blocks += [
                Block(
                    "map",
                    s,
                    self.slow_for_dbos(s),
                    n=self.sizes.map_n,
                    rounds=self.rounds(1, 2, 3)
                    if s in self.lite
                    else self.rounds(1, 1, 2),
                    fresh=True,
                    cap_s=0 if self.thorough else 30,
                )
                for s in self.every
            ]
        if self.want("workers"):
            blocks += [
                Block(
                    "workers",
                    s,
                    ["cairn"],
                    n=self.sizes.workers_n,
                    workers=self.sizes.workers,
                    rounds=self.rounds(2, 3, 5),
                )
                for s in self.every
            ]
        if self.want("cold"):
            blocks += [
                Block(
                    "cold",
                    s,
                    SYSTEMS,
                    rounds=self.rounds(2, 5, 7) if s in self.lite else 3,
                )
                for s in self.every
            ]
        return blocks

    def slow_for_dbos(self, setting: dict[str, Any]) -> list[str]:
        """The engines of the map of 10,000 items, which takes DBOS minutes: DBOS
        runs it at its fastest setting (sqlite-normal) only, unless --thorough."""
        if self.thorough or setting["name"] == "sqlite-normal":
            return list(SYSTEMS)
        return [s for s in SYSTEMS if s != "dbos"]

    def small_requests(self) -> list[Block]:
        """Requests of 1,000 calls. Like every size, each in a fresh worker, so
        that the sizes compare like with like (and peak memory is the request's)."""
        n = self.sizes.seq
        blocks = [
            Block("seq", s, SYSTEMS, n=n, rounds=self.rounds(3, 5, 7), fresh=True)
            for s in self.lite
        ]
        if "dbos-default" in self.args.settings:
            default = SETTINGS["dbos-default"]
            rounds = self.rounds(1, 3, 5)
            blocks.append(
                Block("seq", default, ["dbos"], n=n, rounds=rounds, fresh=True)
            )
        blocks += [
            Block("seq", s, SYSTEMS, n=n, rounds=self.rounds(1, 3, 5), fresh=True)
            for s in self.pgs
        ]
        return blocks

    def large_requests(self) -> list[Block]:
        """Each in a fresh worker; the first request of replay_n calls of each
        engine is kept for the replay blocks."""
        blocks = []
        for n in self.sizes.scale[1:]:
            big = n >= 100_000
            keep = n == self.sizes.replay_n and self.want("replay")
            if not (self.want("seq") or keep):
                continue
            for s in self.every:
                if big and s in self.pgs:
                    continue  # 100k calls on PostgreSQL: not run (too long)
                systems = list(SYSTEMS)
                if big and not self.thorough:
                    systems.remove("dbos")  # 100k DBOS steps: minutes; --thorough
                blocks.append(
                    Block(
                        "seq",
                        s,
                        systems,
                        n=n,
                        rounds=1 if big or s in self.pgs else self.rounds(1, 2, 3),
                        cap_s=0 if self.thorough else 30,
                        fresh=True,
                        keep_template=keep,
                    )
                )
        return blocks


# -- the environment ------------------------------------------------------------------------
def _git(*argv: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(REPO), *argv],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def environment() -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 1,
        "memory_gb": round(_memory_gb(), 1),
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "commit": _git("rev-parse", "--short=9", "HEAD") or "unknown",
        "src_dirty": bool(_git("status", "--porcelain", "--", "src")),
        "cairn_concurrency": os.environ.get("CAIRN_CONCURRENCY")
        or f"default ({max(2, os.cpu_count() or 2)} executors)",
        "load_before": list(os.getloadavg()),
    }


def probe_pg(runner: Runner) -> tuple[bool, str]:
    """Whether Cairn's PostgreSQL store works here: open, migrate, run a request."""
    pg = runner.stores.pg
    assert pg is not None
    location = pg.create()
    try:
        result = runner.worker("cairn").call(
            {"op": "probe", "setting": SETTINGS["pg"], "store": location}, 120
        )
    except Exception as error:
        result = {"ok": False, "error": str(error)}
    finally:
        runner.retire("cairn")
        pg.drop(location)
    if result.get("ok"):
        return (
            True,
            "included: Cairn's PostgreSQL store opened, migrated and ran a request",
        )
    return False, (
        'pending: `cairn.store.open_store("postgresql://...")` failed in this run '
        f"({result.get('error')})"
    )


def connect_pg(url: str) -> tuple[PgServer | None, str]:
    try:
        server = PgServer(url)
        server.settings()
        return server, ""
    except Exception as error:
        return None, f"not run: no PostgreSQL server at {url} ({error})"


# -- main ------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a short run (< 2 min)")
    size.add_argument(
        "--thorough",
        action="store_true",
        help="more rounds, DBOS at 100k calls and DBOS's map at every setting (long)",
    )
    parser.add_argument("--rounds", type=int, help="rounds of every block")
    parser.add_argument(
        "--dbos-python",
        default=str(BENCH / ".venv-dbos" / "bin" / "python"),
        help="interpreter with dbos and matplotlib (make bench-venv)",
    )
    parser.add_argument(
        "--settings",
        nargs="+",
        choices=sorted(SETTINGS),
        help="durability settings to run (default: all; --quick: the two SQLite ones)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[
            "seq",
            "three",
            "map",
            "replay",
            "cold",
            "workers",
            "invoke",
            "progress",
            "parked",
            "observability",
            "roundtrips",
        ],
        help="run only these workloads",
    )
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server")
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy")
    parser.add_argument(
        "--no-docs",
        action="store_true",
        help="write bench/results only, not docs/benchmarks.md and the plot",
    )
    args = parser.parse_args(argv)
    if args.settings is None:
        args.settings = (
            ["sqlite-full", "sqlite-normal"]
            if args.quick
            else ["sqlite-full", "sqlite-normal", "dbos-default", "pg"]
        )
    return args


def command_line(args: argparse.Namespace, argv: list[str] | None) -> str:
    given = sys.argv[1:] if argv is None else argv
    shown = []
    skip = False
    for i, word in enumerate(given):
        if skip:
            skip = False
            continue
        if word == "--dbos-python":
            skip = i + 1 < len(given)
            continue
        if word.startswith("--dbos-python="):
            continue
        shown.append(word)
    if not shown:
        return "make bench"
    return f"make bench BENCH_ARGS={shlex.quote(' '.join(shown))}"


def cairn_alone(planner: Planner, pg_ok: bool) -> dict[str, dict[str, Any]]:
    """The workloads that measure Cairn with no peer, each under its own key of
    the run's document (empty when left out of the plan)."""
    args = planner.args
    stores = ["sqlite"] + ([args.pg_url] if pg_ok else [])
    found: dict[str, dict[str, Any]] = {
        "invoke": {},
        "progress": {},
        "parked": {},
        "observability": {},
        "roundtrips": {},
    }
    if planner.want("invoke"):
        import invoke_load

        found["invoke"] = invoke_load.measure_all(stores, 1 if args.quick else 3)
    if planner.want("progress"):
        import progress_latency

        found["progress"] = progress_latency.measure_all(stores, 1 if args.quick else 3)
    if planner.want("parked"):
        import parked

        found["parked"] = parked.measure_all(stores, 1000 if args.quick else 10_000)
    if planner.want("observability"):
        import observability

        found["observability"] = observability.measure_all(
            planner.rounds(2, 5, 9),
            1_000 if args.quick else 2_000,
            50 if args.quick else 200,
        )
    if pg_ok and planner.want("roundtrips"):
        import roundtrips

        found["roundtrips"] = roundtrips.measure_all(
            args.pg_url, 1 if args.quick else 3, 5 if args.quick else 20
        )
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.path.exists(args.dbos_python):
        print(
            f"no interpreter for DBOS at {args.dbos_python}: run `make bench-venv` "
            "(or `make bench`, which builds it)",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    env = environment()
    env["command"] = command_line(args, argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_dir = RESULTS / "logs"
    log_dir.mkdir(exist_ok=True)
    for old_log in log_dir.glob("*.log"):
        old_log.unlink()
    pythons = {"cairn": sys.executable, "floor": sys.executable}
    pythons["dbos"] = os.path.abspath(args.dbos_python)
    pg, pg_note = None, "not run (not in --settings)"
    if "pg" in args.settings:
        pg, pg_note = connect_pg(args.pg_url)
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp:
        env["fsync_ms_before"] = fsync_ms(tmp)
        runner = Runner(pythons, tmp, Stores(tmp, pg), str(log_dir))
        try:
            env["versions"] = runner.versions()
            pg_ok = False
            if pg is not None:
                pg_ok, pg_note = probe_pg(runner)
            env["pg"] = {"included": pg_ok, "note": pg_note}
            if pg is not None:
                env["pg"]["server"] = pg.settings()
            print(f"PostgreSQL: {pg_note}", file=sys.stderr)
            planner = Planner(args, pg_ok)
            blocks, sizes = planner.plan(), planner.sizes
            runner.total_hint = sum(len(b.lanes()) * b.rounds for b in blocks)
            runner.started = time.perf_counter()
            for block in blocks:
                runner.run_block(block)
        finally:
            runner.close()
            if pg is not None:
                for location, _id in runner.templates.values():
                    if location.startswith("postgresql"):
                        pg.drop(location)
                pg.drop_all()
        alone = cairn_alone(planner, pg_ok)
        env["fsync_ms_after"] = fsync_ms(tmp)
        env["load_after"] = list(os.getloadavg())
        env["job_load"] = [j.load for j in runner.jobs]
        figures = all_figures(blocks, runner.jobs)
        profiles: dict[str, Any] = {}
        if not args.no_profile:
            from profiling import profile_all

            profiles = profile_all(
                pythons,
                tmp,
                [SETTINGS[s] for s in ("sqlite-full", "sqlite-normal")]
                if not args.quick
                else [SETTINGS["sqlite-full"]],
                quick=args.quick,
            )
    env["elapsed_s"] = time.perf_counter() - started
    document = {
        "environment": env,
        "settings": SETTINGS,
        "sizes": sizes.__dict__,
        "quick": args.quick,
        "thorough": args.thorough,
        "figures": [f.as_dict() for f in figures],
        **alone,
        "profiles": profiles,
        "jobs": [
            {
                "block": j.block.key,
                "system": j.system,
                "round": j.round,
                "wall_s": j.wall_s,
                "load": j.load,
                "error": j.error,
                "result": j.result,
            }
            for j in runner.jobs
        ],
    }
    out = RESULTS / "latest.json"
    out.write_text(json.dumps(document, indent=1, default=str) + "\n")
    from report import render_console, write_docs

    print(render_console(document))
    if not args.no_docs:
        (RESULTS / "docs.json").write_text(out.read_text())
        write_docs(document, DOC, PLOT, args.dbos_python)
        print(f"wrote {DOC.relative_to(REPO)} and {PLOT.relative_to(REPO)}")
    print(f"raw figures: {out.relative_to(REPO)}; total {env['elapsed_s']:.0f}s")
    errors = [e for f in figures for e in f.errors]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
