"""Issues 7's and 15's targets checked against a run's figures, and why a missed
per-call target is missed."""

from __future__ import annotations

from typing import Any

from report_common import extra_stat, figure_at, fmt, median_of


def targets(doc: dict[str, Any]) -> list[str]:
    """Issue 7's targets (at each SQLite setting) and issue 15's (short requests)
    against this run's figures."""
    sizes = doc["sizes"]
    rows = []
    for setting in ("sqlite-full", "sqlite-normal"):
        seq = figure_at(doc, "seq", setting, sizes["seq"])
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
        mapped = median_of(figure_at(doc, "map", setting), "cairn")
        if mapped is not None:
            rows.append(
                (
                    setting,
                    f"map of {sizes['map_n']:,} items ≥ 5,000 items/s",
                    f"{fmt(mapped)} items/s",
                    mapped >= 5000,
                )
            )
        replay = median_of(figure_at(doc, "replay", setting), "cairn")
        if replay is not None:
            rows.append(
                (
                    setting,
                    f"replay of {sizes['replay_n']:,} calls < 0.2 s",
                    f"{fmt(replay)} s",
                    replay < 0.2,
                )
            )
        small = median_of(seq, "cairn")
        largest = max(sizes["scale"])
        big_figure = figure_at(doc, "seq", setting, largest)
        big = median_of(big_figure, "cairn")
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
        rss = extra_stat(big_figure, "cairn", "peak RSS MB") if big_figure else None
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
    rows += _short_request_rows(doc)
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
    cairn = median_of(figure_at(doc, "seq", "sqlite-full", n), "cairn")
    dbos = median_of(figure_at(doc, "seq", "dbos-default", n), "dbos")
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


# Issue 15's targets, and the multiple of the floor each meant on the machine
# it was set on (floor 0.42 ms per call and 1.02 ms per 3-call request on
# PostgreSQL, 0.015 ms per call at sqlite-normal): the multiple carries to a
# machine whose disk or cores are slower, where the absolute figure does not.
_SHORT_REQUEST_TARGETS = [
    ("pg", "three", "a 3-call request on PostgreSQL ≤ 3 ms", 3.0, 3.0 / 1.02),
    ("pg", "seq", "a checkpointed call on PostgreSQL ≤ 0.6 ms", 0.6, 0.6 / 0.42),
    ("sqlite-normal", "seq", "a checkpointed call ≤ 0.05 ms", 0.05, 0.05 / 0.015),
]


def _short_request_rows(doc: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """Issue 15's targets, in ms and as a multiple of the floor in the same run."""
    rows = []
    for setting, workload, what, target_ms, floor_multiple in _SHORT_REQUEST_TARGETS:
        n = doc["sizes"]["seq"] if workload == "seq" else None
        figure = figure_at(doc, workload, setting, n)
        cairn = median_of(figure, "cairn")
        if cairn is None:
            continue
        ratio = (figure["ratios"].get("cairn/floor") or {}).get("median")
        against_floor = (
            f"; {ratio:.3g}x the floor (target's {floor_multiple:.2g}x)"
            if ratio
            else ""
        )
        rows.append(
            (
                setting,
                what,
                f"{fmt(cairn)} ms{against_floor}",
                cairn <= target_ms,
            )
        )
    return rows


def shortfalls(doc: dict[str, Any]) -> list[str]:
    """Why the per-call targets that this run misses are missed, from its figures."""
    n = doc["sizes"]["seq"]

    def per_call(setting: str, system: str) -> float | None:
        return median_of(figure_at(doc, "seq", setting, n), system)

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
            "its key and request indexes, and takes the numbers of the two events "
            "of Tensorlake's stream it stands for (FunctionRunCreated, "
            "FunctionRunCompleted, read from the row since schema 8) from its "
            "request's counter: about four and a half pages per commit, counted "
            "from the WAL frames of 300 checkpoints (5.6 with the events as rows "
            "before schema 8, eight before schema 2). Without an fsync to hide it, "
            "that and the engine's Python (call ids, deadlines, attempts) are the "
            "whole cost; the profile below splits it."
        )
    if not lines:
        return []
    return ["Where a per-call target is missed, and why:", "", *lines, ""]
