"""``/openapi.json`` (OpenAPI 3.1), generated from the route table and the models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

import cairn

from . import _models, _routing


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _param(param: _routing.Param, apps: Sequence[str]) -> dict[str, Any]:
    schema = dict(param.schema)
    if param.name == "application" and apps:
        schema["enum"] = list(apps)
    return {
        "name": param.name,
        "in": param.where,
        "required": param.where == "path",
        "schema": schema,
        "description": param.description,
    }


def _answer(answer: _routing.Answer) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if answer.model is not None:
        content["application/json"] = {"schema": _ref(answer.model)}
    content.update(answer.content or {})
    described: dict[str, Any] = {"description": answer.description}
    if content:
        described["content"] = content
    return described


def _operation(
    operation: _routing.Operation, apps: Sequence[str], auth: bool
) -> dict[str, Any]:
    described: dict[str, Any] = {
        "operationId": operation.operation_id,
        "summary": operation.summary,
    }
    if operation.description:
        described["description"] = operation.description
    described["parameters"] = [_param(p, apps) for p in operation.parameters]
    content: dict[str, Any] = {}
    if operation.body is not None:
        content["application/json"] = {"schema": _ref(operation.body)}
    content.update(operation.body_content or {})
    if content:
        described["requestBody"] = {"required": False, "content": content}
    answers = dict(operation.answers)
    if operation.needs_auth:
        answers[503] = _routing.error("the store cannot be used right now")
        if auth:
            answers[401] = _routing.error("missing or wrong API key")
    else:
        described["security"] = []
    described["responses"] = {
        str(status): _answer(answer) for status, answer in sorted(answers.items())
    }
    return described


def _models_of(
    operations: Sequence[_routing.Operation],
) -> tuple[tuple[type[BaseModel], ...], tuple[type[BaseModel], ...]]:
    answers: dict[type[BaseModel], None] = {_models.Error: None}
    bodies: dict[type[BaseModel], None] = {}
    for operation in operations:
        for answer in operation.answers.values():
            if answer.model is not None:
                answers[answer.model] = None
        if operation.body is not None:
            bodies[operation.body] = None
    return tuple(answers), tuple(bodies)


def document(
    operations: Sequence[_routing.Operation],
    apps: Sequence[str],
    namespace: str,
    auth: bool,
) -> dict[str, Any]:
    """The OpenAPI document of a server serving ``operations``."""
    ns = _routing.Param(
        name="namespace",
        where="path",
        description="namespace",
        schema={"type": "string", "enum": [namespace]},
    )
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        described = _operation(operation, apps, auth)
        paths.setdefault(operation.path, {})[operation.method] = described
        if operation.namespaced:
            inside = {
                **described,
                "operationId": operation.operation_id + "InNamespace",
                "parameters": [_param(ns, apps), *described["parameters"]],
            }
            path = _routing.NAMESPACE_PREFIX + operation.path
            paths.setdefault(path, {})[operation.method] = inside
    result: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Cairn",
            "version": cairn.__version__,
            "description": (
                "Durable execution for Python: Tensorlake's v1 HTTP API. Routes "
                f"exist under /v1/namespaces/{{namespace}} and, for namespace "
                f"{namespace!r}, without the prefix. Errors are "
                '{"error": {"code", "message"}}.'
            ),
        },
        "paths": paths,
        "components": {"schemas": _models.component_schemas(*_models_of(operations))},
    }
    if auth:
        result["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}
        }
        result["security"] = [{"bearer": []}]
    return result
