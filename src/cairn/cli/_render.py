"""Formatting for the CLI: tables, request summaries and the call tree (rich)."""

from __future__ import annotations

import datetime
import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from cairn import AttemptInfo, CallInfo, _text
from cairn.store import CallRecord, RequestRecord
from cairn.types import CallStatus, RequestStatus

# More map items than this under one parent collapse to a count line.
MAP_COLLAPSE_OVER = 20
_STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "timed_out": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "pending": "blue",
    "stale": "magenta",
}
_STATUS_ICON = {
    "succeeded": "✓",
    "failed": "✗",
    "timed_out": "⏱",
    "cancelled": "⊘",
    "running": "…",
    "pending": "·",
    "stale": "~",
}


def console(*, stderr: bool = False) -> Console:
    """A console; when it is not a terminal, wide enough not to wrap ids."""
    made = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not made.is_terminal:
        made = Console(stderr=stderr, highlight=False, width=max(made.width, 200))
    return made


# Shared with the dashboard.
duration = _text.duration
timestamp = _text.timestamp
clip = _text.clip
error_line = _text.error_line


def status_text(status: str) -> str:
    """A status with its colour, as rich markup."""
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"


def run_duration(record: RequestRecord, app_call: CallRecord | None) -> float | None:
    """How long the latest run took (or has been running so far)."""
    del app_call  # the request records its latest run's start and end
    return _text.run_duration_s(record)


def outcome(record: RequestRecord) -> str:
    """``success``, ``failure: reason`` or the status of an unfinished request."""
    if record.status is RequestStatus.SUCCEEDED:
        return "[green]success[/]"
    if record.status.finished:
        return f"[red]failure[/]: {record.failure_reason or 'unknown'}"
    return status_text(record.status)


def json_text(raw: bytes | None) -> str:
    """Pretty JSON of stored JSON bytes."""
    if raw is None:
        return "null"
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        return raw.decode("utf-8", "replace")


def print_result(out: Console, record: RequestRecord) -> None:
    """Request id, outcome, and the output (as JSON) or the error."""
    out.print(f"request  {record.id}")
    out.print(f"outcome  {outcome(record)}")
    if record.status is RequestStatus.SUCCEEDED:
        out.print("output   ", end="")
        out.print(json_text(record.output), markup=False, soft_wrap=True)
    elif record.error:
        out.print(f"error    {escape(error_line(record.error))}", soft_wrap=True)


def requests_table(
    records: Iterable[RequestRecord], app_calls: dict[str, CallRecord | None]
) -> Table:
    """The table of ``cairn requests list`` (``app_calls``: request id -> app call)."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("id", "application", "status", "failure reason"):
        table.add_column(name, no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    for record in records:
        table.add_row(
            record.id,
            escape(record.application),
            status_text(record.status),
            escape(record.failure_reason or ""),
            timestamp(record.created_at_ms),
            duration(run_duration(record, app_calls.get(record.id))),
        )
    return table


def summary(
    record: RequestRecord, app_call: CallRecord | None, waiting: str | None = None
) -> list[str]:
    """Key/value lines (rich markup) summarizing one request."""
    rows = [
        ("request", record.id),
        ("application", escape(record.application)),
        ("status", status_text(record.status)),
        ("outcome", outcome(record)),
        ("run", str(record.run) + (" (strict replay)" if record.strict_replay else "")),
        ("created", timestamp(record.created_at_ms)),
        ("duration", f"{duration(run_duration(record, app_call))} (run {record.run})"),
    ]
    if record.code_ref:
        rows.append(("code", escape(record.code_ref)))
    rows.append(("input", escape(clip(_input_text(record.input)))))
    if record.status is RequestStatus.SUCCEEDED:
        rows.append(("output", escape(clip(json_text(record.output)))))
    if record.error:
        rows.append(("error", f"[red]{escape(clip(error_line(record.error)))}[/]"))
    if record.progress:
        rows.append(("progress", escape(_progress_text(record.progress))))
    if waiting:
        rows.append(("waiting", f"[yellow]{escape(waiting)}[/]"))
    return [f"[bold]{key:<12}[/] {value}" for key, value in rows]


def _input_text(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
    if isinstance(data, dict) and set(data) == {"args", "kwargs"}:
        parts = [json.dumps(v, ensure_ascii=False) for v in data["args"]]
        parts += [
            f"{k}={json.dumps(v, ensure_ascii=False)}"
            for k, v in data["kwargs"].items()
        ]
        return ", ".join(parts) or "(none)"
    return json.dumps(data, ensure_ascii=False)


def _progress_text(progress: dict[str, Any]) -> str:
    step, total = progress.get("step"), progress.get("total")
    message = progress.get("message") or ""
    return f"{step}/{total} {message}".strip()


def run_counts(calls: list[CallInfo], run: int) -> str:
    """The closing line: what the latest run ran and served, and which versions of
    the code ran the attempts (several, during a rolling deploy)."""
    ran = sum(1 for c in calls if c.ran_in_latest_run)
    served = sum(1 for c in calls if c.served_from_checkpoint)
    line = f"ran {ran} calls, served {served} from checkpoints in run {run}"
    versions = Counter(
        a.code_version for c in calls for a in c.attempts if a.code_version
    )
    if versions:
        line += "; code " + ", ".join(
            f"{version} ({count} attempt{'' if count == 1 else 's'})"
            for version, count in versions.most_common()
        )
    return line


def call_tree(
    calls: list[CallInfo], groups: dict[str, str | None], tracebacks: bool
) -> Tree:
    """Children under parents; map items grouped (``groups``: call id -> group id)."""
    children: dict[str | None, list[CallInfo]] = {}
    for call in calls:
        children.setdefault(call.parent_id, []).append(call)
    multi_run = len({a.run for c in calls for a in c.attempts}) > 1
    tree = Tree("[bold]calls[/]", guide_style="dim")

    def add(node: Tree, parent_id: str | None) -> None:
        placed: set[str] = set()
        for call in children.get(parent_id, []):
            if call.kind != "map_item":
                branch = node.add(_call_label(call, multi_run, tracebacks))
                add(branch, call.id)
                continue
            group = groups.get(call.id) or f"{parent_id}:{call.function}"
            if group in placed:
                continue
            placed.add(group)
            items = [
                c
                for c in children.get(parent_id, [])
                if c.kind == "map_item"
                and (groups.get(c.id) or f"{parent_id}:{c.function}") == group
            ]
            _add_map_group(
                node, sorted(items, key=lambda c: c.seq), multi_run, tracebacks
            )

    add(tree, None)
    return tree


def _add_map_group(
    node: Tree, items: list[CallInfo], multi_run: bool, tracebacks: bool
) -> None:
    counts: dict[str, int] = {}
    for item in items:
        counts[item.status] = counts.get(item.status, 0) + 1
    tally = ", ".join(f"{n} {status_text(s)}" for s, n in sorted(counts.items()))
    ran = sum(1 for c in items if c.ran_in_latest_run)
    served = sum(1 for c in items if c.served_from_checkpoint)
    label = (
        f"[bold]{escape(items[0].function)}.map[/] {len(items)} items: {tally}"
        f"  [dim]ran {ran}, served {served}[/]"
    )
    group = node.add(label)
    if len(items) <= MAP_COLLAPSE_OVER:
        shown = items
    else:
        shown = [c for c in items if c.status != CallStatus.SUCCEEDED]
        shown = shown[:MAP_COLLAPSE_OVER]
    for item in shown:
        group.add(_call_label(item, multi_run, tracebacks, item_index=item.seq))
    hidden = len(items) - len(shown)
    if hidden and shown:
        group.add(f"[dim]… {hidden} more items not shown[/]")


def _call_label(
    call: CallInfo, multi_run: bool, tracebacks: bool, item_index: int | None = None
) -> str:
    icon = _STATUS_ICON.get(call.status, "?")
    style = _STATUS_STYLE.get(call.status, "white")
    name = escape(call.function)
    if item_index is not None:
        name = escape(f"{call.function}[{item_index}]")
    elif call.kind == "reduce":
        name = f"{name}.reduce"
    elif call.kind == "reduce_step":
        name = f"{name} step {call.seq}"
    parts = [
        f"[{style}]{icon}[/] [bold]{name}[/]",
        f"[dim]{call.id[:12]}[/]",
        status_text(call.status),
        _attempts_text(call.attempts, multi_run),
        _call_duration(call),
        _marker(call),
    ]
    label = "  ".join(part for part in parts if part)
    if call.error and call.status != CallStatus.SUCCEEDED:
        label += f"\n[red]{escape(clip(error_line(call.error)))}[/]"
        trace = call.error.get("traceback")
        if tracebacks and trace:
            label += f"\n[dim]{escape(str(trace).rstrip())}[/]"
    return label


def _call_duration(call: CallInfo) -> str:
    if call.duration_s is None and call.started_at_ms is not None:
        if call.status == CallStatus.RUNNING:
            now = datetime.datetime.now().timestamp() * 1000
            return f"{duration(max(0.0, now - call.started_at_ms) / 1000)} so far"
    return duration(call.duration_s)


def _marker(call: CallInfo) -> str:
    """Whether the latest run ran the call, served its checkpoint, or neither."""
    marker = _text.replay_marker(call)
    if marker == "checkpoint":
        return "[cyan]checkpoint[/]"
    if marker == "ran":
        return "[bold]ran[/]"
    return f"[dim]{marker}[/]" if marker else ""


def _attempts_text(attempts: list[AttemptInfo], multi_run: bool) -> str:
    count = len(attempts)
    text = f"{count} attempt" + ("" if count == 1 else "s")
    if count == 0 or (
        count == 1 and attempts[0].outcome == "success" and not multi_run
    ):
        return text
    shown = attempts[-5:]
    items = []
    for attempt in shown:
        item = f"#{attempt.attempt} {attempt.outcome} {duration(attempt.duration_s)}"
        if attempt.error:
            item += f" {attempt.error.get('type') or 'Error'}"
        if multi_run:
            item += f" (run {attempt.run})"
        items.append(escape(item))
    more = "…; " if count > len(shown) else ""
    return f"{text} [dim]\\[{more}{'; '.join(items)}][/]"
