"""What every part of the benchmark page shares: engine names, number formatting,
looking figures up in a run's document, and the table of one workload."""

from __future__ import annotations

from typing import Any

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


def figures_of(
    doc: dict[str, Any], workload: str, n: int | None = None
) -> list[dict[str, Any]]:
    found = [
        f
        for f in doc["figures"]
        if f["workload"] == workload and (n is None or f["n"] == n)
    ]
    return sorted(found, key=lambda f: SETTING_ORDER.index(f["setting"]))


def ratio_cell(figure: dict[str, Any], system: str) -> str:
    if system == "cairn":
        return ""
    stat = figure["ratios"].get(f"cairn/{system}")
    if not stat:
        return "-"
    return f"{fmt(stat['median'])} {spread(stat)}"


def extra_stat(figure: dict[str, Any], system: str, key: str) -> dict[str, Any] | None:
    entry = figure["systems"].get(system) or {}
    value: dict[str, Any] | None = entry.get("extra", {}).get(key)
    return value


def headline_stat(figure: dict[str, Any], system: str) -> dict[str, Any] | None:
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
            stat = headline_stat(figure, system)
            cells = [
                f"`{figure['setting']}`",
                NAMES[system],
                fmt(stat["median"]) if stat else "**failed**",
                spread(stat),
                str(stat["runs"]) if stat else "0",
            ]
            for key, _label_text in extras:
                extra = extra_stat(figure, system, key)
                cells.append(fmt(extra["median"]) if extra else "-")
            cells.append(ratio_cell(figure, system))
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def median_of(figure: dict[str, Any] | None, system: str) -> float | None:
    if not figure:
        return None
    stat = headline_stat(figure, system)
    return float(stat["median"]) if stat else None


def figure_at(
    doc: dict[str, Any], workload: str, setting: str, n: int | None = None
) -> Any:
    for figure in figures_of(doc, workload, n):
        if figure["setting"] == setting:
            return figure
    return None
