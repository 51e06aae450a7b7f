"""View models: store records turned into what the templates show.

Everything here is plain data and pure functions of records (and of ``now_ms``
for running requests), so the pages' content is tested without a browser.
"""

from __future__ import annotations

import inspect
import json
import typing
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cairn import _registry, _text
from cairn.store import CallCounts, CallRecord, RequestRecord
from cairn.types import RequestStatus

from .. import _shapes
from . import _journal, _rows, _values

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


@dataclass(frozen=True, kw_only=True)
class Head:
    """The request page's summary: title, actions, facts, live progress, error."""

    row: RequestRow
    record: RequestRecord
    served: bool
    counts: CallCounts
    waiting: str | None = None
    """What a pending call waits for: a worker that serves its function, its
    rate limit, its key's slot, a timer, a signal (``_request_ops.waiting_for``)."""
    awaited_signal: str | None = None
    """The signal the request waits for, if any (the signal form's default)."""

    def fingerprint(self) -> int:
        """Changes when what the head shows changes (not with the progress, which
        the page follows live, nor the duration, which it ticks)."""
        record = self.record
        return hash(
            (
                record.status,
                record.run,
                record.started_at_ms,
                record.finished_at_ms,
                record.failure_reason,
                json.dumps(record.error, sort_keys=True, default=str),
                self.served,
                self.counts,
                self.waiting,
                self.awaited_signal,
            )
        )


def head(
    record: RequestRecord,
    counts: CallCounts,
    now_ms: float,
    waiting: str | None,
    awaited_signal: str | None = None,
) -> Head:
    """The summary of a request page."""
    return Head(
        row=request_row(record, now_ms),
        record=record,
        served=_registry.find(record.application) is not None,
        counts=counts,
        waiting=waiting,
        awaited_signal=awaited_signal,
    )


@dataclass(frozen=True, kw_only=True)
class CallDetails:
    """One call, opened: attempts over every run, arguments, output, progress."""

    key: str
    record: CallRecord
    label: str
    path: str
    attempts: list[_rows.Attempt]
    arguments: _values.Arguments
    output: _values.Shown | None
    log: _journal.LogPage
    replayable: bool
    latest_run: int
    output_path: str
    """Where the API serves the output (under the namespace), to download it."""
    focused: bool = False
    """Shown on its own above the tree (a link to a call the tree does not show)."""


def call_details(
    record: CallRecord,
    request: RequestRecord,
    *,
    key: str,
    path: str,
    attempts: list[_rows.Attempt],
    arguments: _values.Arguments,
    output: _values.Shown | None,
    log: _journal.LogPage,
    focused: bool = False,
) -> CallDetails:
    """One call of a request, opened, with its rendered arguments and output."""
    return CallDetails(
        key=key,
        record=record,
        label=_rows.label(record),
        path=path,
        attempts=attempts,
        arguments=arguments,
        output=output,
        log=log,
        replayable=request.status.finished
        and _registry.find(request.application) is not None,
        latest_run=request.run,
        output_path=output_path(request, None if record.kind == "app" else record.id),
        focused=focused,
    )


def output_path(record: RequestRecord, call_id: str | None = None) -> str:
    """The API path of a request's output, or of one of its calls' (a pickle)."""
    path = (
        f"/applications/{quote(record.application, safe='')}"
        f"/requests/{quote(record.id, safe='')}/output"
    )
    return path if call_id is None else f"{path}/{quote(call_id, safe='')}"
