"""Cairn benchmark: ``make bench`` (or ``.venv/bin/python bench/run.py [--quick] [--runs N]``).

Runs each workload of ``workloads.py`` in a fresh process, for ``synchronous=full``
and ``synchronous=normal``, and prints one table: every figure is the median of
its runs with the min-max spread, next to the durability setting, the machine
and the Cairn commit. The same figures, with every raw value, go to
``bench/results/latest.json``. A workload that fails is reported and the run
goes on. This script does not import Cairn: it only starts and reads processes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORKLOADS = BENCH / "workloads.py"
RESULTS = BENCH / "results" / "latest.json"
MARKER = "BENCH-RESULT "
SYNCS = ("full", "normal")

SEQ_N = 1_000
SCALE_N = 10_000
BIG_N = 100_000
MAP_N = 10_000
QUICK_MAP_N = 2_000
REPLAY_N = 10_000


# -- the plan ---------------------------------------------------------------------------
@dataclass
class Plan:
    """How many runs each workload gets, and the time budget that may cut them."""

    runs: int  # target runs of every figure
    big_runs: int  # runs of the 100k request; 0 skips it
    map_n: int
    budget_s: float  # 0: no budget, every workload gets its target runs
    syncs: tuple[str, ...]
    only: tuple[str, ...]

    def wants(self, workload: str) -> bool:
        return not self.only or workload in self.only


def make_plan(args: argparse.Namespace) -> Plan:
    runs = args.runs if args.runs is not None else (3 if args.quick else 5)
    big = args.big_runs if args.big_runs is not None else (0 if args.quick else 1)
    budget = args.budget if args.budget is not None else (32 if args.quick else 170)
    return Plan(
        runs=max(1, runs),
        big_runs=max(0, big),
        map_n=args.map_n or (QUICK_MAP_N if args.quick else MAP_N),
        budget_s=max(0.0, budget),
        syncs=tuple(args.sync),
        only=tuple(args.only or ()),
    )


# -- environment -------------------------------------------------------------------------
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


def environment() -> dict[str, Any]:
    commit = _git("rev-parse", "--short=9", "HEAD")
    dirty = _git("status", "--porcelain", "--", "src")
    cores = os.cpu_count() or 1
    concurrency = os.environ.get("CAIRN_CONCURRENCY")
    try:
        from importlib.metadata import version

        cairn_version = version("cairn")
    except Exception:
        cairn_version = "?"
    return {
        "cores": cores,
        "cpu": _cpu_model(),
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cairn_version": cairn_version,
        "commit": commit or "unknown",
        "src_dirty": bool(dirty),
        "concurrency": (
            f"CAIRN_CONCURRENCY={concurrency}"
            if concurrency
            else f"{max(2, cores)} executors (default: cores, at least 2)"
        ),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def fsync_ms(directory: str, count: int = 200) -> dict[str, float]:
    """Latency of write(4 KiB) + fsync on the disk the stores live on (ms)."""
    path = os.path.join(directory, "fsync-probe")
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(count):
            os.write(fd, b"x" * 4096)
            started = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - started) * 1000)
    finally:
        os.close(fd)
        os.remove(path)
    times.sort()
    return {"median": statistics.median(times), "p90": times[int(len(times) * 0.9)]}


def context_tag(env: dict[str, Any]) -> str:
    """The short machine/commit tag printed next to every figure."""
    dirty = "+dirty" if env["src_dirty"] else ""
    return (
        f"{env['commit'][:7]}{dirty} {env['cores']}c "
        f"Py{env['python']} SQLite{env['sqlite']}"
    )


# -- running workloads ----------------------------------------------------------------
@dataclass
class Job:
    workload: str
    sync: str
    argv: list[str]
    timeout_s: float
    label: str
    result: dict[str, Any] | None = None
    wall_s: float = 0.0
    error: str | None = None
    detail: str = ""


class Runner:
    """Starts workload processes one at a time and keeps what they report."""

    def __init__(self, tmp: str, total: int) -> None:
        self.tmp = tmp
        self.total = total
        self.done = 0
        self.jobs: list[Job] = []

    def run(self, job: Job) -> Job:
        self.done += 1
        print(
            f"[{self.done:2d}/{self.total}] {job.label} sync={job.sync} ...",
            end="",
            file=sys.stderr,
            flush=True,
        )
        argv = [
            sys.executable,
            str(WORKLOADS),
            job.workload,
            "--sync",
            job.sync,
            "--tmp",
            self.tmp,
            *job.argv,
        ]
        started = time.perf_counter()
        stdout = stderr = ""
        try:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=self.tmp,
                start_new_session=True,
            )
            try:
                stdout, stderr = proc.communicate(timeout=job.timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(
                    proc.pid, signal.SIGKILL
                )  # the group of the process we started
                stdout, stderr = proc.communicate()
                job.error = f"timed out after {job.timeout_s:g}s"
            returncode = proc.returncode
        except OSError as error:
            job.error = f"cannot start: {error}"
            returncode = -1
        job.wall_s = time.perf_counter() - started
        for line in stdout.splitlines():
            if line.startswith(MARKER):
                try:
                    job.result = json.loads(line[len(MARKER) :])
                except json.JSONDecodeError as error:
                    job.error = job.error or f"unreadable result: {error}"
        if job.result is not None and job.result.get("error"):
            job.error = job.error or job.result["error"]
            job.detail = job.result.get("traceback", "")
        elif job.error is None and (returncode != 0 or job.result is None):
            job.error = f"exit code {returncode}, no result"
        if job.error and not job.detail:
            job.detail = "\n".join(stderr.strip().splitlines()[-15:])
        if job.error:
            print(f" FAILED ({job.wall_s:.1f}s): {job.error}", file=sys.stderr)
            if job.detail:
                tail = job.detail.strip().splitlines()[-8:]
                print(_indent("\n".join(tail)), file=sys.stderr)
        else:
            print(f" {job.wall_s:.1f}s", file=sys.stderr)
        self.jobs.append(job)
        return job


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())


# -- figures -------------------------------------------------------------------------------
@dataclass
class Figure:
    section: str
    label: str
    sync: str
    unit: str
    values: list[float]
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.values)


class Figures:
    def __init__(self) -> None:
        self.items: list[Figure] = []
        self.errors: list[str] = []
        self.notes: list[str] = []

    def add(
        self,
        section: str,
        label: str,
        sync: str,
        unit: str,
        values: list[float],
        note: str = "",
    ) -> None:
        if values:
            self.items.append(Figure(section, label, sync, unit, list(values), note))


def _values(result: dict[str, Any] | None, key: str) -> list[float]:
    return [float(v) for v in (result or {}).get(key, [])]


def _per_call_ms(total: list[float], plain: list[float], n: int) -> list[float]:
    return [(t - p) / n * 1000 for t, p in zip(total, plain, strict=False)]


def _mb(kb: float) -> float:
    return kb / 1024


def add_memory(figures: Figures, workload: str, sync: str, results: list[dict]) -> None:
    memories = [r["memory"] for r in results if r and r.get("memory")]
    memories = [m for m in memories if m.get("main_kb")]
    if not memories:
        return
    tree = [_mb(m["tree_kb"]) for m in memories]
    main = statistics.median(_mb(m["main_kb"]) for m in memories)
    executor = statistics.median(_mb(m["executor_max_kb"]) for m in memories)
    count = max(m.get("executors", 0) for m in memories)
    figures.add(
        "6. peak RSS of the process tree (main + executors)",
        workload,
        sync,
        "MB",
        tree,
        f"main {main:.0f} + {count} executors, largest {executor:.0f}",
    )


def build_figures(runner: Runner, plan: Plan) -> Figures:
    figures = Figures()
    by: dict[tuple[str, str], list[Job]] = {}
    for job in runner.jobs:
        by.setdefault((job.label, job.sync), []).append(job)
        if job.error:
            figures.errors.append(f"{job.label} sync={job.sync}: {job.error}")
        raw = job.result or {}
        if raw.get("stopped_by_budget"):
            figures.notes.append(
                f"{job.label} sync={job.sync}: time budget, {raw['stopped_by_budget']}"
            )
        if raw.get("built_store_here"):
            figures.notes.append(
                f"{job.label} sync={job.sync}: built its own store (memory includes it)"
            )

    def result(label: str, sync: str) -> dict[str, Any] | None:
        jobs = by.get((label, sync), [])
        return jobs[0].result if jobs else None

    seq_label = f"seq {SEQ_N:,}"
    for sync in plan.syncs:
        r = result(seq_label, sync)
        cairn_s, floor_s = _values(r, "cairn_s"), _values(r, "floor_s")
        plain_s, fixed_s = _values(r, "plain_s"), _values(r, "fixed_s")
        overhead = _per_call_ms(cairn_s, plain_s, SEQ_N)
        floor = _per_call_ms(floor_s, plain_s, SEQ_N)
        s1 = f"1. one checkpointed sequential call (N={SEQ_N:,} in one request)"
        figures.add(s1, "Cairn overhead per call", sync, "ms", overhead)
        figures.add(
            s1, "plain Python call", sync, "µs", [p / SEQ_N * 1e6 for p in plain_s]
        )
        figures.add(
            s1,
            "fixed cost of a request (0 calls, warm)",
            sync,
            "ms",
            [f * 1000 for f in fixed_s],
        )
        net = [
            (t - f - p) / SEQ_N * 1000
            for t, f, p in zip(cairn_s, fixed_s, plain_s, strict=False)
        ]
        figures.add(s1, "Cairn per call, net of the fixed cost", sync, "ms", net)
        s2 = "2. floor: minimal pickle + INSERT + COMMIT decorator, A/B with 1."
        figures.add(s2, "floor overhead per call", sync, "ms", floor)
        figures.add(
            s2,
            "Cairn / floor (per A/B pair)",
            sync,
            "x",
            [c / f for c, f in zip(overhead, floor, strict=False) if f > 0],
        )

    map_label = f"map {plan.map_n:,}"
    for sync in plan.syncs:
        times = _values(result(map_label, sync), "cairn_s")
        s3 = f"3. map over {plan.map_n:,} trivial items (invoke to output)"
        figures.add(s3, "throughput", sync, "items/s", [plan.map_n / t for t in times])
        figures.add(s3, "total", sync, "s", times)

    replay_label = f"replay {REPLAY_N:,}"
    for sync in plan.syncs:
        r = result(replay_label, sync)
        times = _values(r, "replay_s")
        s4 = f"4. replay() of a request of {REPLAY_N:,} completed calls"
        note = ""
        if r and "served_from_checkpoint" in r:
            note = (
                f"{r['served_from_checkpoint']:,} served, {r.get('ran_again', 0)} ran"
            )
        figures.add(s4, "replay() end to end", sync, "s", times, note)
        figures.add(
            s4, "replayed calls", sync, "calls/s", [REPLAY_N / t for t in times]
        )

    s5 = "5. per-call overhead by request size ((total - plain loop) / N)"
    for sync in plan.syncs:
        r = result(seq_label, sync)
        figures.add(
            s5,
            f"N={SEQ_N:,} (the runs of 1.)",
            sync,
            "ms",
            _per_call_ms(_values(r, "cairn_s"), _values(r, "plain_s"), SEQ_N),
        )
        for n in (SCALE_N, BIG_N):
            r = result(f"scale {n:,}", sync)
            figures.add(
                s5,
                f"N={n:,}",
                sync,
                "ms",
                _per_call_ms(_values(r, "cairn_s"), _values(r, "plain_s"), n),
            )

    for label in (
        seq_label,
        f"scale {SCALE_N:,}",
        f"scale {BIG_N:,}",
        map_label,
        replay_label,
        "cold start",
    ):
        for sync in plan.syncs:
            jobs = by.get((label, sync), [])
            ok = [j.result for j in jobs if j.result and not j.error]
            add_memory(figures, label, sync, ok)

    s7 = "7. cold start: fresh process to its first finished 1-call request"
    for sync in plan.syncs:
        jobs = [j for j in by.get(("cold start", sync), []) if j.result and not j.error]
        figures.add(s7, "process wall time", sync, "s", [j.wall_s for j in jobs])
        figures.add(
            s7,
            "  of which import cairn",
            sync,
            "s",
            [j.result["import_s"] for j in jobs if j.result],
        )
        figures.add(
            s7,
            "  of which the request",
            sync,
            "s",
            [j.result["request_s"] for j in jobs if j.result],
        )
    return figures


# -- output ------------------------------------------------------------------------------
def fmt(value: float) -> str:
    magnitude = abs(value)
    if magnitude >= 10_000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def render(figures: Figures, env: dict[str, Any], plan: Plan, elapsed: float) -> str:
    tag = context_tag(env)
    fsync = env.get("fsync_ms") or {}
    budget = f"{plan.budget_s:g}s" if plan.budget_s else "none"
    big = (
        f"{plan.big_runs} for N={BIG_N:,}" if plan.big_runs else f"N={BIG_N:,} skipped"
    )
    lines = [
        f"Cairn benchmark  {env['date']}",
        f"machine: {env['cpu']}, {env['cores']} cores, {env['os']}; "
        f"fsync of 4 KiB: {fsync.get('median', float('nan')):.3f} ms median, "
        f"{fsync.get('p90', float('nan')):.3f} ms p90 (before the run), "
        f"{fsync.get('median_after', float('nan')):.3f} ms median after",
        f"Python {env['python']}, SQLite {env['sqlite']}, "
        f"Cairn {env['cairn_version']} @ {env['commit']}"
        f"{' (uncommitted changes in src/)' if env['src_dirty'] else ''}, "
        f"{env['concurrency']}",
        f"target runs {plan.runs} per figure, {big}; time budget {budget}: "
        f"scale {SCALE_N:,} and map stop adding runs when over it (n says how many ran)",
        "figures: median [min-max] of n runs; sync = the store's synchronous= "
        f"setting; every row ends with: commit, cores, Python, SQLite ({tag})",
    ]
    width = 40
    header = (
        f"  {'':<{width}} {'sync':<6} {'median':>9}  {'[min-max]':<19} "
        f"{'n':>2}  {'unit':<8}"
    )
    order = {
        (f.section, f.label): i for i, f in reversed(list(enumerate(figures.items)))
    }
    items = sorted(
        figures.items,
        key=lambda f: (f.section, order[(f.section, f.label)], SYNCS.index(f.sync)),
    )
    section = None
    for fig in items:
        if fig.section != section:
            section = fig.section
            lines += ["", section, header]
        spread = f"[{fmt(min(fig.values))}-{fmt(max(fig.values))}]"
        row = (
            f"  {fig.label:<{width}} {fig.sync.upper():<6} {fmt(fig.median):>9}  "
            f"{spread:<19} {len(fig.values):>2}  {fig.unit:<8} {tag}"
        )
        if fig.note:
            row += f"  ({fig.note})"
        lines.append(row)
    if figures.errors:
        lines += ["", "FAILED WORKLOADS (their figures are missing above):"]
        lines += [f"  - {error}" for error in figures.errors]
    if figures.notes:
        lines += [""] + [f"note: {note}" for note in figures.notes]
    lines += ["", f"total bench time {elapsed:.0f}s; raw values in {RESULTS}"]
    return "\n".join(lines)


def write_json(
    figures: Figures, env: dict[str, Any], plan: Plan, runner: Runner, elapsed: float
) -> None:
    document = {
        "environment": env,
        "plan": asdict(plan),
        "elapsed_s": elapsed,
        "figures": [
            {
                "section": f.section,
                "label": f.label,
                "sync": f.sync,
                "unit": f.unit,
                "median": f.median,
                "min": min(f.values),
                "max": max(f.values),
                "n": len(f.values),
                "values": f.values,
                "note": f.note,
                "commit": env["commit"],
            }
            for f in figures.items
        ],
        "errors": figures.errors,
        "jobs": [
            {
                "workload": j.workload,
                "label": j.label,
                "sync": j.sync,
                "argv": j.argv,
                "wall_s": j.wall_s,
                "error": j.error,
                "result": j.result,
            }
            for j in runner.jobs
        ],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")


# -- main ------------------------------------------------------------------------------------
def count_jobs(plan: Plan) -> int:
    modes = len(plan.syncs)
    count = modes if plan.wants("seq") else 0
    count += modes * plan.runs if plan.wants("cold") else 0
    count += modes if plan.wants("scale") or plan.wants("replay") else 0
    count += modes if plan.wants("replay") else 0
    count += modes if plan.wants("big") and plan.big_runs else 0
    count += modes if plan.wants("map") else 0
    return count


def run_all(plan: Plan, runner: Runner, tmp: str, started: float) -> None:
    """Every job, cheap ones first; map last, sharing what is left of the budget."""
    run_light(plan, runner)
    run_heavy(plan, runner, tmp, started)


def run_light(plan: Plan, runner: Runner) -> None:
    """The A/B sequential calls and the cold starts: a few seconds each."""
    if plan.wants("seq"):
        for sync in plan.syncs:
            argv = ["--n", str(SEQ_N), "--reps", str(plan.runs)]
            runner.run(Job("seq", sync, argv, 300, f"seq {SEQ_N:,}"))
    if plan.wants("cold"):
        for _ in range(plan.runs):
            for sync in plan.syncs:
                runner.run(Job("cold", sync, [], 120, "cold start"))


def run_heavy(plan: Plan, runner: Runner, tmp: str, started: float) -> None:
    """Requests of 10k and 100k calls, their replays, and the map."""
    if plan.wants("scale") or plan.wants("replay"):
        for sync in plan.syncs:
            argv = ["--n", str(SCALE_N), "--reps", str(plan.runs)]
            argv += ["--budget-s", f"{plan.budget_s * 0.09:.3f}"]
            if plan.wants("replay"):
                argv += ["--save-store", os.path.join(tmp, f"replay-{sync}.db")]
            runner.run(Job("scale", sync, argv, 600, f"scale {SCALE_N:,}"))
    if plan.wants("replay"):
        for sync in plan.syncs:
            runner.run(replay_job(runner, sync, plan))
    if plan.wants("big") and plan.big_runs:
        for sync in plan.syncs:
            argv = ["--n", str(BIG_N), "--reps", str(plan.big_runs)]
            runner.run(Job("scale", sync, argv, 900, f"scale {BIG_N:,}"))
    if plan.wants("map"):
        for index, sync in enumerate(plan.syncs):
            argv = ["--n", str(plan.map_n), "--reps", str(plan.runs)]
            if plan.budget_s:
                left = plan.budget_s - (time.perf_counter() - started)
                share = max(0.001, left / (len(plan.syncs) - index))
                argv += ["--budget-s", f"{share:.3f}"]
            runner.run(Job("map", sync, argv, 900, f"map {plan.map_n:,}"))


def replay_job(runner: Runner, sync: str, plan: Plan) -> Job:
    argv = ["--n", str(REPLAY_N), "--reps", str(plan.runs)]
    for job in runner.jobs:
        if job.label == f"scale {SCALE_N:,}" and job.sync == sync and job.result:
            saved = job.result.get("saved_store")
            request_id = job.result.get("request_id")
            if saved and request_id:
                argv += ["--template", saved, "--request-id", request_id]
    return Job("replay", sync, argv, 300, f"replay {REPLAY_N:,}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (< 40 s)")
    parser.add_argument("--runs", type=int, help="runs per figure (default 5, quick 3)")
    parser.add_argument(
        "--budget",
        type=float,
        help="seconds (default 170, quick 32) after which scale 10k and map stop "
        "adding runs (at least one each); 0: no budget, every figure gets --runs",
    )
    parser.add_argument(
        "--big-runs", type=int, help="runs of the 100k request (default 1, quick 0)"
    )
    parser.add_argument(
        "--map-n", type=int, help="map items (default 10000, quick 2000)"
    )
    parser.add_argument(
        "--sync", nargs="+", choices=SYNCS, default=list(SYNCS), help="settings to run"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["seq", "cold", "scale", "replay", "map", "big"],
        help="run only these workloads",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    env = environment()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as tmp:
        env["fsync_ms"] = fsync_ms(tmp)
        runner = Runner(tmp, count_jobs(plan))
        run_all(plan, runner, tmp, started)
        env["fsync_ms"]["median_after"] = fsync_ms(tmp)["median"]
    elapsed = time.perf_counter() - started
    figures = build_figures(runner, plan)
    print(render(figures, env, plan, elapsed))
    try:
        write_json(figures, env, plan, runner, elapsed)
    except OSError as error:
        print(f"cannot write {RESULTS}: {error}", file=sys.stderr)
    return 1 if figures.errors else 0


if __name__ == "__main__":
    sys.exit(main())
