"""The HTTP contract: every JSON body the API takes or answers, as pydantic models.

The routes build their answers from these models, and ``/openapi.json`` takes its
component schemas from them, so the two cannot drift apart. Field order is the
order of the JSON keys: Tensorlake's fields first, keeping their names and
meaning (``outcome`` is null, ``"success"`` or ``{"failure": reason}``;
``created_at`` is epoch milliseconds), then what Cairn adds (``status``, ``run``,
per-call ``kind``/``parent_id``/``served_from_checkpoint``...).
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import models_json_schema

from cairn.types import CallStatus, RequestStatus

# Call ids and names longer than this are refused before any store is asked.
MAX_NAME_CHARS = 512


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def json_body(self) -> dict[str, Any]:
        """The JSON object this model answers as."""
        return self.model_dump(mode="json")


# -- errors and health ------------------------------------------------------------


class ErrorDetail(_Model):
    """What went wrong."""

    code: str = Field(description="stable, machine-readable")
    message: str = Field(description="for a person: names the problem")


class Error(_Model):
    """Every error answer."""

    error: ErrorDetail


class Health(_Model):
    """``GET /healthz``."""

    status: Literal["ok"]


# -- applications -----------------------------------------------------------------


class Application(_Model):
    """One served application (Tensorlake's ``Application``)."""

    name: str
    description: str
    tags: dict[str, str]
    allow: list[str]
    version: str = Field(description="a hash of the application's module source")
    tombstoned: bool
    created_at: int | None
    parameters: list[str]


class ApplicationList(_Model):
    """``GET /applications``."""

    applications: list[Application]


class Entrypoint(_Model):
    """How Tensorlake's client encodes the arguments and decodes the output."""

    function_name: str
    input_serializer: str
    inputs_base64: str = Field(description="the pickled parameters and type hints")
    output_serializer: str
    output_type_hints_base64: str


class Manifest(Application):
    """``GET /applications/{application}``: Tensorlake's ``ApplicationManifest``."""

    runtime: str
    functions: dict[str, Any]
    entrypoint: Entrypoint


class InvokeResult(_Model):
    """The request an invoke created."""

    request_id: str


# -- requests ---------------------------------------------------------------------


class Failure(_Model):
    """A failed request's outcome."""

    failure: str


Outcome = Literal["success"] | Failure | None


class RequestSummary(_Model):
    """One request of a list."""

    id: str
    created_at: int = Field(description="epoch milliseconds")
    outcome: Outcome = Field(
        description='null while running, "success", or {"failure": reason}'
    )
    application_version: str
    application_name: str
    status: RequestStatus
    failure_reason: str | None
    run: int = Field(description="1 = the original run, 2 = the first replay...")
    created_at_ms: float
    started_at_ms: float | None
    finished_at_ms: float | None


class RequestList(_Model):
    """A page of requests, newest first."""

    requests: list[RequestSummary]
    prev_cursor: None
    next_cursor: str | None = Field(description="pass as cursor for the next page")


class Allocation(_Model):
    """One attempt of a function run."""

    id: str
    attempt_number: int
    outcome: Literal["success", "failure"]
    failure_reason: str | None
    execution_duration_ms: float | None
    run: int
    attempt_outcome: str = Field(description="success, failure, timed_out or crashed")
    error: dict[str, Any] | None
    retry_delay_s: float | None
    code_version: str | None = Field(
        description="the code that ran it: a hash of its function's module "
        "(two during a rolling deploy)"
    )


class FunctionRun(_Model):
    """One call of a request, with its attempts."""

    id: str
    name: str
    status: Literal["pending", "running", "completed"]
    outcome: Literal["success", "failure"] | None
    failure_reason: str | None
    child_function_run_ids: list[str]
    allocations: list[Allocation]
    created_at: int | None
    call_status: CallStatus
    kind: str
    parent_id: str | None
    seq: int
    group_id: str | None
    error: dict[str, Any] | None
    started_at_ms: float | None
    finished_at_ms: float | None
    served_from_checkpoint: bool
    ran_in_latest_run: bool


class RequestErrorInfo(_Model):
    """The ``RequestError`` that failed a request."""

    function_name: str
    message: str


class RequestMetadata(RequestSummary):
    """A request: outcome, failure, function runs and attempts."""

    request_error: RequestErrorInfo | None
    strict_replay: bool
    error: dict[str, Any] | None
    progress: dict[str, Any] | None
    code_ref: str | None
    input: Any = Field(description="the input, when it is 64 KiB or less")
    function_runs: list[FunctionRun]
    waiting: str | None = Field(
        description="what a pending request waits for, e.g. a worker that serves "
        "one of its functions"
    )


class ReplayBody(_Model):
    """What to replay (every field optional)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    from_call: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_NAME_CHARS,
        description="run this call and every call started after it again",
    )
    strict: bool = Field(
        default=False,
        description="fail with replay_mismatch where the code takes another path",
    )


class ReplayResult(_Model):
    """The run a replay started."""

    request_id: str
    run: int


class CancelResult(_Model):
    """Where a cancel left the request."""

    request_id: str
    status: RequestStatus
    cancelled: bool = Field(description="false when it had finished already")


def problem(model: type[BaseModel], error: ValidationError) -> str:
    """A validation error of a body in one line, naming the field."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        known = ", ".join(model.model_fields)
        return f"unknown field {where[:40]!r} (known: {known})"
    if not where:
        return f"the body must be a JSON object ({first['msg']})"
    return f"{where}: {first['msg']}"


@functools.cache
def component_schemas(
    answers: tuple[type[BaseModel], ...], bodies: tuple[type[BaseModel], ...]
) -> dict[str, Any]:
    """The JSON schemas of the models answered and taken, and of every model they
    use, by name."""
    _, top = models_json_schema(
        [(model, "serialization") for model in answers]
        + [(model, "validation") for model in bodies],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = top.get("$defs", {})
    return schemas
