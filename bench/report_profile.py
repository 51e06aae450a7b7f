"""The benchmark page's section on what costs what, from the py-spy profiles."""

from __future__ import annotations

from typing import Any

from profiling import CATEGORIES, REQUEST_CATEGORIES
from report_common import extra_stat, figure_at, fmt, median_of


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
    seq = figure_at(doc, "seq", setting, doc["sizes"]["seq"])
    per_call = median_of(seq, "cairn")
    floor = median_of(seq, "floor")
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
    three = figure_at(doc, "three", setting)
    per_request = median_of(three, "cairn")
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
        figure = figure_at(doc, "seq", setting, n)
        stored = extra_stat(figure, system, "stored bytes per call") if figure else None
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
        seq = figure_at(doc, "seq", setting, doc["sizes"]["seq"])
        per_call, floor = median_of(seq, "cairn"), median_of(seq, "floor")
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
        three = figure_at(doc, "three", setting)
        per_request = median_of(three, "cairn")
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
