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
import roundtrips
from report_common import (
    NAMES,
    SETTING_ORDER,
    engine_name,
    figures_of,
    fmt,
    spread,
    table,
)
from report_profile import profile_section
from report_tables import ranked_items, scale_table, workers_section
from report_targets import shortfalls, targets

import observability

BENCH = Path(__file__).resolve().parent


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
        *table(doc, figures_of(doc, "seq", sizes["seq"]), "ms/call", []),
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
            figures_of(doc, "three"),
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
            figures_of(doc, "map"),
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
            figures_of(doc, "replay"),
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
            figures_of(doc, "cold"),
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
        *observability.section(doc, 11),
        *roundtrips.section(doc, 12),
        "## Issues 7's and 15's targets, checked against this run",
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
            ranked = ranked_items(entry)
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
