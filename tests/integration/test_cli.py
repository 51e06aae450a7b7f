"""The ``cairn`` command, run as a real subprocess against app files written here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from cairn.store import SCHEMA_VERSION, CallKey, NewRequest, open_store

CAIRN = str(Path(sys.executable).parent / "cairn")

APP = """
from __future__ import annotations

import time
from pathlib import Path

from cairn import RequestContext, Retries, application, function

EFFECTS = Path(__file__).with_name("effects.log")


def record(line: str) -> None:
    with open(EFFECTS, "a") as handle:
        handle.write(line + "\\n")


@function()
def cli_prepare(n: int) -> int:
    record("prepare")
    return n + 1


@function(retries=Retries(max_retries=1, initial_delay=0.01, max_delay=0.01))
def cli_publish(x: int) -> int:
    record("publish")
    {PUBLISH}


@function()
def cli_double(x: int) -> int:
    record(f"double {{x}}")
    return 2 * x


@application()
@function()
def cli_pipeline(n: int) -> dict:
    ctx = RequestContext.get()
    ctx.progress.update(0, 2, "preparing")
    prepared = cli_prepare(n)
    ctx.progress.update(1, 2, "publishing")
    return {{"published": cli_publish(prepared)}}


@application()
@function()
def cli_greet(name: str, punctuation: str = "!") -> str:
    return f"hello {{name}}{{punctuation}}"


@application()
@function()
def cli_fanout(n: int) -> list[int]:
    return cli_double.map(list(range(n)))


@function()
def cli_nap(seconds: float) -> str:
    if Path(__file__).with_name("slow").exists():
        time.sleep(seconds)
    record("napped")
    return "rested"


@application()
@function()
def cli_sleeper(seconds: float) -> str:
    return cli_nap(seconds)
"""
BROKEN = 'raise ValueError(f"cannot publish {x}")'
FIXED = "return x * 10"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def cairn(*args: str, store: str | None = None, cwd: Path | None = None) -> Result:
    command = [CAIRN, *args]
    if store is not None:
        command += ["--store", store]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=cwd)
    return Result(done.returncode, done.stdout, done.stderr)


def write_app(folder: Path, publish: str) -> Path:
    path = folder / "cli_app.py"
    path.write_text(textwrap.dedent(APP.format(PUBLISH=publish)))
    return path


def request_id_of(result: Result) -> str:
    match = re.search(r"^request\s+(\S+)$", result.stdout, re.MULTILINE)
    assert match, result.stdout + result.stderr
    return match.group(1)


def effects(folder: Path) -> list[str]:
    path = folder / "effects.log"
    return path.read_text().splitlines() if path.exists() else []


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.code != 0, result
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_run_prints_the_output_as_json(tmp_path, store_url):
    write_app(tmp_path, FIXED)
    result = cairn("run", "cli_app.py:cli_pipeline", "--input", "4", store=store_url)
    assert result.code == 0, result
    assert "success" in result.stdout
    assert '"published": 50' in result.stdout
    assert "Traceback" not in result.stderr
    request_id = request_id_of(result)
    listed = cairn("requests", "list", store=store_url)
    assert request_id in listed.stdout
    assert "succeeded" in listed.stdout


def test_run_input_forms_and_module_target(tmp_path, store_url):
    write_app(tmp_path, FIXED)
    by_name = cairn(
        "run", "cli_app.py:cli_greet", "--input", '{"name": "ann"}', store=store_url
    )
    assert by_name.code == 0, by_name
    assert '"hello ann!"' in by_name.stdout
    positional = cairn(
        "run", "cli_app.py:cli_greet", "--input", '["bo", "?"]', store=store_url
    )
    assert '"hello bo?"' in positional.stdout
    single = cairn("run", "cli_app:cli_greet", "--input", '"cy"', store=store_url)
    assert single.code == 0, single
    assert '"hello cy!"' in single.stdout


def test_run_reads_the_store_and_input_from_the_environment(tmp_path, monkeypatch):
    write_app(tmp_path, FIXED)
    monkeypatch.setenv("CAIRN_STORE", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.setenv("CAIRN_RUN_INPUT", '{"name": "env"}')
    result = cairn("run", "cli_app.py:cli_greet")
    assert result.code == 0, result
    assert '"hello env!"' in result.stdout
    assert (tmp_path / "env.db").exists()
    help_text = cairn("run", "--help").stdout
    assert "CAIRN_STORE" in help_text
    assert "CAIRN_RUN_INPUT" in help_text


def test_failed_run_then_show_then_replay_after_the_fix(tmp_path, store_url):
    write_app(tmp_path, BROKEN)
    failed = cairn("run", "cli_app.py:cli_pipeline", "--input", "4", store=store_url)
    assert failed.code == 1, failed
    assert "failure: function_error" in failed.stdout
    assert "cannot publish 5" in failed.stdout
    assert "Traceback" not in failed.stdout + failed.stderr
    request_id = request_id_of(failed)
    assert effects(tmp_path) == ["prepare", "publish", "publish"]

    listed = cairn("requests", "list", "--status", "failed", store=store_url)
    assert listed.code == 0, listed
    row = next(line for line in listed.stdout.splitlines() if request_id in line)
    assert "cli_pipeline" in row
    assert "failed" in row
    assert "function_error" in row
    assert (
        "no requests"
        in cairn("requests", "list", "--app", "cli_greet", store=store_url).stdout
    )

    shown = cairn("requests", "show", request_id, store=store_url)
    assert shown.code == 0, shown
    out = shown.stdout
    assert "failure: function_error" in out
    assert re.search(r"cli_prepare .*succeeded +1 attempt .*ran", out), out
    assert re.search(
        r"cli_publish .*failed +2 attempts \[#1 failure .*ValueError; "
        r"#2 failure .*ValueError\]",
        out,
    ), out
    assert "ValueError: cannot publish 5" in out
    assert "ran 3 calls, served 0 from checkpoints in run 1" in out
    # The tree puts children under their parent.
    assert out.index("cli_pipeline  ") < out.index("cli_prepare")

    write_app(tmp_path, FIXED)
    replayed = cairn("requests", "replay", request_id, store=store_url)
    assert replayed.code == 0, replayed
    assert "success" in replayed.stdout
    assert '"published": 50' in replayed.stdout
    assert "ran 2 calls, served 1 from checkpoints in run 2" in replayed.stdout
    # Only the failed step ran again; the checkpointed one was served.
    assert effects(tmp_path) == ["prepare", "publish", "publish", "publish"]

    shown = cairn("requests", "show", request_id, store=store_url).stdout
    assert re.search(r"cli_prepare .*checkpoint", shown), shown
    assert re.search(r"cli_publish .*3 attempts.*\(run 2\).*ran", shown), shown
    assert "ran 2 calls, served 1 from checkpoints in run 2" in shown


def test_replay_from_call_runs_that_call_again(tmp_path, store_url):
    write_app(tmp_path, FIXED)
    first = cairn("run", "cli_app.py:cli_pipeline", "--input", "1", store=store_url)
    request_id = request_id_of(first)
    shown = cairn("requests", "show", request_id, store=store_url).stdout
    match = re.search(r"cli_prepare\s+([0-9a-f]{12})", shown)
    assert match, shown
    replayed = cairn(
        "requests", "replay", request_id, "--from-call", match.group(1), store=store_url
    )
    assert replayed.code == 0, replayed
    assert "ran 3 calls, served 0 from checkpoints in run 2" in replayed.stdout
    assert effects(tmp_path) == ["prepare", "publish", "prepare", "publish"]
    plain = cairn("requests", "replay", request_id, "--strict", store=store_url)
    assert plain.code == 0, plain
    assert "ran 1 calls, served 2 from checkpoints in run 3" in plain.stdout
    unknown = cairn(
        "requests", "replay", request_id, "--from-call", "zzzz", store=store_url
    )
    assert_one_line_error(unknown, "--from-call", "zzzz")
    assert unknown.code == 2


def test_replay_with_app_option_when_the_code_moved(tmp_path, store_url):
    write_app(tmp_path, BROKEN)
    failed = cairn("run", "cli_app.py:cli_pipeline", "--input", "2", store=store_url)
    request_id = request_id_of(failed)
    moved = tmp_path / "moved"
    moved.mkdir()
    write_app(moved, FIXED)
    (tmp_path / "cli_app.py").unlink()
    lost = cairn("requests", "replay", request_id, store=store_url)
    assert_one_line_error(lost, "cli_app.py", "--app")
    replayed = cairn(
        "requests",
        "replay",
        request_id,
        "--app",
        str(moved / "cli_app.py"),
        store=store_url,
    )
    assert replayed.code == 0, replayed
    assert '"published": 30' in replayed.stdout


def test_show_collapses_large_maps(tmp_path, store_url):
    write_app(tmp_path, FIXED)
    result = cairn("run", "cli_app.py:cli_fanout", "--input", "25", store=store_url)
    assert result.code == 0, result
    assert json.loads(result.stdout.split("output", 1)[1]) == [2 * i for i in range(25)]
    shown = cairn("requests", "show", request_id_of(result), store=store_url).stdout
    assert "cli_double.map 25 items: 25 succeeded" in shown
    assert "cli_double[" not in shown
    small = cairn("run", "cli_app.py:cli_fanout", "--input", "3", store=store_url)
    shown = cairn("requests", "show", request_id_of(small), store=store_url).stdout
    assert "cli_double.map 3 items" in shown
    assert "cli_double[2]" in shown


def test_cancel(tmp_path, store_url):
    opened = open_store(store_url)
    try:
        opened.create_request(
            NewRequest(
                id="cli-pending",
                application="cli_pipeline",
                code_ref=None,
                input=b'{"args": [1], "kwargs": {}}',
                headers={},
                created_at_ms=1.0,
            ),
            CallKey(
                id="cli-pending",
                request_id="cli-pending",
                parent_id=None,
                seq=0,
                function="cli_pipeline",
                kind="app",
                group_id="cli-pending",
                dispatched=True,
            ),
            b'{"args": [1], "kwargs": {}}',
        )
    finally:
        opened.close()
    result = cairn("requests", "cancel", "cli-pending", store=store_url)
    assert result.code == 0, result
    assert "cancelled request cli-pending" in result.stdout
    listed = cairn("requests", "list", "--status", "cancelled", store=store_url)
    assert "cli-pending" in listed.stdout
    again = cairn("requests", "cancel", "cli-pending", store=store_url)
    assert "already finished" in again.stdout


def test_db_migrate_and_status(tmp_path, store_url):
    created = cairn("db", "migrate", store=store_url)
    assert created.code == 0, created
    assert "created store" in created.stdout
    again = cairn("db", "migrate", store=store_url)
    assert "up to date" in again.stdout
    write_app(tmp_path, FIXED)
    cairn("run", "cli_app.py:cli_greet", "--input", '"x"', store=store_url)
    status = cairn("db", "status", store=store_url)
    assert status.code == 0, status
    assert store_url in status.stdout
    assert re.search(rf"schema version\s+{SCHEMA_VERSION}", status.stdout)
    assert re.search(r"requests\s+1 \(1 succeeded\)", status.stdout)
    # --store may also come before the command.
    root = cairn("--store", store_url, "db", "status")
    assert re.search(r"requests\s+1 ", root.stdout), root


def test_db_migrate_says_it_upgraded_an_older_store(tmp_path):
    from tests.contract.test_sqlite_files import write_schema_1_store

    path = tmp_path / "old.db"
    write_schema_1_store(path)
    migrated = cairn("db", "migrate", store=f"sqlite:///{path}")
    assert migrated.code == 0, migrated
    assert f"from schema version 1 to {SCHEMA_VERSION}" in migrated.stdout
    again = cairn("db", "migrate", store=f"sqlite:///{path}")
    assert "up to date" in again.stdout


@pytest.mark.parametrize(
    ("args", "code", "fragments"),
    [
        (["run", "--bogus", "cli_app.py:cli_greet"], 2, ["--bogus"]),
        (["requests", "list", "--limit", "zero"], 2, ["--limit"]),
        (["run", "cli_app.py:cli_greet", "--input", "{bad"], 2, ["--input", "JSON"]),
        (["run", "cli_app.py:cli_greet", "--input", '{"nam": 1}'], 2, ["'nam'"]),
        (["run", "cli_app.py:cli_pipeline", "--input", '"four"'], 2, ["--input"]),
        (["run", "cli_app.py:cli_greet"], 2, ["missing", "'name'"]),
        (["requests", "show", "nope"], 1, ["no request with id 'nope'"]),
        (["requests", "replay", "nope"], 1, ["no request with id 'nope'"]),
        (["requests", "cancel", "nope"], 1, ["no request with id 'nope'"]),
        (["run", "missing.py:cli_greet"], 2, ["missing.py"]),
        (["run", "no_such_module:cli_greet"], 2, ["no_such_module"]),
        (["run", "cli_app.py:cli_nope"], 2, ["cli_nope", "cli_greet"]),
        (["run", "cli_app.py:cli_double"], 2, ["not an application"]),
        (["run", "cli_app.py"], 2, ["cli_greet", "cli_pipeline"]),
        (["run", "broken.py:cli_x"], 1, ["ZeroDivisionError", "broken.py"]),
    ],
)
def test_errors_are_one_line(tmp_path, store_url, args, code, fragments):
    write_app(tmp_path, FIXED)
    (tmp_path / "broken.py").write_text("x = 1 / 0\n")
    result = cairn(*args, store=store_url)
    assert_one_line_error(result, *fragments)
    assert result.code == code


@pytest.mark.parametrize(
    "url", ["foo://x", "sqlite://host/x.db", "sqlite:///s.db?bogus=1", "notes.txt"]
)
def test_bad_store_url_is_one_line(tmp_path, url):
    result = cairn("requests", "list", store=url)
    assert_one_line_error(result, "store")
    assert result.code == 1


def test_a_file_that_is_not_a_store_is_one_line(tmp_path):
    (tmp_path / "other.db").write_text("not a database")
    result = cairn("db", "status", store=f"sqlite:///{tmp_path / 'other.db'}")
    assert_one_line_error(result, "not a usable SQLite database")


def test_a_cancelled_request_does_not_run_again(tmp_path, store_url):
    write_app(tmp_path, FIXED)
    (tmp_path / "slow").touch()
    command = [CAIRN, "run", "cli_app.py:cli_sleeper", "--input", "5"]
    with subprocess.Popen(
        [*command, "--store", store_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as running:
        try:
            deadline = time.monotonic() + 30
            rows: list[str] = []
            while not rows:
                assert time.monotonic() < deadline, "the request never started"
                time.sleep(0.1)
                listed = cairn(
                    "requests", "list", "--status", "running", store=store_url
                ).stdout
                rows = [line for line in listed.splitlines() if "cli_sleeper" in line]
            request_id = rows[0].split()[0]
            cancelled = cairn("requests", "cancel", request_id, store=store_url)
            assert "cancelled request" in cancelled.stdout, cancelled
            out, _ = running.communicate(timeout=30)
        finally:
            if running.poll() is None:
                running.kill()
    assert "failure: cancelled" in out
    (tmp_path / "slow").unlink()
    # Another run on the same store must not pick up the cancelled request's calls.
    other = cairn("run", "cli_app.py:cli_greet", "--input", '"x"', store=store_url)
    assert other.code == 0, other
    assert effects(tmp_path) == []
    shown = cairn("requests", "show", request_id, store=store_url).stdout
    assert "succeeded" not in shown


def test_replay_reports_map_items_as_served(tmp_path, store_url):
    write_app(tmp_path, FIXED)
    result = cairn("run", "cli_app.py:cli_fanout", "--input", "3", store=store_url)
    replayed = cairn("requests", "replay", request_id_of(result), store=store_url)
    assert replayed.code == 0, replayed
    assert sorted(effects(tmp_path)) == ["double 0", "double 1", "double 2"]
    assert "ran 1 calls, served 3 from checkpoints in run 2" in replayed.stdout
