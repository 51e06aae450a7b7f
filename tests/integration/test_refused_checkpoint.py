"""A checkpoint the store refuses for good (a value too large for it, say) fails its
call once, with an error its caller can catch, instead of stopping the executor,
which handed the call back to run again, and again, without end; a failure record
it refuses is recorded cut down, for the same reason.

The refusal is a trigger on the calls and attempts tables that rejects outputs and
error records over 10 kB, as a database rejects a value over its limit (1 GB on
both): with the same kind of error (PostgreSQL's program_limit_exceeded, SQLite's
ABORT)."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from cairn import application, function
from cairn.errors import RequestFailed
from cairn.store import open_store
from cairn.types import CallStatus

_LIMIT_BYTES = 10_000

_TOO_LARGE = {
    "calls": f"length(NEW.output) > {_LIMIT_BYTES} OR length(NEW.error_json) > {_LIMIT_BYTES}",
    "attempts": f"length(NEW.error_json) > {_LIMIT_BYTES}",
}
_SQLITE = [
    f"""CREATE TRIGGER refuse_large_{table}_{when} BEFORE {when} ON {table}
    WHEN {too_large}
    BEGIN SELECT RAISE(ABORT, 'value too large'); END"""
    for table, too_large in _TOO_LARGE.items()
    for when in ("insert", "update")
]
_POSTGRES = [
    statement
    for table, too_large in _TOO_LARGE.items()
    for statement in (
        f"""CREATE FUNCTION refuse_large_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF {too_large.replace("length(NEW.output)", "octet_length(NEW.output)")} THEN
                RAISE EXCEPTION 'value too large' USING ERRCODE = 'program_limit_exceeded';
            END IF;
            RETURN NEW;
        END $$""",
        f"""CREATE TRIGGER refuse_large_{table} BEFORE INSERT OR UPDATE ON {table}
        FOR EACH ROW EXECUTE FUNCTION refuse_large_{table}()""",
    )
]


@pytest.fixture
def refusing(store_url: str) -> str:
    """The test's store, refusing call outputs and error records over 10 kB."""
    open_store(store_url).close()  # its schema
    if store_url.startswith("sqlite:///"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
            for statement in _SQLITE:
                conn.execute(statement)
    else:
        with psycopg.connect(store_url, autocommit=True) as conn:
            for statement in _POSTGRES:
                conn.execute(statement)
    return store_url


def test_a_refused_output_fails_its_call_once_and_its_caller_can_catch_it(
    refusing, run, effects
):
    @function()
    def refused_large_output() -> str:
        effects.record("large")
        return "x" * 2 * _LIMIT_BYTES

    @function()
    def refused_small_output() -> str:
        effects.record("small")
        return "fits"

    @application()
    @function()
    def refused_catching_parent() -> str:
        try:
            refused_large_output()
        except Exception as error:
            return f"caught {type(error).__name__}: {error}; {refused_small_output()}"
        return "stored"

    request = run(refused_catching_parent)
    output = request.output()
    assert output.startswith("caught"), output
    assert output.endswith("; fits")
    assert effects.count("large") == 1  # not run again: it would end the same way
    call = next(
        c for c in request.calls() if c.function.endswith("refused_large_output")
    )
    assert call.status is CallStatus.FAILED
    error = call.attempts[-1].error
    assert error["type"] == "SerializationError"
    assert "the store refused the checkpoint of " in error["message"]
    assert "refused_large_output(): " in error["message"]
    assert "value too large" in error["message"]


def test_a_refused_application_output_fails_the_request_once(refusing, run, effects):
    @application()
    @function()
    def refused_app_output() -> str:
        effects.record("app")
        return "y" * 2 * _LIMIT_BYTES

    request = run(refused_app_output)
    with pytest.raises(RequestFailed):
        request.output()
    assert effects.count("app") == 1


def test_a_refused_map_item_fails_alone(refusing, run, effects):
    @function()
    def refused_map_item(size: int) -> str:
        effects.record(f"item {size}")
        return "z" * size

    @application()
    @function()
    def refused_mapping() -> list[int]:
        sizes = [1, 2 * _LIMIT_BYTES, 3]
        try:
            return [len(s) for s in refused_map_item.map(sizes)]
        except Exception:
            return []

    request = run(refused_mapping)
    assert request.output() == []
    assert sorted(effects.lines()) == ["item 1", "item 20000", "item 3"]
    statuses = {
        c.status for c in request.calls() if c.function.endswith("refused_map_item")
    }
    assert statuses == {CallStatus.SUCCEEDED, CallStatus.FAILED}


def test_an_output_over_the_value_limit_fails_its_call_once(
    store_url, run, effects, monkeypatch
):
    """A value no store would take (over 1 GB, or CAIRN_MAX_VALUE_BYTES) fails
    where it is made, before any commit."""
    monkeypatch.setenv("CAIRN_MAX_VALUE_BYTES", str(_LIMIT_BYTES))

    @function(retries=3)
    def over_the_limit() -> str:
        effects.record("made")
        return "x" * 2 * _LIMIT_BYTES

    @application()
    @function()
    def over_the_limit_parent() -> str:
        try:
            over_the_limit()
        except Exception as error:
            return str(error)
        return "stored"

    assert "takes" in run(over_the_limit_parent).output()
    assert effects.count("made") == 1  # not retried: it would be as large again


def test_a_refused_failure_record_is_recorded_cut_and_ends_the_call(
    refusing, run, effects
):
    @function(retries=1)
    def fails_at_length() -> str:
        effects.record("ran")
        raise ValueError("e" * 2 * _LIMIT_BYTES)

    @application()
    @function()
    def catches_long_failures() -> str:
        try:
            fails_at_length()
        except Exception as error:
            return f"caught {type(error).__name__}"
        return "no failure"

    request = run(catches_long_failures)
    assert request.output() == "caught FunctionError"
    assert effects.count("ran") == 2  # its retry, and no more
    call = next(c for c in request.calls() if c.function.endswith("fails_at_length"))
    assert call.status is CallStatus.FAILED
    for attempt in call.attempts:
        assert attempt.error["type"] == "ValueError"
        assert attempt.error["message"].startswith("e" * 1000 + " [cut: the store")
        assert "value too large" in attempt.error["message"]
        assert attempt.error["traceback"] is None


def test_a_huge_error_message_is_recorded_bounded(store_url, run):
    @application()
    @function()
    def fails_with_a_body() -> str:
        raise RuntimeError("<html>" + "b" * 1_000_000 + "</html>")

    request = run(fails_with_a_body)
    with pytest.raises(RequestFailed):
        request.output()
    (call,) = request.calls()
    message = call.attempts[-1].error["message"]
    assert message.startswith("<html>bbb") and message.endswith("bbb</html>")
    assert "characters cut ...]" in message
    assert len(message) < 70_000
