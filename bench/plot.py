"""Plot per-call overhead against calls per request: ``plot.py DATA.json OUT.png``.

Runs under ``bench/.venv-dbos`` (it has matplotlib; the project's venv does not
need it). ``report.py`` writes DATA.json from the run's figures: per engine and
durability setting, the median and min-max of each request size.
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = {"cairn": "#1f77b4", "dbos": "#d62728", "floor": "#7f7f7f"}
NAMES = {"cairn": "Cairn", "dbos": "DBOS", "floor": "floor"}
STYLES = {
    "sqlite-full": ("-", "o"),
    "sqlite-normal": ("--", "s"),
    "dbos-default": (":", "^"),
    "pg": ("-.", "D"),
}
SHORT = {
    "sqlite-full": "SQLite FULL",
    "sqlite-normal": "SQLite NORMAL",
    "dbos-default": "DBOS default SQLite",
    "pg": "PostgreSQL",
}


def main(argv: list[str]) -> int:
    data_path, out_path = argv
    with open(data_path) as handle:
        data = json.load(handle)
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=120)
    for key in sorted(data["series"]):
        system, setting = key.split("|")
        points = sorted(data["series"][key], key=lambda p: p["n"])
        xs = [p["n"] for p in points]
        ys = [p["median"] for p in points]
        low = [p["median"] - p["min"] for p in points]
        high = [p["max"] - p["median"] for p in points]
        line, marker = STYLES.get(setting, ("-", "o"))
        ax.errorbar(
            xs,
            ys,
            yerr=[low, high],
            color=COLORS.get(system, "black"),
            linestyle=line,
            marker=marker,
            capsize=3,
            label=f"{NAMES.get(system, system)}, {SHORT.get(setting, setting)}",
        )
    sizes = sorted({p["n"] for points in data["series"].values() for p in points})
    ax.set_xscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([f"{n:,}" for n in sizes])
    ax.minorticks_off()
    ax.set_yscale("log")
    ax.set_xlabel("calls per request")
    ax.set_ylabel("overhead per call (ms, log scale)")
    ax.set_title(data["title"], fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
