"""View models: store records turned into what the templates show.

Everything here is plain data and pure functions of records (and of ``now_ms``
for running requests), so the pages' content is tested without a browser.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cairn import _registry, _request, _text
from cairn.store import RequestRecord
from cairn.types import RequestStatus

from .. import _shapes
from . import _journal, _tree, _values

# Recent requests shown per application on the requests page.
RECENT_PER_APP = 12


@dataclass(frozen=True, kw_only=True)
class RequestRow:
    """One request in a list."""

    id: str
    application: str
    status: str
    finished: bool
    outcome: str
    created_at_ms: float
    started_at_ms: float | None
    duration_s: float | None
    run: int
    progress: _journal.ProgressLine | None


@dataclass(frozen=True, kw_only=True)
class Parameter:
    """One parameter of an application, for the invoke form."""

    name: str
    hint: str
    required: bool
    default: str
    example: str


@dataclass(frozen=True, kw_only=True)
class ApplicationView:
    """An application and its latest requests."""

    name: str
    description: str
    parameters: list[Parameter]
    recent: list[RequestRow]


@dataclass(frozen=True, kw_only=True)
class RequestPage:
    """Everything the request page shows."""

    row: RequestRow
    record: RequestRecord
    served: bool
    arguments: _values.Arguments
    output: _values.Shown | None
    error: dict[str, Any] | None
    rows: list[_tree.Row]
    scale: _tree.Scale
    counts: _tree.RunCounts
    progress_log: list[_journal.ProgressLine]
    seq: int
    """The request's last event when the page was read (it shows every one up to it)."""
    output_path: str
    """Where the API serves the output (under the namespace), to download it."""


@dataclass(frozen=True, kw_only=True)
class CallDetails:
    """One call, opened: attempts, arguments, output, progress messages."""

    call: _request.CallInfo
    label: str
    arguments: _values.Arguments
    output: _values.Shown | None
    progress_log: list[_journal.ProgressLine]
    replayable: bool
    output_path: str
    """Where the API serves the output (under the namespace), to download it."""


def progress(data: dict[str, Any] | None) -> _journal.ProgressLine | None:
    """The latest progress a request record holds (None if it never reported)."""
    return _journal.progress_line(data) if data else None


def outcome(record: RequestRecord) -> str:
    """``success``, ``failure: reason``, or empty while unfinished."""
    if record.status is RequestStatus.SUCCEEDED:
        return "success"
    if record.status.finished:
        return f"failure: {record.failure_reason or 'unknown'}"
    return ""


def request_row(record: RequestRecord, now_ms: float) -> RequestRow:
    """A request as one row of a list (its duration is its latest run's)."""
    return RequestRow(
        id=record.id,
        application=record.application,
        status=str(record.status),
        finished=record.status.finished,
        outcome=outcome(record),
        created_at_ms=record.created_at_ms,
        started_at_ms=record.started_at_ms,
        duration_s=_text.run_duration_s(record, now_ms),
        run=record.run,
        progress=None if record.status.finished else progress(record.progress),
    )


# What the invoke form suggests typing for a parameter of a type.
_EXAMPLES = {
    "int": "1",
    "float": "1.5",
    "str": '"text"',
    "bool": "true",
    "list": "[]",
    "dict": "{}",
    "any": "null",
}


def _hint_text(hint: Any) -> str:
    if hint is Any:
        return "any"
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__qualname__
    return str(hint).replace("typing.", "")


def parameters(spec: _registry.FunctionSpec) -> list[Parameter]:
    """The parameters an application takes, for the invoke form."""
    signature = inspect.signature(spec.fn).parameters
    found = []
    for name, hint in _shapes._parameters(spec):
        default = signature[name].default
        text = ""
        if default is not inspect.Parameter.empty:
            try:
                text = json.dumps(default)
            except (TypeError, ValueError):
                text = repr(default)
        found.append(
            Parameter(
                name=name,
                hint=_hint_text(hint),
                required=default is inspect.Parameter.empty,
                default=text,
                example=text or _EXAMPLES.get(_hint_text(hint).split("[")[0], "null"),
            )
        )
    return found


def parameter_names(function: str) -> list[str]:
    """The parameter names of a function of the loaded code (none if unknown)."""
    spec = _registry.find(function)
    return [] if spec is None else [name for name, _ in _shapes._parameters(spec)]


def application(
    spec: _registry.FunctionSpec, recent: list[RequestRow]
) -> ApplicationView:
    """An application of the loaded code, with its latest requests."""
    return ApplicationView(
        name=spec.name,
        description=spec.description or "",
        parameters=parameters(spec),
        recent=recent,
    )


def request_page(
    record: RequestRecord,
    calls: list[_request.CallInfo],
    tree: _tree.Tree,
    progress_log: list[_journal.ProgressLine],
    now_ms: float,
    *,
    seq: int,
    arguments: _values.Arguments,
    output: _values.Shown | None,
) -> RequestPage:
    """The request page of one request.

    Its progress is the log's latest line (as of ``seq``), not the record's
    (maybe newer): the page's script moves it on from there. ``arguments`` and
    ``output`` are the rendered input and output (``_decoding``).
    """
    row = request_row(record, now_ms)
    if row.progress is not None and progress_log:
        row = dataclasses.replace(row, progress=progress_log[-1])
    return RequestPage(
        row=row,
        record=record,
        served=_registry.find(record.application) is not None,
        arguments=arguments,
        output=output,
        error=record.error if record.status.finished else None,
        rows=tree.rows(),
        scale=tree.scale,
        counts=_tree.run_counts(calls),
        progress_log=progress_log,
        seq=seq,
        output_path=output_path(record),
    )


def call_details(
    call: _request.CallInfo,
    arguments: _values.Arguments,
    output: _values.Shown | None,
    progress_log: list[_journal.ProgressLine],
    record: RequestRecord,
) -> CallDetails:
    """One call of a request, opened, with its rendered arguments and output."""
    return CallDetails(
        call=call,
        label=_tree.label(call),
        arguments=arguments,
        output=output,
        progress_log=progress_log,
        replayable=record.status.finished
        and _registry.find(record.application) is not None,
        output_path=output_path(record, None if call.kind == "app" else call.id),
    )


def output_path(record: RequestRecord, call_id: str | None = None) -> str:
    """The API path of a request's output, or of one of its calls' (a pickle)."""
    path = (
        f"/applications/{quote(record.application, safe='')}"
        f"/requests/{quote(record.id, safe='')}/output"
    )
    return path if call_id is None else f"{path}/{quote(call_id, safe='')}"
