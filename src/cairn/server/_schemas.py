"""The component schemas of ``/openapi.json``: the JSON the API answers with."""

from __future__ import annotations

from typing import Any

from cairn.types import RequestStatus


def ref(name: str) -> dict[str, Any]:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON body of this schema."""
    return {"application/json": {"schema": schema}}


NULLABLE_STR = {"type": ["string", "null"]}
NULLABLE_NUM = {"type": ["number", "null"]}
OUTCOME = {
    "description": 'null while running, "success", or {"failure": reason}',
    "oneOf": [
        {"type": "null"},
        {"type": "string", "enum": ["success"]},
        {
            "type": "object",
            "properties": {"failure": {"type": "string"}},
            "required": ["failure"],
        },
    ],
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                },
                "required": ["code", "message"],
            }
        },
        "required": ["error"],
    },
    "Health": {
        "type": "object",
        "properties": {"status": {"type": "string"}},
        "required": ["status"],
    },
    "Application": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "tags": {"type": "object", "additionalProperties": {"type": "string"}},
            "allow": {"type": "array", "items": {"type": "string"}},
            "version": {"type": "string"},
            "tombstoned": {"type": "boolean"},
            "parameters": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "description", "tags", "version"],
    },
    "ApplicationList": {
        "type": "object",
        "properties": {"applications": {"type": "array", "items": ref("Application")}},
        "required": ["applications"],
    },
    "Manifest": {
        "description": "Tensorlake's ApplicationManifest (what its client reads)",
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "functions": {"type": "object"},
            "entrypoint": {
                "type": "object",
                "properties": {
                    "function_name": {"type": "string"},
                    "input_serializer": {"type": "string"},
                    "inputs_base64": {"type": "string"},
                    "output_serializer": {"type": "string"},
                    "output_type_hints_base64": {"type": "string"},
                },
                "required": [
                    "function_name",
                    "input_serializer",
                    "inputs_base64",
                    "output_serializer",
                    "output_type_hints_base64",
                ],
            },
        },
        "required": ["name", "version", "functions", "entrypoint"],
    },
    "InvokeResult": {
        "type": "object",
        "properties": {"request_id": {"type": "string"}},
        "required": ["request_id"],
    },
    "RequestSummary": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "created_at": {"type": "integer"},
            "outcome": OUTCOME,
            "application_version": {"type": "string"},
            "application_name": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in RequestStatus]},
            "failure_reason": NULLABLE_STR,
            "run": {"type": "integer"},
            "created_at_ms": {"type": "number"},
            "started_at_ms": NULLABLE_NUM,
            "finished_at_ms": NULLABLE_NUM,
        },
        "required": ["id", "created_at", "outcome", "application_version", "status"],
    },
    "RequestList": {
        "type": "object",
        "properties": {
            "requests": {"type": "array", "items": ref("RequestSummary")},
            "prev_cursor": NULLABLE_STR,
            "next_cursor": NULLABLE_STR,
        },
        "required": ["requests", "prev_cursor", "next_cursor"],
    },
    "Allocation": {
        "description": "One attempt of a function run",
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "attempt_number": {"type": "integer"},
            "outcome": {"type": "string", "enum": ["success", "failure"]},
            "failure_reason": NULLABLE_STR,
            "execution_duration_ms": NULLABLE_NUM,
            "run": {"type": "integer"},
            "code_version": {
                **NULLABLE_STR,
                "description": "the code that ran it: a hash of its function's "
                "module (two during a rolling deploy)",
            },
        },
        "required": ["id", "attempt_number", "outcome"],
    },
    "FunctionRun": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "running", "completed"]},
            "outcome": {
                "type": ["string", "null"],
                "enum": ["success", "failure", None],
            },
            "failure_reason": NULLABLE_STR,
            "child_function_run_ids": {"type": "array", "items": {"type": "string"}},
            "allocations": {"type": "array", "items": ref("Allocation")},
            "kind": {"type": "string"},
            "parent_id": NULLABLE_STR,
            "served_from_checkpoint": {"type": "boolean"},
        },
        "required": ["id", "name", "status", "outcome", "allocations"],
    },
    "RequestMetadata": {
        "allOf": [
            ref("RequestSummary"),
            {
                "type": "object",
                "properties": {
                    "request_error": {
                        "oneOf": [
                            {"type": "null"},
                            {
                                "type": "object",
                                "properties": {
                                    "function_name": {"type": "string"},
                                    "message": {"type": "string"},
                                },
                                "required": ["function_name", "message"],
                            },
                        ]
                    },
                    "function_runs": {"type": "array", "items": ref("FunctionRun")},
                    "progress": {"type": ["object", "null"]},
                    "waiting": {
                        "type": ["string", "null"],
                        "description": "what a pending request waits for, e.g. "
                        "a worker that serves one of its functions",
                    },
                },
                "required": ["request_error", "function_runs"],
            },
        ]
    },
    "ReplayBody": {
        "type": "object",
        "properties": {
            "from_call": {
                "type": ["string", "null"],
                "description": "run this call and every call started after it again",
            },
            "strict": {
                "type": "boolean",
                "description": "fail with replay_mismatch where the code takes "
                "another path",
            },
        },
        "additionalProperties": False,
    },
    "ReplayResult": {
        "type": "object",
        "properties": {"request_id": {"type": "string"}, "run": {"type": "integer"}},
        "required": ["request_id", "run"],
    },
    "CancelResult": {
        "type": "object",
        "properties": {
            "request_id": {"type": "string"},
            "status": {"type": "string"},
            "cancelled": {"type": "boolean"},
        },
        "required": ["request_id", "status", "cancelled"],
    },
}

SSE = {
    "text/event-stream": {
        "schema": {
            "description": (
                'one event: "id: <seq>" and "data: {"Kind": {...}}" (Tensorlake\'s '
                "externally tagged events), no event field; keep-alive comments"
            ),
            "type": "object",
            "properties": {
                "id": {"type": "string", "pattern": "^[0-9]+$"},
                "data": {"type": "string", "contentMediaType": "application/json"},
                "event": {"type": "string"},
            },
            "required": ["data"],
        }
    }
}
