"""Fuzz every route of ``/openapi.json`` with schemathesis: no input gets a 5xx.

The server is one of its own (the fuzzer creates requests, and cancels, replays
and deletes what it finds). Data that fits the schema and data that does not
(negative mode) are both sent, and a third pass aims every request route at a
real request; a few hundred calls each. Every answer must be below 500 and
conform to the document (status code, content type, body schema).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks

from tests.server.support import Server, invoke, sse_events

# Data that fits the schema may still be refused with a 400: an opaque cursor or an
# application's arguments cannot be described so that every valid value is accepted.
EXCLUDED = [checks.positive_data_acceptance]
PASSES = {
    "positive": (GenerationMode.POSITIVE, 300),
    "negative": (GenerationMode.NEGATIVE, 200),
    "real-request": (GenerationMode.POSITIVE, 200),
}


@pytest.mark.parametrize("name", list(PASSES))
def test_no_input_gets_a_server_error(
    start_server: Callable[..., Server], name: str
) -> None:
    mode, examples = PASSES[name]
    server = start_server(concurrency=2)
    fixed: dict[str, Any] = {}
    if name == "real-request":
        with server.client() as http:
            request_id = invoke(http, "srv_greet", "fuzz")
            sse_events(http, f"/applications/srv_greet/requests/{request_id}/progress")
        fixed = {"application": "srv_greet", "request_id": request_id}
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    statuses: Counter[int] = Counter()
    operations: set[str] = set()

    @given(case=schema.as_strategy(generation_mode=mode, path_parameters=fixed))
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: schemathesis.Case) -> None:
        response = case.call(timeout=30)
        statuses[response.status_code] += 1
        operations.add(case.operation.label)
        assert response.status_code < 500, (case.as_curl_command(), response.text)
        case.validate_response(response, excluded_checks=EXCLUDED)

    call()
    print(f"{name}: {sum(statuses.values())} calls, statuses {dict(statuses)}")
    assert sum(statuses.values()) >= examples // 2
    assert not [status for status in statuses if status >= 500]
    assert len(operations) >= 20  # most routes were reached
    assert server.process.poll() is None
    assert "Traceback" not in server.logs()
