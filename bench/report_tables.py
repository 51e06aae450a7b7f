"""The benchmark page's tables of requests by size and of the map shared by
several ``cairn worker`` processes."""

from __future__ import annotations

from typing import Any

from report_common import (
    NAMES,
    SETTING_ORDER,
    extra_stat,
    figures_of,
    fmt,
    headline_stat,
    ratio_cell,
    spread,
)


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
                stat = headline_stat(figure, system)
                rss = extra_stat(figure, system, "peak RSS MB")
                main = extra_stat(figure, system, "main process peak RSS MB")
                request = extra_stat(figure, system, "request s")
                stored = extra_stat(figure, system, "stored bytes per call")
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
                            ratio_cell(figure, system),
                        ]
                    )
                    + " |"
                )
    return lines


def ranked_items(entry: dict[str, Any]) -> str:
    """Median items of each worker, busiest first: ``5,210 / 4,790``."""
    extra = entry.get("extra", {})
    ranked: list[str] = []
    while stat := extra.get(f"items of the worker ranked {len(ranked) + 1}"):
        ranked.append(f"{stat['median']:,.0f}")
    return " / ".join(ranked)


def and_list(numbers: list[int]) -> str:
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
        f"### {number}. Map of {sizes['workers_n']:,} items over {and_list(counts)} "
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
            f": {and_list([c for c in counts if c > cores])} workers oversubscribe "
            "it, so those rows show how Cairn behaves under contention, not how "
            "it scales with cores."
            if max(counts) > cores
            else "."
        ),
        "",
    ]
    figures = figures_of(doc, "workers")
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
                stat = headline_stat(figure, lane)
                elapsed = extra_stat(figure, lane, "map s")
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
                    ranked_items(entry) or "-",
                ]
                out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return out
