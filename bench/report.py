"""Turn one run's document (``bench/results/latest.json``) into text: the console
summary, ``docs/benchmarks.md`` and, through ``plot.py`` under the DBOS venv's
interpreter (it has matplotlib), ``docs/images/bench_overhead.png``.

Every number printed here comes from the document of this run.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import invoke_load
import parked
import progress_latency
from profiling import CATEGORIES, REQUEST_CATEGORIES

BENCH = Path(__file__).resolve().parent
NAMES = {"cairn": "Cairn", "dbos": "DBOS", "floor": "floor"}
SETTING_ORDER = ["sqlite-full", "sqlite-normal", "dbos-default", "pg"]


def engine_name(lane: str) -> str:
    """``cairn`` -> Cairn; a lane of the workers workload, ``cairn-4w`` -> Cairn x 4."""
    system, _, workers = lane.partition("-")
    return NAMES[system] + (f" x {workers.removesuffix('w')}" if workers else "")


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 10_000:
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    elif magnitude >= 0.01:
        text = f"{value:.3f}"
    else:
        text = f"{value:.4f}"
    return f"{text} {unit}".strip()


def spread(stat: dict[str, Any] | None) -> str:
    if not stat:
        return "-"
    if stat["runs"] == 1:
        return "(1 run)"
    return f"[{fmt(stat['min'])} - {fmt(stat['max'])}]"


def _figures(doc: dict[str, Any], workload: str, n: int | None = None) -> list[dict]:
    found = [
        f
        for f in doc["figures"]
        if f["workload"] == workload and (n is None or f["n"] == n)
    ]
    return sorted(found, key=lambda f: SETTING_ORDER.index(f["setting"]))


def _label(doc: dict[str, Any], setting: str) -> str:
    return str(doc["settings"][setting]["label"])


def _ratio(figure: dict[str, Any], system: str) -> str:
    if system == "cairn":
        return ""
    stat = figure["ratios"].get(f"cairn/{system}")
    if not stat:
        return "-"
    return f"{fmt(stat['median'])} {spread(stat)}"


def _extra(figure: dict[str, Any], system: str, key: str) -> dict[str, Any] | None:
    entry = figure["systems"].get(system) or {}
    value: dict[str, Any] | None = entry.get("extra", {}).get(key)
    return value


def _headline(figure: dict[str, Any], system: str) -> dict[str, Any] | None:
    entry = figure["systems"].get(system) or {}
    value: dict[str, Any] | None = entry.get("headline")
    return value


# -- tables ---------------------------------------------------------------------------------
def table(
    doc: dict[str, Any],
    figures: list[dict[str, Any]],
    headline: str,
    extras: list[tuple[str, str]],
) -> list[str]:
    """One markdown table: a row per setting and system."""
    columns = ["setting", "engine", headline, "spread [min - max]", "runs"]
    columns += [label for _key, label in extras]
    columns += ["Cairn ÷ it (cost, per round)"]
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for figure in figures:
        for system in ("cairn", "dbos", "floor"):
            if system not in figure["systems"]:
                continue
            stat = _headline(figure, system)
            cells = [
                f"`{figure['setting']}`",
                NAMES[system],
                fmt(stat["median"]) if stat else "**failed**",
                spread(stat),
                str(stat["runs"]) if stat else "0",
            ]
            for key, _label_text in extras:
                extra = _extra(figure, system, key)
                cells.append(fmt(extra["median"]) if extra else "-")
            cells.append(_ratio(figure, system))
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def scale_table(doc: dict[str, Any]) -> list[str]:
    columns = [
        "setting",
        "engine",
        "calls",
        "ms/call",
        "spread",
        "runs",
        "request s",
        "peak RSS MB",
        "of which main process",
        "store bytes/call",
        "Cairn ÷ it",
    ]
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    seqs = [f for f in doc["figures"] if f["workload"] == "seq"]
    seqs.sort(key=lambda f: (SETTING_ORDER.index(f["setting"]), f["n"]))
    for setting in SETTING_ORDER:
        for system in ("cairn", "dbos", "floor"):
            for figure in seqs:
                if figure["setting"] != setting or system not in figure["systems"]:
                    continue
                stat = _headline(figure, system)
                rss = _extra(figure, system, "peak RSS MB")
                main = _extra(figure, system, "main process peak RSS MB")
                request = _extra(figure, system, "request s")
                stored = _extra(figure, system, "stored bytes per call")
                lines.append(
                    "| "
                    + " | ".join(
                        [
                            f"`{setting}`",
                            NAMES[system],
                            f"{figure['n']:,}",
                            fmt(stat["median"]) if stat else "**failed**",
                            spread(stat),
                            str(stat["runs"]) if stat else "0",
                            fmt(request["median"]) if request else "-",
                            fmt(rss["median"]) if rss else "-",
                            fmt(main["median"]) if main else "-",
                            fmt(stored["median"]) if stored else "-",
                            _ratio(figure, system),
                        ]
                    )
                    + " |"
                )
    return lines


def _ranked_items(entry: dict[str, Any]) -> str:
    """Median items of each worker, busiest first: ``5,210 / 4,790``."""
    extra = entry.get("extra", {})
    ranked: list[str] = []
    while stat := extra.get(f"items of the worker ranked {len(ranked) + 1}"):
        ranked.append(f"{stat['median']:,.0f}")
    return " / ".join(ranked)


def _and(numbers: list[int]) -> str:
    words = [str(number) for number in numbers]
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else words[0]


def workers_section(doc: dict[str, Any], number: int) -> list[str]:
    """The map shared by 1, 2 and 4 ``cairn worker`` processes: a table per store."""
    sizes, cores = doc["sizes"], doc["environment"]["cores"]
    counts = list(sizes["workers"])
    rotations = ", ".join(
        " ".join(str(c) for c in counts[i:] + counts[:i]) for i in range(len(counts))
    )
    out = [
        f"### {number}. Map of {sizes['workers_n']:,} items over {_and(counts)} "
        "worker processes",
        "",
        "Cairn alone. For each store and each number of workers, a fresh store and "
        "that many `cairn worker bench_apps --store URL --concurrency 1` processes "
        "started on it. Once each has written its heartbeat row, and an untimed "
        "warm-up `map` of a few hundred items per worker has run, one `map` of "
        f"{sizes['workers_n']:,} no-op items is timed from `submit` to the "
        "request's finished status, which the benchmark process (it runs no work "
        "itself) reads from the store every 5 ms. The workers are stopped with "
        "SIGTERM after each run, outside the timing. Runs rotate over the number "
        f"of workers from round to round ({rotations}). *Speedup* divides "
        "the time with one worker by the time with that many, within each round. "
        "*Items per worker* is the median, rank by rank, of how many items each "
        "worker ran, busiest first: the store does not keep which worker "
        "committed a call, so each item returns the number of its worker. "
        "`--concurrency 1` is one executor process per worker; the application "
        "call holds one of them and, while it waits for the items, runs items "
        "itself. SQLite lets one connection write at a time, so on SQLite more "
        "workers can overlap running items with each other's commits, not commit "
        "in parallel.",
        "",
        f"**This machine has {cores} cores.** Each worker is a supervisor process "
        "and at least one executor process, and they share the cores with the "
        "benchmark's polling process and the PostgreSQL server"
        + (
            f": {_and([c for c in counts if c > cores])} workers oversubscribe "
            "it, so those rows show how Cairn behaves under contention, not how "
            "it scales with cores."
            if max(counts) > cores
            else "."
        ),
        "",
    ]
    figures = _figures(doc, "workers")
    if not figures:
        return [*out, "Not run (left out of this run's plan).", ""]
    columns = ["setting", "workers", "items/s", "spread [min - max]", "runs"]
    columns += ["time s", "speedup over 1 worker (per round)"]
    columns += ["items per worker, busiest first"]
    for backend, store in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        mine = [
            f for f in figures if doc["settings"][f["setting"]]["backend"] == backend
        ]
        if not mine:
            continue
        out += [
            f"**{store}**",
            "",
            "| " + " | ".join(columns) + " |",
            "|" + "|".join("---" for _ in columns) + "|",
        ]
        for figure in mine:
            first = next(iter(figure["systems"]), "")
            for lane, entry in figure["systems"].items():
                stat = _headline(figure, lane)
                elapsed = _extra(figure, lane, "map s")
                speedup = figure["ratios"].get(f"{first}/{lane}")
                cells = [
                    f"`{figure['setting']}`",
                    lane.rpartition("-")[2].removesuffix("w"),
                    fmt(stat["median"]) if stat else "**failed**",
                    spread(stat),
                    str(stat["runs"]) if stat else "0",
                    fmt(elapsed["median"]) if elapsed else "-",
                    f"{fmt(speedup['median'])} {spread(speedup)}"
                    if speedup
                    else "1"
                    if lane == first and stat
                    else "-",
                    _ranked_items(entry) or "-",
                ]
                out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return out


# -- targets -------------------------------------------------------------------------------
def _median(figure: dict[str, Any] | None, system: str) -> float | None:
    if not figure:
        return None
    stat = _headline(figure, system)
    return float(stat["median"]) if stat else None


def _one(doc: dict[str, Any], workload: str, setting: str, n: int | None = None) -> Any:
    for figure in _figures(doc, workload, n):
        if figure["setting"] == setting:
            return figure
    return None


def targets(doc: dict[str, Any]) -> list[str]:
    """Issue 7's targets against this run's figures (at each SQLite setting)."""
    sizes = doc["sizes"]
    rows = []
    for setting in ("sqlite-full", "sqlite-normal"):
        seq = _one(doc, "seq", setting, sizes["seq"])
        if not seq:
            continue
        floor_ratio = seq["ratios"].get("cairn/floor")
        dbos_ratio = seq["ratios"].get("cairn/dbos")
        if floor_ratio:
            value = floor_ratio["median"]
            rows.append(
                (setting, "per call within 2x the floor", f"{value:.3g}x", value <= 2)
            )
        if dbos_ratio:
            value = dbos_ratio["median"]
            rows.append(
                (
                    setting,
                    "per call at least 5x faster than DBOS (Cairn ÷ DBOS ≤ 0.2)",
                    f"{value:.3f} (Cairn {1 / value:.3g}x faster)",
                    value <= 0.2,
                )
            )
        mapped = _median(_one(doc, "map", setting), "cairn")
        if mapped is not None:
            rows.append(
                (
                    setting,
                    f"map of {sizes['map_n']:,} items ≥ 5,000 items/s",
                    f"{fmt(mapped)} items/s",
                    mapped >= 5000,
                )
            )
        replay = _median(_one(doc, "replay", setting), "cairn")
        if replay is not None:
            rows.append(
                (
                    setting,
                    f"replay of {sizes['replay_n']:,} calls < 0.2 s",
                    f"{fmt(replay)} s",
                    replay < 0.2,
                )
            )
        small = _median(seq, "cairn")
        largest = max(sizes["scale"])
        big_figure = _one(doc, "seq", setting, largest)
        big = _median(big_figure, "cairn")
        if small and big:
            rows.append(
                (
                    setting,
                    f"per-call cost flat from {sizes['seq']:,} to {largest:,} calls "
                    "(within 25%)",
                    f"{fmt(small)} → {fmt(big)} ms ({fmt(big / small)}x)",
                    big / small <= 1.25,
                )
            )
        rss = _extra(big_figure, "cairn", "peak RSS MB") if big_figure else None
        if rss:
            rows.append(
                (
                    setting,
                    f"a {largest:,}-call request under 200 MB (process tree)",
                    f"{fmt(rss['median'])} MB",
                    rss["median"] < 200,
                )
            )
    rows += _defaults_row(doc)
    lines = []
    if doc["quick"]:
        lines += [
            "A `--quick` run uses smaller sizes than the targets name: these rows "
            "only show the direction.",
            "",
        ]
    lines += [
        "| setting | target | measured | met |",
        "|---|---|---|---|",
    ]
    for setting, what, measured, met in rows:
        lines.append(
            f"| `{setting}` | {what} | {measured} | {'yes' if met else '**no**'} |"
        )
    return lines


def _defaults_row(doc: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """Each engine as it ships: Cairn's default (WAL, FULL) against DBOS's
    (rollback journal, FULL); both survive power loss. Different settings, so the
    ratio is of medians, not per round."""
    n = doc["sizes"]["seq"]
    cairn = _median(_one(doc, "seq", "sqlite-full", n), "cairn")
    dbos = _median(_one(doc, "seq", "dbos-default", n), "dbos")
    if not cairn or not dbos:
        return []
    ratio = cairn / dbos
    return [
        (
            "defaults",
            "per call at least 5x faster than DBOS, each at its own default "
            "(`sqlite-full` ÷ `dbos-default`, medians)",
            f"{ratio:.3f} (Cairn {1 / ratio:.3g}x faster)",
            ratio <= 0.2,
        )
    ]


def shortfalls(doc: dict[str, Any]) -> list[str]:
    """Why the per-call targets that this run misses are missed, from its figures."""
    n = doc["sizes"]["seq"]

    def per_call(setting: str, system: str) -> float | None:
        return _median(_one(doc, "seq", setting, n), system)

    engines = ("cairn", "dbos", "floor")
    full = {e: per_call("sqlite-full", e) for e in engines}
    normal = {e: per_call("sqlite-normal", e) for e in engines}
    lines = []
    if (
        full["cairn"]
        and full["dbos"]
        and full["floor"]
        and normal["cairn"]
        and full["cairn"] > full["dbos"] / 5
    ):
        budget = full["dbos"] / 5 - full["floor"]
        lines.append(
            f"- **5x DBOS at `sqlite-full`** means {fmt(full['dbos'] / 5)} ms per "
            f"call. The floor's whole call, {fmt(full['floor'])} ms, is about the "
            f"WAL fsync every engine pays there, which leaves {fmt(budget)} ms for "
            "everything else a checkpoint does; that work alone (Cairn at "
            f"`sqlite-normal`, where no commit waits for the disk) costs "
            f"{fmt(normal['cairn'])} ms."
            + (
                " At each engine's own default (the `defaults` row) both pay it."
                if _defaults_row(doc)
                else ""
            )
        )
    if normal["cairn"] and normal["floor"] and normal["cairn"] > 2 * normal["floor"]:
        lines.append(
            f"- **2x the floor at `sqlite-normal`** means {fmt(2 * normal['floor'])} ms "
            "per call: the floor pickles a value and commits one INSERT into one "
            "table, about two pages. A Cairn checkpoint commits the call row under "
            "its key and request indexes and the two events of Tensorlake's stream "
            "(FunctionRunCreated, FunctionRunCompleted) under theirs: six pages, "
            "counted from the WAL frames of 300 checkpoints (eight before schema "
            "2). Without an fsync to hide it, that and the engine's Python (call "
            "ids, deadlines, attempts, events) are the whole cost; the profile "
            "below splits it."
        )
    if not lines:
        return []
    return ["Where a per-call target is missed, and why:", "", *lines, ""]


# -- the profile ---------------------------------------------------------------------------
def _top_lines(prof: dict[str, Any], count: int = 8) -> list[str]:
    lines = ["| share | where | code |", "|---|---|---|"]
    for top in prof["top_lines"][:count]:
        code = top["code"].replace("|", "\\|")
        lines.append(
            f"| {top['share'] * 100:.0f}% | `{top['where']}` "
            f"({top['function']}) | `{code}` |"
        )
    return lines


def _checkpoint_view(
    doc: dict[str, Any], setting: str, prof: dict[str, Any]
) -> list[str]:
    seq = _one(doc, "seq", setting, doc["sizes"]["seq"])
    per_call = _median(seq, "cairn")
    floor = _median(seq, "floor")
    lines = [
        f"**One checkpointed call, `{setting}`**: {prof['samples']:,} samples in "
        f"the executor inside the application ({prof['reps']} requests of "
        f"{prof['n']:,} calls; {fmt(prof['per_call_ms_under_profiler'])} ms/call "
        f"under the profiler, {fmt(per_call)} ms/call unprofiled in table 1, where "
        f"the floor's whole call costs {fmt(floor)} ms).",
        "",
        "| where the executor's time goes | share | ~ ms/call |",
        "|---|---|---|",
    ]
    for key, label in CATEGORIES:
        share = prof["categories"].get(key, 0.0)
        estimate = share * per_call if per_call is not None else None
        lines.append(f"| {label} | {share * 100:.0f}% | {fmt(estimate)} |")
    return [*lines, "", *_top_lines(prof), ""]


def _request_view(doc: dict[str, Any], setting: str, prof: dict[str, Any]) -> list[str]:
    three = _one(doc, "three", setting)
    per_request = _median(three, "cairn")
    lines = [
        f"**A 3-call request, `{setting}`, from the caller's side**: "
        f"{prof['samples']:,} samples of the calling process inside "
        f"`run_local_application(...).output()` ({prof['reps']} requests; "
        f"{fmt(prof.get('per_request_ms_under_profiler'))} ms per request under "
        f"the profiler, {fmt(per_request)} ms unprofiled in table 2).",
        "",
        "| where the caller's time goes | share | ~ ms/request |",
        "|---|---|---|",
    ]
    for key, label in REQUEST_CATEGORIES:
        share = prof["categories"].get(key, 0.0)
        estimate = share * per_request if per_request is not None else None
        lines.append(f"| {label} | {share * 100:.0f}% | {fmt(estimate)} |")
    return [*lines, "", *_top_lines(prof, 6), ""]


def _bytes_per_call(doc: dict[str, Any], setting: str, system: str) -> float | None:
    largest = max(doc["sizes"]["scale"])
    for n in (largest, doc["sizes"]["replay_n"]):
        figure = _one(doc, "seq", setting, n)
        stored = _extra(figure, system, "stored bytes per call") if figure else None
        if stored:
            return float(stored["median"])
    return None


def _tables(doc: dict[str, Any], setting: str) -> str:
    """`` (events 690, calls 400, ...)``: Cairn's bytes per call by table, with
    their indexes, from its largest request of this setting."""
    best = None
    for job in doc["jobs"]:
        r = job.get("result") or {}
        if job["system"] != "cairn" or not r.get("table_bytes"):
            continue
        if not job["block"].startswith("seq ") or f"@ {setting}" not in job["block"]:
            continue
        n = int(job["block"].split()[1].replace(",", ""))
        if best is None or n > best[0]:
            best = (n, r["table_bytes"])
    if best is None:
        return ""
    n, tables = best
    top = sorted(tables.items(), key=lambda kv: -kv[1])[:2]
    parts = ", ".join(f"{name} {fmt(size / n)}" for name, size in top)
    return f" (by table, indexes included: {parts})"


def reading(doc: dict[str, Any]) -> list[str]:
    """A few sentences, each built from this run's numbers."""
    profiles = doc.get("profiles") or {}
    out = []
    for setting, views in profiles.items():
        checkpoint = views.get("checkpoint") or {}
        request = views.get("request") or {}
        seq = _one(doc, "seq", setting, doc["sizes"]["seq"])
        per_call, floor = _median(seq, "cairn"), _median(seq, "floor")
        if checkpoint.get("categories") and per_call and floor:
            commit = checkpoint["categories"]["commit"] * per_call
            rest = per_call - commit
            mine = _bytes_per_call(doc, setting, "cairn")
            theirs = _bytes_per_call(doc, setting, "floor")
            sizes = ""
            if mine and theirs:
                sizes = (
                    f" Its transaction is bigger: Cairn's store grows by about "
                    f"{fmt(mine)} bytes per call{_tables(doc, setting)}, the floor's "
                    f"by {fmt(theirs)}."
                )
            out.append(
                f"- `{setting}`: of Cairn's {fmt(per_call)} ms per call, the COMMIT "
                f"takes about {fmt(commit)} ms "
                f"({'more' if commit > floor else 'less'} than the floor's whole "
                f"call, {fmt(floor)} ms) and everything else {fmt(rest)} ms: "
                f"the other SQL statements of the checkpoint "
                f"{fmt(checkpoint['categories']['sql'] * per_call)} ms, engine and "
                f"store Python {fmt((checkpoint['categories']['engine'] + checkpoint['categories']['store']) * per_call)} ms."
                + sizes
            )
        three = _one(doc, "three", setting)
        per_request = _median(three, "cairn")
        if request.get("categories") and per_request:
            wait = request["categories"]["wait"]
            out.append(
                f"- `{setting}`: {wait * 100:.0f}% of a 3-call request's "
                f"{fmt(per_request)} ms the caller spends blocked (on the wake-up "
                "pipe an executor pokes when the request ends) while an executor "
                "claims and runs the application call and its 3 checkpoints."
            )
    return out


def profile_section(doc: dict[str, Any]) -> list[str]:
    profiles = doc.get("profiles") or {}
    if not profiles:
        return ["Not profiled in this run (`--no-profile`).", ""]
    lines = []
    summary = reading(doc)
    if summary:
        lines += ["In short:", "", *summary, ""]
    for setting, views in profiles.items():
        for view, prof in views.items():
            if prof.get("error"):
                lines += [f"`{setting}` {view}: profile failed: {prof['error']}", ""]
            elif view == "checkpoint":
                lines += _checkpoint_view(doc, setting, prof)
            else:
                lines += _request_view(doc, setting, prof)
    return lines


# -- the document -----------------------------------------------------------------------------
def _load_summary(env: dict[str, Any]) -> str:
    loads = env.get("job_load") or []
    if not loads:
        return "no jobs ran"
    return (
        f"1-minute load average {fmt(env['load_before'][0])} before the run, "
        f"{fmt(statistics.median(loads))} median and {fmt(max(loads))} max at the "
        f"start of its jobs, {fmt(env['load_after'][0])} after "
        f"(the machine has {env['cores']} cores)"
    )


def _versions(env: dict[str, Any]) -> list[str]:
    versions = env.get("versions", {})
    cairn = versions.get("cairn", {})
    dbos = versions.get("dbos", {})
    pg = env.get("pg", {})
    server = pg.get("server", {})
    dirty = " + uncommitted changes in `src/`" if env["src_dirty"] else ""
    rows = [
        ("machine", f"{env['cpu']}, {env['cores']} cores, {env['memory_gb']} GB"),
        ("OS", env["os"]),
        ("Python", env["python"]),
        ("SQLite (library)", env["sqlite"]),
        (
            "Cairn",
            f"{cairn.get('cairn', '?')} at commit `{env['commit']}`{dirty}; "
            f"executors: {env['cairn_concurrency']}",
        ),
        (
            "DBOS",
            f"dbos {dbos.get('dbos', '?')}, SQLAlchemy {dbos.get('sqlalchemy', '?')} "
            "(in `bench/.venv-dbos`)",
        ),
        (
            "PostgreSQL",
            f"{server.get('server_version', '?')}: synchronous_commit="
            f"{server.get('synchronous_commit', '?')}, fsync={server.get('fsync', '?')}, "
            f"wal_sync_method={server.get('wal_sync_method', '?')}, "
            f"full_page_writes={server.get('full_page_writes', '?')}"
            if server
            else "not reachable",
        ),
        (
            "fsync of 4 KiB on the store disk",
            f"{fmt(env['fsync_ms_before']['median'])} ms median "
            f"({fmt(env['fsync_ms_before']['p90'])} p90) before the run, "
            f"{fmt(env['fsync_ms_after']['median'])} ms after",
        ),
        ("load", _load_summary(env)),
        ("date", f"{env['date']}, {env['elapsed_s']:.0f} s in all"),
    ]
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return lines


def _settings_table(doc: dict[str, Any]) -> list[str]:
    used = {f["setting"] for f in doc["figures"]}
    lines = [
        "| setting | what it is | a committed checkpoint survives | "
        "read back from the engines |",
        "|---|---|---|---|",
    ]
    for name in SETTING_ORDER:
        if name not in used:
            continue
        setting = doc["settings"][name]
        seen = []
        for figure in doc["figures"]:
            if figure["setting"] != name:
                continue
            for system, entry in figure["systems"].items():
                effective = entry.get("effective")
                if effective:
                    text = ", ".join(f"{k}={v}" for k, v in effective.items())
                    item = f"{NAMES[system.partition('-')[0]]}: {text}"
                    if item not in seen:
                        seen.append(item)
        lines.append(
            f"| `{name}` | {setting['label']} | {setting['survives']} | "
            f"{'; '.join(seen) or '-'} |"
        )
    return lines


def _errors(doc: dict[str, Any]) -> list[str]:
    errors = [f"{f['key']}: {e}" for f in doc["figures"] for e in f["errors"]]
    if not errors:
        return ["None: every job of the plan finished and checked its output."]
    return ["Jobs that failed (their figures are missing or have fewer runs):", ""] + [
        f"- {e}" for e in errors
    ]


def markdown(doc: dict[str, Any], plot_name: str | None) -> str:
    env = doc["environment"]
    sizes = doc["sizes"]
    pg = env.get("pg", {})
    mode = (
        "`--quick` (smaller sizes, fewer runs: a smoke run, not the reference)"
        if doc["quick"]
        else "`--thorough`"
        if doc["thorough"]
        else "the default plan"
    )
    out: list[str] = [
        "# Benchmarks",
        "",
        f"Written by `bench/run.py` on {env['date']} ({mode}); every figure below "
        "was measured in that one run, none is carried over. Do not edit by hand: "
        "run the benchmark again.",
        "",
        "Cairn is measured against [DBOS Transact](https://github.com/dbos-inc/"
        "dbos-transact-py), the engine users would otherwise pick for durable "
        "Python workflows on SQLite or PostgreSQL, and against **the floor** "
        "(`bench/floor.py`): a deliberately minimal durable decorator that pickles "
        "each result and commits one INSERT, at the same durability setting. The "
        "floor is what any engine must pay; whatever Cairn costs above it buys its "
        "features (call ids, replay, retries, timeouts, events, the executor "
        "processes).",
        "",
        "## Reproduce",
        "",
        "```sh",
        env["command"],
        "```",
        "",
        "`make bench` builds the project's `.venv` and `bench/.venv-dbos` (DBOS and "
        "matplotlib, pinned in `bench/requirements-dbos.txt`) and runs "
        "`bench/run.py`. `make bench BENCH_ARGS=--quick` is a smoke run "
        "under two minutes; `BENCH_ARGS=--thorough` adds rounds, DBOS at "
        "100,000 calls and DBOS's `map` at every setting. "
        "PostgreSQL figures need a server at `--pg-url` (default "
        "`postgresql://postgres@127.0.0.1:5432/postgres`, where the benchmark "
        "creates and drops one database per run). Raw timings: "
        "`bench/results/latest.json`.",
        "",
        "**How it runs.** One process tree: `bench/run.py` starts one worker "
        "process per engine (`bench/worker.py`; Cairn and the floor under the "
        "project's interpreter, DBOS under its own venv) and runs every workload "
        "in *rounds*: each round runs Cairn, DBOS and the floor once each, one "
        "after the other, in an order that rotates from round to round (A B C, "
        "B C A, C A B), so drift of the machine lands on all three. The ratio "
        "columns divide Cairn's cost by the other engine's *within each round*, "
        "then take the median and spread of those ratios: below 1, Cairn costs "
        "less. Every run gets a fresh store (a new SQLite file, or a new "
        "PostgreSQL database) and starts with an untimed 1-call warm-up request "
        "on it (Cairn's engine and executors, DBOS's launch and pools, the floor's "
        "connection are then up), except the 3-call workload's first request and "
        "the cold start, which time exactly that. Between runs Cairn's kept-alive "
        "local engine is closed outside the timings. Figures are the median of the "
        "runs, with the min-max spread.",
        "",
        "## Machine, versions, load",
        "",
        *_versions(doc["environment"]),
        "",
        "## Durability settings",
        "",
        *_settings_table(doc),
        "",
        "The faster setting trades this: with `synchronous=NORMAL` a commit is in "
        "the operating system's hands when it returns, so it survives the process "
        "(Cairn's or the executor's) crashing, but a power cut or kernel crash can "
        "take back the last commits before the next WAL checkpoint; the database "
        "is never corrupted, and a replay recomputes the lost calls. Cairn's "
        "default, `synchronous=FULL`, survives power loss. On this machine an "
        "fsync costs the figure in the table above (a virtual disk); where an "
        "fsync costs more, the gap between the two settings widens for every "
        "engine, and the FULL figures grow by that much per commit.",
        "",
        (
            "PostgreSQL figures are included: Cairn's PostgreSQL store opened, "
            "migrated and ran a request in this run. Each engine gets a new "
            "database per run on the same server."
            if pg.get("included")
            else f"PostgreSQL: {pg.get('note', 'not run')}."
        ),
        "",
        "## Results",
        "",
        f"### 1. Per-call overhead: a request of {sizes['seq']:,} sequential "
        "checkpointed no-op calls",
        "",
        "(time from invoke to output - the same loop over plain Python calls) ÷ "
        "calls, in ms per call.",
        "",
        *table(doc, _figures(doc, "seq", sizes["seq"]), "ms/call", []),
        "",
        "### 2. A 3-call request, end to end (invoke to output)",
        "",
        f"Median of {sizes['three_requests']} requests on the same store per run, "
        "after its first; *first request* is the first one on a new store in a "
        "warm process (Cairn: creating the store and starting the engine's "
        "executors; DBOS: `DBOS()` + `launch()`; floor: creating the table).",
        "",
        *table(
            doc,
            _figures(doc, "three"),
            "ms (warm)",
            [("first request on a new store ms", "first request ms")],
        ),
        "",
        f"### 3. `map` over {sizes['map_n']:,} no-op items",
        "",
        "Items per second, invoke to output. DBOS: a queue of steps (see below). "
        "The floor has no parallelism: its row is the same number of durable "
        "calls in a loop, what the items' checkpoints alone cost. The ratio "
        "column compares the time of the whole map.",
        "",
        *table(
            doc,
            _figures(doc, "map"),
            "items/s",
            [("map s", "time s"), ("peak RSS MB", "peak RSS MB")],
        ),
        "",
        f"### 4. Replaying a request of {sizes['replay_n']:,} completed calls",
        "",
        "Seconds from asking for the replay to its output, on a fresh copy of a "
        "store holding the completed request; every call is checked to have been "
        "served from its checkpoint, none ran again. Cairn: "
        "`get_request(id).replay()`; DBOS: `DBOS.fork_workflow(id, n + 1)`; "
        "floor: read each checkpoint back by id and unpickle it.",
        "",
        *table(
            doc,
            _figures(doc, "replay"),
            "s",
            [("calls/s", "calls/s"), ("peak RSS MB", "peak RSS MB")],
        ),
        "",
        "### 5. How cost grows with work: per-call overhead and peak memory by "
        "request size",
        "",
        "Every request of this table (and of table 1) runs in a fresh worker "
        "process, after its untimed 1-call warm-up on the same store. Peak RSS "
        "is the high-water mark during the request of the engine's process tree: "
        "for Cairn, the main process plus its executors (pages a forked executor "
        "shares with its parent count twice, so this is an upper bound); DBOS and "
        "the floor are one process. *Store bytes/call*: the SQLite file's size "
        "once closed (schema and warm-up included) ÷ calls: what each checkpoint "
        "writes, roughly.",
        "",
    ]
    if plot_name:
        out += [f"![per-call overhead by request size](images/{plot_name})", ""]
    out += [
        *scale_table(doc),
        "",
        "### 6. Cold start: a fresh process to its first finished request",
        "",
        "From just before the parent starts the process to the moment the child "
        "holds the output of its first 1-call request on a new store (interpreter "
        "start, imports, store creation, engine start).",
        "",
        *table(
            doc,
            _figures(doc, "cold"),
            "s",
            [
                ("import s", "of which import s"),
                ("open + first request s", "open + request s"),
                ("peak RSS MB", "peak RSS MB"),
            ],
        ),
        "",
        *workers_section(doc, 7),
        *invoke_load.section(doc, 8),
        *progress_latency.section(doc, 9),
        *parked.section(doc, 10),
        "## Issue 7's targets, checked against this run",
        "",
        *targets(doc),
        "",
        *shortfalls(doc),
        "## What costs what",
        "",
        "From py-spy profiles taken after the timed runs (`bench/profiling.py`, "
        "`--idle`, so time blocked in an fsync or asleep counts): the executor "
        "while it runs requests of sequential no-op calls, and the calling process "
        "while it runs 3-call requests. Each sample counts on the innermost line "
        "of Cairn's own code (time inside sqlite3, psycopg or pickle lands on the "
        "line that called them); ~ms = share x the unprofiled figure of table 1 "
        "or 2.",
        "",
        *profile_section(doc),
        "## How each engine was run, and what is not equal",
        "",
        *FAIRNESS,
        "",
        "## Failures",
        "",
        *_errors(doc),
        "",
    ]
    return "\n".join(out)


FAIRNESS = [
    "- **Cairn** runs through its public API: `run_local_application(app, n, "
    "cairn_store=url).output()`. The application function runs in a pre-started "
    "executor process and its sequential calls run inline there, one commit each; "
    "the timing includes handing the request to the executor and reading the "
    "output back from the store. `map` items go to the executors and are "
    "committed in batches when they prove fast.",
    "- **DBOS** runs in its own virtual environment (`bench/.venv-dbos`), "
    "configured with `DBOSConfig(name, system_database_url, "
    "application_version, executor_id, log_level=WARNING)`; everything else is "
    "DBOS's default. Its workflows are called directly (the calling thread runs "
    "them; the cheapest idiomatic path), its steps are `@DBOS.step()`.",
    "- **DBOS's SQLite durability.** DBOS sets no journal mode and no "
    "`synchronous` (only `isolation_level=IMMEDIATE`, `busy_timeout`, "
    "`foreign_keys`), so out of the box it runs SQLite's defaults: a rollback "
    "journal with `synchronous=FULL`. To compare like with like, a SQLAlchemy "
    "`connect` listener puts each of DBOS's connections in WAL mode at the same "
    "`synchronous` as Cairn's store; the values are read back from DBOS's own "
    "pool and shown in the settings table. The row `dbos-default` in table 1 is "
    "DBOS exactly as it ships.",
    "- **DBOS's `map`** is the fan-out of its queue tutorial: the workflow "
    "enqueues one step per item with `DBOS.enqueue_workflow(queue, step, item)` "
    "(each becomes a child workflow run by DBOS's thread pool) and then calls "
    "`get_result()` on each handle in order. The queue has default flow control "
    "(no concurrency limit; DBOS's executor thread pool runs the items); it is "
    "polled every 0.05 s, and each handle's result is polled every 0.05 s, "
    "instead of DBOS's default 1 s, in DBOS's favour. Each item costs DBOS "
    "several commits: the enqueue (a step of the parent), the child's status "
    "and its step output, and the parent's recorded `getResult`.",
    "- **DBOS's replay.** DBOS has no call that re-runs a finished workflow in "
    "place. Its equivalent of Cairn's replay is `DBOS.fork_workflow(id, n + 1)`: "
    "a new workflow that re-runs the function with the outputs of steps 1..n "
    "copied over, so every step is served from its checkpoint (checked: no step "
    "body ran). The fork goes through a queue, polled every 0.05 s, and its "
    "result is polled every 0.05 s, so that the figure is not DBOS's default 1 s "
    "poll. It includes copying the n step outputs, which Cairn does not do.",
    "- **Processes.** Cairn's figures include a process boundary (the executor) "
    "and its supervisor, on a 2-core machine; DBOS runs threads in one process; "
    "the floor runs in the caller with no boundary at all. Cairn's executor "
    "count is its default (the number of cores, at least 2).",
    "- **What the default plan leaves out, to stay near 10 minutes.** DBOS's "
    "`map` of 10,000 items takes it minutes, so it runs only at `sqlite-normal` "
    "(DBOS's fastest SQLite setting); a request of 100,000 DBOS steps takes "
    "minutes too, so DBOS has no 100,000-call row. Those tables then have no "
    "DBOS row and no Cairn/DBOS ratio. `make bench BENCH_ARGS=--thorough` runs "
    "both at every setting, with more rounds. Requests of 100,000 calls are not "
    "run on PostgreSQL. Requests of 10,000 calls and more run once or twice "
    "per setting, the small workloads 3-5 times: the runs column says how many.",
    "- **PostgreSQL** is a server shared with whatever else runs on this machine "
    "(other test suites may use it); all three engines talk to it over "
    "127.0.0.1 in the same rounds.",
    "- **Load.** The machine has 2 cores and other work may run on it; the load "
    "row above says how busy it was. Interleaving makes the ratios robust to "
    "slow drift, not to a burst inside one run: compare spreads before reading "
    "small differences.",
]


# -- console ---------------------------------------------------------------------------------
def render_console(doc: dict[str, Any]) -> str:
    lines = [
        f"Cairn benchmark {doc['environment']['date']} "
        f"({doc['environment']['elapsed_s']:.0f}s)"
    ]
    for figure in doc["figures"]:
        lines.append(f"\n{figure['key']}  [{figure['unit']}]")
        for system, entry in figure["systems"].items():
            stat = entry.get("headline")
            text = (
                f"{fmt(stat['median']):>10} {spread(stat):<22} n={stat['runs']}"
                if stat
                else "    failed"
            )
            for key, ratio in figure["ratios"].items():
                mine, _, other = key.partition("/")
                if other == system:
                    text += f"   {engine_name(mine)} ÷ it {fmt(ratio['median'])}"
            rss = entry.get("extra", {}).get("peak RSS MB")
            if rss:
                text += f"   RSS {fmt(rss['median'])} MB"
            ranked = _ranked_items(entry)
            if ranked:
                text += f"   items per worker {ranked}"
            lines.append(f"  {engine_name(system):<9} {text}")
        for error in figure["errors"]:
            lines.append(f"  ERROR {error}")
    lines += ["", "Targets:", *targets(doc)]
    return "\n".join(lines)


# -- files -------------------------------------------------------------------------------------
def plot_data(doc: dict[str, Any]) -> dict[str, Any]:
    series: dict[str, list[dict[str, float]]] = {}
    for figure in doc["figures"]:
        if figure["workload"] != "seq":
            continue
        for system, entry in figure["systems"].items():
            stat = entry.get("headline")
            if not stat:
                continue
            key = f"{system}|{figure['setting']}"
            series.setdefault(key, []).append(
                {
                    "n": figure["n"],
                    "median": stat["median"],
                    "min": stat["min"],
                    "max": stat["max"],
                }
            )
    env = doc["environment"]
    return {
        "series": series,
        "title": f"Per-call overhead by request size ({env['date']}, "
        f"{env['cores']} cores, load ~{fmt(statistics.median(env['job_load'] or [0]))})",
        "labels": {name: s["label"] for name, s in doc["settings"].items()},
    }


def write_docs(
    doc: dict[str, Any], doc_path: Path, plot_path: Path, python: str
) -> None:
    plot_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(plot_data(doc), handle)
        data_path = handle.name
    try:
        done = subprocess.run(
            [python, str(BENCH / "plot.py"), data_path, str(plot_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        plotted = done.returncode == 0
        if not plotted:
            print(f"plot failed: {done.stderr.strip()[-500:]}")
    finally:
        os.unlink(data_path)
    doc_path.write_text(markdown(doc, plot_path.name if plotted else None))
