"""Spans leave Cairn's processes through the exporter the application set up
(OTLP/HTTP here), nested across executor processes, continuing the caller's
trace: the span around run_local_application, or an invoke's traceparent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.observability.otlp_receiver import Receiver
from tests.server.support import launch

APP = Path(__file__).with_name("traced_app.py")


def _check_tree(
    spans, trace_id: str, request_id: str, items: int, *, spread: bool = False
) -> None:
    mine = [s for s in spans if s.attributes.get("cairn.request_id") == request_id]
    assert {s.trace_id for s in mine} == {trace_id}
    by_id = {s.span_id: s for s in spans}
    (request,) = [s for s in mine if s.name == "request traced_pipeline"]
    (app_call,) = [s for s in mine if s.name == "call traced_pipeline"]
    assert app_call.parent_span_id == request.span_id
    items_calls = [s for s in mine if s.name == "call traced_square"]
    assert len(items_calls) == items
    assert {s.parent_span_id for s in items_calls} == {app_call.span_id}
    (total,) = [s for s in mine if s.name == "call traced_total"]
    (app_attempt,) = [s for s in mine if s.name == "attempt traced_pipeline"]
    assert total.parent_span_id == app_attempt.span_id
    for attempt in (s for s in mine if s.name.startswith("attempt ")):
        parent = by_id[attempt.parent_span_id]
        assert parent.name == "call " + attempt.name.removeprefix("attempt ")
        assert attempt.attributes["cairn.attempt"] == 1
        assert attempt.attributes["cairn.outcome"] == "succeeded"
    if not spread:
        return
    # The items ran in executor processes other than the application call's.
    item_attempts = [s for s in mine if s.name == "attempt traced_square"]
    pids = {s.attributes["pid"] for s in item_attempts}
    assert pids - {app_attempt.attributes["pid"]}


def test_run_local_application_inside_a_span_continues_its_trace(
    tmp_path, receiver: Receiver
):
    done = subprocess.run(
        [sys.executable, str(APP), "4", f"sqlite:///{tmp_path}/t.db"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OTLP_URL": receiver.url, "CAIRN_CONCURRENCY": "3"},
    )
    assert done.returncode == 0, done.stderr
    request_id, output = done.stdout.split()
    assert output == "14"

    def complete(spans) -> bool:
        names = [s.name for s in spans]
        return "caller work" in names and names.count("attempt traced_square") == 4

    spans = receiver.wait_for(complete)
    (caller,) = [s for s in spans if s.name == "caller work"]
    (request,) = [s for s in spans if s.name == "request traced_pipeline"]
    assert request.parent_span_id == caller.span_id
    assert request.attributes["cairn.outcome"] == "succeeded"
    assert request.attributes["cairn.run"] == 1
    _check_tree(spans, caller.trace_id, request_id, 4, spread=True)


def test_an_attempt_the_supervisor_stopped_is_a_span_too(tmp_path, receiver):
    done = subprocess.run(
        [sys.executable, str(APP), "3", f"sqlite:///{tmp_path}/t.db", "stuck"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OTLP_URL": receiver.url, "CAIRN_CONCURRENCY": "2"},
    )
    assert done.returncode == 0, done.stderr
    request_id, output = done.stdout.split(maxsplit=1)
    assert output.strip() == "gave up"

    def complete(spans) -> bool:
        return "request traced_patient" in [s.name for s in spans]

    spans = receiver.wait_for(complete)
    mine = [s for s in spans if s.attributes.get("cairn.request_id") == request_id]
    by_name = {s.name: s for s in mine if s.name != "attempt traced_patient"}
    stuck = by_name["attempt traced_stuck"]
    assert stuck.attributes["cairn.outcome"] == "timed_out"
    call = by_name["call traced_stuck"]
    assert call.attributes["cairn.outcome"] == "failed"
    assert stuck.parent_span_id == call.span_id
    # The application's first attempt was stopped with it (interrupted), and its
    # second caught the FunctionTimeout.
    app_attempts = sorted(
        (s.attributes["cairn.attempt"], s.attributes["cairn.outcome"])
        for s in mine
        if s.name == "attempt traced_patient"
    )
    assert app_attempts == [(1, "interrupted"), (2, "succeeded")]
    assert by_name["request traced_patient"].attributes["cairn.outcome"] == "succeeded"


def test_an_invoke_traceparent_continues_the_callers_trace(tmp_path, receiver):
    server = launch(tmp_path / "srv", apps=APP, concurrency=3, OTLP_URL=receiver.url)
    try:
        with server.client() as http:
            trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
            header = f"00-{trace_id}-00f067aa0ba902b7-01"
            answer = http.post(
                "/applications/traced_pipeline",
                json=3,
                headers={"traceparent": header, "Accept": "application/json"},
            )
            assert answer.status_code == 200, answer.text
            request_id = answer.json()["request_id"]
            for bad in ("00-zz-00f067aa0ba902b7-01", "x" * 600):
                refused = http.post(
                    "/applications/traced_pipeline",
                    json=2,
                    headers={"traceparent": bad, "Accept": "application/json"},
                )
                assert refused.status_code == 200, refused.text  # ignored, per spec
            bad_id = refused.json()["request_id"]

        def complete(spans) -> bool:
            return [s.name for s in spans].count("request traced_pipeline") == 3

        spans = receiver.wait_for(complete)
        (request,) = [
            s
            for s in spans
            if s.name == "request traced_pipeline"
            and s.attributes["cairn.request_id"] == request_id
        ]
        assert request.parent_span_id == "00f067aa0ba902b7"
        _check_tree(spans, trace_id, request_id, 3)
        (fresh,) = [
            s
            for s in spans
            if s.name == "request traced_pipeline"
            and s.attributes["cairn.request_id"] == bad_id
        ]
        assert fresh.trace_id != trace_id and fresh.parent_span_id == ""
    finally:
        server.stop()
