"""The error classes Tensorlake raises, where it raises them: SerializationError at
the call for what cannot be a value, ``str(RequestFailed)`` as the outcome code with
the details kept, and the failing call's traceback on stderr in a local run."""

from __future__ import annotations

import traceback

import pytest

import cairn
from cairn import application, function
from cairn.store._requests import RequestOps


def test_what_cannot_be_a_value_is_a_serialization_error_the_caller_catches(run):
    @function()
    def double(x: int) -> int:
        return 2 * x

    @function()
    def describe(value: object) -> str:
        return type(value).__name__

    @function()
    def pending_doubles() -> list[cairn.Future]:
        return [double.future(1), double.future(2)]

    @application()
    @function()
    def value_errors_app() -> list[str]:
        caught = []
        for value in (double, [double.future(1), double.future(2)]):
            try:
                describe(value)
            except cairn.SerializationError as error:
                caught.append(f"passed: {error}")
        try:
            pending_doubles()
        except cairn.FunctionError as error:
            caught.append(f"returned: {error.error_type}")
        return caught

    passed_function, passed_futures, returned = run(value_errors_app).output()
    assert passed_function.startswith("passed: ")
    assert "double" in passed_function and "argument 0 of" in passed_function
    assert passed_futures.startswith("passed: ") and "Future" in passed_futures
    assert returned == "returned: SerializationError"


def test_request_failed_is_the_outcome_code_with_the_details_kept(run):
    @function()
    def parse_row(row: str) -> int:
        return int(row)

    @application()
    @function()
    def parse_rows_app(rows: list[str]) -> int:
        return sum(parse_row(row) for row in rows)

    request = run(parse_rows_app, ["1", "two"])
    with pytest.raises(cairn.RequestFailed) as failure:
        request.output()
    error = failure.value
    assert str(error) == "function_error"
    assert error.function_name == parse_rows_app.name
    assert error.error_type == "FunctionError"
    assert "invalid literal for int()" in error.error_message
    assert "int(row)" in error.traceback
    # A traceback of the uncaught exception still says what failed.
    shown = "".join(traceback.format_exception(error))
    assert "RequestFailed: function_error\n" in shown
    assert "invalid literal for int()" in shown


def test_a_local_run_prints_each_failed_call_to_stderr(run, capsys):
    @function()
    def check_amount(amount: int, currency: str = "EUR") -> int:
        raise ValueError(f"amount {amount} {currency} over the limit")

    @application()
    @function()
    def payment_app(amount: int) -> str:
        try:
            check_amount(amount, currency="USD")
        except cairn.FunctionError:
            return "declined"
        return "accepted"

    assert run(payment_app, 900).output() == "declined"
    err = capsys.readouterr().err
    assert (
        f"FunctionError: Tensorlake Function Call Future {check_amount.name}(\n"
        "  900,\n"
        "  currency='USD',\n"
        ") failed due to exception: \n"
        "Traceback (most recent call last):\n"
    ) in err
    assert 'raise ValueError(f"amount {amount} {currency} over the limit")' in err
    assert "ValueError: amount 900 USD over the limit" in err
    assert f"Future {payment_app.name}(" not in err  # it caught the failure


def test_a_failed_application_call_is_printed_with_its_json_input(run, capsys):
    @application()
    @function()
    def refuses(word: str) -> str:
        raise RuntimeError(f"no {word}")

    run(refuses, "magic")
    err = capsys.readouterr().err
    assert f"Future {refuses.name}(\n  'magic',\n) failed due to exception: \n" in err
    assert "RuntimeError: no magic" in err


def test_a_local_run_where_no_attempt_failed_reads_no_failed_calls(run, monkeypatch):
    # Its request's record says so: the end of a clean run costs no query more.
    def unread(self: object, request_id: str) -> list[object]:
        raise AssertionError(f"failed calls of {request_id} were read")

    @function()
    def double(x: int) -> int:
        return 2 * x

    @application()
    @function()
    def clean_app(x: int) -> int:
        return double(x)

    monkeypatch.setattr(RequestOps, "failed_calls", unread)
    assert run(clean_app, 21).output() == 42
