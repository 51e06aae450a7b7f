"""A RequestError fails its request, as Tensorlake records a request-level
request_error: the caller still gets it at its call site (and may clean up), but
the request's outcome is request_error even when the caller caught it."""

from __future__ import annotations

import asyncio

import pytest

import cairn
from cairn import RequestError, application, function


def test_a_caught_request_error_still_fails_the_request(run, effects):
    @function()
    def refuse_order(order: str) -> str:
        raise RequestError(f"order {order} is invalid")

    @application()
    @function()
    def caught_request_error(order: str) -> str:
        try:
            refuse_order(order)
        except RequestError as error:
            effects.record(f"caught {error.message}")  # the caller still gets it
        return "done"

    request = run(caught_request_error, "o-1")
    with pytest.raises(RequestError) as failed:
        request.output()
    assert failed.value.message == "order o-1 is invalid"
    assert effects.lines() == ["caught order o-1 is invalid"]


def test_gather_of_children_raises_the_request_error_and_fails_the_request(run):
    @function()
    async def gathered_ok(i: int) -> int:
        await asyncio.sleep(0.2)
        return i

    @function()
    async def gathered_refused(i: int) -> int:
        raise RequestError(f"item {i} refused")

    @application()
    @function()
    async def gathered_app() -> str:
        try:
            await asyncio.gather(gathered_ok(1), gathered_refused(2), gathered_ok(3))
        except RequestError as error:
            assert error.message == "item 2 refused"
            return "caught"
        return "not raised"

    with pytest.raises(RequestError, match="item 2 refused"):
        run(gathered_app).output()


def test_a_caught_function_error_does_not_fail_the_request(run):
    @function()
    def plain_failure() -> None:
        raise ValueError("boom")

    @application()
    @function()
    def degrades_gracefully() -> str:
        try:
            plain_failure()
        except cairn.FunctionError:
            return "fallback"
        return "unreachable"

    assert run(degrades_gracefully).output() == "fallback"
