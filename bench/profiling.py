"""What a checkpointed call and a small request cost, from py-spy profiles.

``py-spy record --idle --subprocesses`` samples ``worker.py profile cairn`` runs
(a warm-up, then requests of sequential no-op calls). ``--idle`` keeps the samples
of a thread blocked in a system call or asleep, so time spent waiting for an fsync
or for a poll tick is counted. Two views:

- *checkpoint*: requests of 2,000 calls; only the samples taken in the executor
  process inside the application function (``bench_sequential``) are kept: what
  one checkpointed call costs.
- *request*: many 3-call requests; only the samples of the calling process inside
  ``run_local_application(...).output()`` are kept: where a small request's
  wall time goes, from the caller's side.

Each sample is attributed to the innermost frame of Cairn's or the benchmark's
own code, and the source line there decides its category (``.commit(`` is a
COMMIT, ``.execute(`` an SQL statement, ``sleep(`` a wait, and so on): time
inside sqlite3, psycopg or pickle lands on the line of Cairn that called them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
SRC = BENCH.parent / "src"
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]+):(?P<line>\d+)\)$")

CATEGORIES = [
    (
        "commit",
        "COMMIT: the WAL write, and at FULL its fsync (or the server round trip)",
    ),
    ("sql", "other SQL statements (INSERT, UPDATE, SELECT) and their driver"),
    ("serialization", "pickling and unpickling values"),
    ("ids", "durable call ids (hashing)"),
    ("store", "store layer Python around the SQL"),
    ("engine", "engine bookkeeping (frames, attempts, deadlines, events)"),
    ("app", "the application's own loop"),
]
REQUEST_CATEGORIES = [
    (
        "wait",
        "waiting, blocked, while an executor runs the request (the caller's share "
        "of its work is the other rows)",
    ),
    ("open", "opening and closing store connections (schema check included)"),
    ("commit", "COMMITs (creating the request)"),
    ("sql", "other SQL statements and their driver"),
    ("serialization", "JSON input/output validation and (de)serialization"),
    ("engine", "engine bookkeeping (supervising executors, heartbeats)"),
    ("other", "the benchmark's own code"),
]
VIEWS = {
    # view: (anchor frame, samples of the calling process only?, categories)
    "checkpoint": ("bench_sequential (bench_apps.py", False, CATEGORIES),
    "request": ("CairnSystem.request (sys_cairn.py", True, REQUEST_CATEGORIES),
}


def _source_line(file: str, line: int, cache: dict[str, list[str]]) -> str:
    if file not in cache:
        path = SRC / file if file.startswith("cairn/") else BENCH / file
        try:
            cache[file] = path.read_text().splitlines()
        except OSError:
            cache[file] = []
    lines = cache[file]
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def _ours(file: str) -> bool:
    return file.startswith("cairn/") or (BENCH / file).exists()


_COMMIT = re.compile(r"\.commit\(\)|[\"']COMMIT[\"']|\.transaction\(\)")


def _category(file: str, text: str) -> str:
    if _COMMIT.search(text):
        return "commit"
    if any(w in text for w in ("execute(", "executemany(", "fetchone(", "fetchall(")):
        return "sql"
    if "pickle" in text or "dumps(" in text or "loads(" in text:
        return "serialization"
    if file in ("cairn/_serialization.py", "cairn/_values.py"):
        return "serialization"
    if file == "cairn/_ids.py":
        return "ids"
    if file.startswith("cairn/store/"):
        return "store"
    if not file.startswith("cairn/"):
        return "app"
    return "engine"


_WAIT = re.compile(r"sleep\(|\.wait\(|select\(|\.poll\(")
_OPEN = re.compile(r"open_store\(|\.close\(\)|connect\(|Store\(")


def _request_category(file: str, text: str) -> str:
    if _WAIT.search(text):
        return "wait"
    if _OPEN.search(text):
        return "open"
    if _COMMIT.search(text):
        return "commit"
    if any(w in text for w in ("execute(", "executemany(", "fetchone(", "fetchall(")):
        return "sql"
    if file in ("cairn/_serialization.py", "cairn/_values.py") or "json" in text:
        return "serialization"
    if not file.startswith("cairn/"):
        return "other"
    return "engine"


def analyse(raw: str, view: str = "checkpoint") -> dict[str, Any]:
    """Shares of the samples of one view, by category and by line."""
    anchor, caller_only, categories_of_view = VIEWS[view]
    classify = _category if view == "checkpoint" else _request_category
    cache: dict[str, list[str]] = {}
    categories: Counter[str] = Counter()
    lines: Counter[tuple[str, str, int, str]] = Counter()
    total = 0
    for entry in raw.splitlines():
        stack, _, count_text = entry.rpartition(" ")
        if anchor not in stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        processes = sum(1 for f in frames if f.startswith("process "))
        if caller_only and processes > 1:
            continue  # a forked executor: its stack starts with its parent's
        count = int(count_text)
        where = None
        for frame in reversed(frames):
            match = _FRAME.match(frame)
            if match and _ours(match["file"]):
                where = (match["func"], match["file"], int(match["line"]))
                break
        if where is None:
            continue
        func, file, line = where
        text = _source_line(file, line, cache)
        categories[classify(file, text)] += count
        lines[(func, file, line, text)] += count
        total += count
    return {
        "samples": total,
        "categories": {
            key: categories[key] / total if total else 0.0
            for key, _ in categories_of_view
        },
        "top_lines": [
            {
                "function": func,
                "where": f"{file}:{line}",
                "code": text,
                "share": count / total,
            }
            for (func, file, line, text), count in lines.most_common(12)
        ],
    }


def profile_setting(
    python: str,
    py_spy: Path,
    tmp: str,
    setting: dict[str, Any],
    n: int,
    reps: int,
    view: str,
) -> dict[str, Any]:
    if not py_spy.exists():
        return {"error": f"py-spy not found at {py_spy} (make bench-venv)"}
    directory = tempfile.mkdtemp(prefix="profile-", dir=tmp)
    raw_path = os.path.join(directory, "profile.txt")
    argv = [
        str(py_spy),
        "record",
        "--idle",
        "--subprocesses",
        "--nonblocking",
        "--rate",
        "500",
        "--format",
        "raw",
        "--output",
        raw_path,
        "--",
        python,
        str(BENCH / "worker.py"),
        "profile",
        "cairn",
        "--setting",
        json.dumps(setting),
        "--store",
        os.path.join(directory, "store.db"),
        "--n",
        str(n),
        "--reps",
        str(reps),
    ]
    started = time.perf_counter()
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=300, cwd=directory
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return {"error": f"py-spy: {error}"}
    wall = time.perf_counter() - started
    timing = {}
    for line in done.stdout.splitlines():
        if line.startswith("PROFILE "):
            timing = json.loads(line[len("PROFILE ") :])
    try:
        raw = Path(raw_path).read_text()
    except OSError:
        return {"error": f"py-spy wrote no profile: {done.stderr.strip()[-300:]}"}
    result = analyse(raw, view)
    result.update(
        {
            "view": view,
            "setting": setting["name"],
            "n": n,
            "reps": reps,
            "wall_s": wall,
            "per_call_ms_under_profiler": timing.get("per_call_ms"),
            "per_request_ms_under_profiler": timing.get("per_request_ms"),
        }
    )
    return result


def profile_all(
    pythons: dict[str, str],
    tmp: str,
    settings: list[dict[str, Any]],
    *,
    quick: bool,
) -> dict[str, Any]:
    """Both views at each setting: ``{setting: {view: result}}``."""
    out: dict[str, Any] = {}
    for setting in settings:
        print(f"profiling Cairn at {setting['name']} ...", file=sys.stderr, flush=True)
        python = pythons["cairn"]
        # py-spy is a binary of the benchmark's own environment (make bench-venv).
        py_spy = Path(pythons["dbos"]).parent / "py-spy"
        out[setting["name"]] = {
            "checkpoint": profile_setting(
                python,
                py_spy,
                tmp,
                setting,
                1000 if quick else 2000,
                2 if quick else 3,
                "checkpoint",
            ),
            "request": profile_setting(
                python, py_spy, tmp, setting, 3, 100 if quick else 300, "request"
            ),
        }
    return out
