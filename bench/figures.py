"""From the jobs ``run.py`` ran to figures: median and spread, and per-round ratios.

Every figure is computed here from the raw timings of this run; nothing is stored
between runs. A ratio is taken within each round (the systems ran one after the
other, so the machine's drift cancels out) and then summarised like a figure.
All ratios compare costs (time per call, per item, per request): below 1, Cairn
costs less than the peer. The ``workers`` workload has a lane per number of worker
processes (``cairn-1w``, ``cairn-2w``, ...) instead of peers, and its ratios divide
the time of the first lane by each other's: the speedup over one worker.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness import Block, Job, lane_name

# What each workload reports: (headline unit, lower is better).
UNITS = {
    "seq": ("ms/call", True),
    "three": ("ms", True),
    "map": ("items/s", False),
    "replay": ("s", True),
    "cold": ("s", True),
    "workers": ("items/s", False),
}


@dataclass
class Stat:
    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def as_dict(self) -> dict[str, Any]:
        return {
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "runs": len(self.values),
            "values": self.values,
        }


@dataclass
class SystemFigures:
    system: str
    headline: Stat | None  # in UNITS[workload]
    cost: dict[int, float]  # round -> the cost the ratios use (seconds or ms)
    extra: dict[str, Stat] = field(default_factory=dict)
    effective: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class BlockFigures:
    block: Block
    systems: dict[str, SystemFigures]
    ratios: dict[str, Stat]
    errors: list[str]

    def as_dict(self) -> dict[str, Any]:
        unit = UNITS[self.block.workload][0]
        return {
            "key": self.block.key,
            "workload": self.block.workload,
            "setting": self.block.setting["name"],
            "n": self.block.n,
            "unit": unit,
            "systems": {
                name: {
                    "headline": f.headline.as_dict() if f.headline else None,
                    "extra": {k: v.as_dict() for k, v in f.extra.items()},
                    "effective": f.effective,
                    "notes": f.notes,
                }
                for name, f in self.systems.items()
            },
            "ratios": {k: v.as_dict() for k, v in self.ratios.items()},
            "errors": self.errors,
        }


def _mb(kb: float) -> float:
    return kb / 1024


def _system_figures(block: Block, system: str, jobs: list[Job]) -> SystemFigures:
    ok = [j for j in jobs if j.result and j.result.get("ok") and not j.error]
    figures = SystemFigures(system, None, {})
    if not ok:
        return figures
    figures.effective = ok[0].result.get("effective", {}) if ok[0].result else {}
    head: list[float] = []
    extra: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        extra.setdefault(key, []).append(value)

    for job in ok:
        r = job.result or {}
        headline, figures.cost[job.round] = _measure(block, r, add)
        head.append(headline)
        memory = r.get("memory") or {}
        if memory.get("tree_kb"):
            add("peak RSS MB", _mb(memory["tree_kb"]))
            add("main process peak RSS MB", _mb(memory["main_kb"]))
            if memory.get("children"):
                add("executors", float(memory["children"]))
                add("largest executor peak RSS MB", _mb(memory["children_max_kb"]))
        if r.get("store_bytes") and block.workload == "seq":
            add("stored bytes per call", float(r["store_bytes"]) / block.n)
        if "served_from_checkpoint" in r:
            add("served from checkpoints", float(r["served_from_checkpoint"]))
            add("ran again", float(r["ran_again"]))
    figures.headline = Stat(head)
    figures.extra = {k: Stat(v) for k, v in extra.items()}
    return figures


def _measure(
    block: Block, r: dict[str, Any], add: Callable[[str, float], None]
) -> tuple[float, float]:
    """One job's headline (in UNITS) and the cost its ratios use; other figures
    go to ``add``."""
    elapsed = float(r["elapsed_s"])
    if block.workload == "seq":
        per_call = (elapsed - float(r["plain_s"])) / block.n * 1000
        add("request s", elapsed)
        return per_call, per_call
    if block.workload == "three":
        add("first request on a new store ms", float(r["first_s"]) * 1000)
        return elapsed * 1000, elapsed
    if block.workload in ("map", "workers"):
        add("map s", elapsed)
        ranked = sorted(r.get("per_worker", {}).values(), reverse=True)
        for rank, items in enumerate(ranked, 1):
            add(f"items of the worker ranked {rank}", float(items))  # busiest: 1
        return block.n / elapsed, elapsed
    if block.workload == "replay":
        add("calls/s", block.n / elapsed)
    elif block.workload == "cold":
        add("import s", float(r["import_s"]))
        add("open + first request s", float(r["request_s"]))
    return elapsed, elapsed


def _ratio(mine: SystemFigures, other: SystemFigures) -> Stat | None:
    """Per round, ``mine``'s cost ÷ ``other``'s."""
    values = [
        mine.cost[r] / other.cost[r]
        for r in sorted(mine.cost)
        if r in other.cost and other.cost[r] > 0
    ]
    return Stat(values) if values else None


def block_figures(block: Block, jobs: list[Job]) -> BlockFigures:
    mine = [j for j in jobs if j.block is block]
    systems = {
        lane_name(system, workers): _system_figures(
            block,
            system,
            [j for j in mine if j.system == system and j.workers == workers],
        )
        for system, workers in block.lanes()
    }
    pairs = [("cairn", peer) for peer in ("floor", "dbos")]
    if block.workers:
        first, *others = systems
        pairs = [(first, lane) for lane in others]
    ratios: dict[str, Stat] = {}
    for a, b in pairs:
        if a in systems and b in systems:
            stat = _ratio(systems[a], systems[b])
            if stat is not None:
                ratios[f"{a}/{b}"] = stat
    errors = [f"{j.lane} round {j.round + 1}: {j.error}" for j in mine if j.error]
    return BlockFigures(block, systems, ratios, errors)


def all_figures(blocks: list[Block], jobs: list[Job]) -> list[BlockFigures]:
    return [block_figures(block, jobs) for block in blocks]
