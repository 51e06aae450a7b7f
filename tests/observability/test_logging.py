"""Logs go through ``logging``; every record made inside a call carries the call's
request id, call id, function and attempt, the user's records included."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from cairn import Logger, Retries, application, function, observability

CAIRN = str(Path(sys.executable).parent / "cairn")


@pytest.fixture
def json_log(tmp_path: Path) -> Iterator[Path]:
    """The root logger writes JSON lines to a file (executors fork with it)."""
    path = tmp_path / "log.jsonl"
    handler = logging.FileHandler(path)
    handler.setFormatter(observability.JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield path
    root.removeHandler(handler)
    root.setLevel(level)
    handler.close()


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_user_records_inside_a_call_carry_its_context(run, json_log, effects):
    user = logging.getLogger("shop.payments")

    @function(retries=Retries(max_retries=1, initial_delay=0.01))
    def charge(amount: int) -> int:
        user.info("charging %d", amount, extra={"request_id": "mine"})
        if not effects.lines():
            effects.record("failed once")
            raise ValueError("card declined")
        return amount

    @application()
    @function()
    def checkout(amount: int) -> int:
        user.warning("checkout starts")
        return charge(amount)

    request = run(checkout, 7)
    assert request.output() == 7
    lines = [line for line in _lines(json_log) if line["logger"] == "shop.payments"]
    starts = [line for line in lines if line["message"] == "checkout starts"]
    charges = [line for line in lines if line["message"] == "charging 7"]
    assert [s["request_id"] for s in starts] == [request.id]
    assert starts[0]["function"].endswith(".checkout")
    assert starts[0]["call_id"] == request.id
    assert starts[0]["attempt"] == 1
    assert [c["attempt"] for c in charges] == [1, 2]
    assert {c["function"].rsplit(".", 1)[-1] for c in charges} == {"charge"}
    assert {c["request_id"] for c in charges} == {request.id}
    call_ids = {c["call_id"] for c in charges}
    assert len(call_ids) == 1 and call_ids != {request.id}
    # The user's own extra key does not clash with the context Cairn attaches.
    assert charges[0]["level"] == "info"


def test_records_outside_a_call_have_no_context(json_log):
    logging.getLogger("outside").warning("plain")
    (line,) = [x for x in _lines(json_log) if x["logger"] == "outside"]
    assert "request_id" not in line and line["message"] == "plain"


def test_logger_goes_through_logging_with_its_fields(run, json_log):
    @application()
    @function()
    def logged(n: int) -> int:
        Logger.get_logger(module="billing").bind(n=n).info("counted", extra_field=1)
        return n

    request = run(logged, 3)
    assert request.output() == 3
    (line,) = [x for x in _lines(json_log) if x["logger"] == "cairn.app"]
    assert line["message"] == "counted"
    assert line["module"] == "billing" and line["n"] == 3
    assert line["extra_field"] == 1
    assert line["request_id"] == request.id and line["function"].endswith(".logged")


def test_logger_prints_json_to_stdout_when_logging_is_not_configured(
    capsys, monkeypatch
):
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # pytest's capture
    assert not logging.getLogger("cairn.app").hasHandlers()
    Logger.get_logger(job="nightly").warning("disk low", free_gb=3)
    line = json.loads(capsys.readouterr().out)
    assert line["level"] == "warning" and line["message"] == "disk low"
    assert line["job"] == "nightly" and line["free_gb"] == 3


APP = """
import logging
from cairn import application, function

log = logging.getLogger("cli_user")

@function()
def cli_step(x: int) -> int:
    log.info("step %d", x)
    return x + 1

@application()
@function()
def cli_logged(x: int) -> int:
    return cli_step(x)
"""


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_cli_log_format(tmp_path, log_format):
    (tmp_path / "cli_logs.py").write_text(textwrap.dedent(APP))
    done = subprocess.run(
        [
            CAIRN,
            "--log-level",
            "info",
            "--log-format",
            log_format,
            "run",
            "cli_logs.py:cli_logged",
            "--input",
            "[1]",
            "--store",
            f"sqlite:///{tmp_path}/s.db",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    step_lines = [x for x in done.stderr.splitlines() if "step 1" in x]
    assert len(step_lines) == 1, done.stderr
    if log_format == "json":
        line = json.loads(step_lines[0])
        assert line["function"] == "cli_step" and line["attempt"] == 1
        assert line["request_id"] in done.stdout
    else:
        assert "function=cli_step" in step_lines[0]
        assert "attempt=1" in step_lines[0]


def test_cli_refuses_an_unknown_log_format(tmp_path):
    done = subprocess.run(
        [CAIRN, "--log-format", "xml", "requests", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "--log-format" in done.stderr


def test_serve_logs_every_line_in_the_chosen_format(tmp_path):
    from tests.server.support import launch

    apps = Path(__file__).with_name("metered_app.py")
    server = launch(
        tmp_path / "srv", apps=apps, CAIRN_LOG_FORMAT="json", CAIRN_LOG_LEVEL="info"
    )
    try:
        with server.client() as http:
            assert http.get("/healthz").status_code == 200
    finally:
        server.stop()
    records = [
        json.loads(line) for line in server.logs().splitlines() if line.startswith("{")
    ]
    loggers = {record["logger"] for record in records}
    assert {"uvicorn.error", "uvicorn.access", "cairn.worker._engine"} <= loggers
    # Nothing but the CLI's own "cairn serve:" lines is left in another format.
    others = [
        line
        for line in server.logs().splitlines()
        if line and not line.startswith(("{", "cairn serve:"))
    ]
    assert others == []
