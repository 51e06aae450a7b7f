"""Calling an async function gives a Future that is also a coroutine, accepted
wherever a Future is; ``Future.coroutine()``; ``asyncio.gather`` and tasks."""

from __future__ import annotations

import asyncio
import time

import pytest

import cairn
from cairn import Future, application, function


@function()
async def co_double(x: int) -> int:
    return x * 2


@function()
def co_add(a: int, b: int) -> int:
    return a + b


@function()
async def co_async_add(a: int, b: int) -> int:
    return a + b


@function()
def co_triple(x: int) -> int:
    return x * 3


@function()
async def co_pause(value: str, seconds: float) -> str:
    await asyncio.sleep(seconds)
    return value


@function()
async def co_refuse(message: str) -> str:
    raise cairn.RequestError(message)


def test_an_async_call_is_a_future_and_a_coroutine_awaited_once(run):
    @application()
    @function()
    async def shapes() -> dict[str, object]:
        coroutine = co_double(4)
        first = await coroutine
        try:
            await coroutine
            second = "awaited twice"
        except RuntimeError as error:
            second = str(error)
        return {
            "future": isinstance(coroutine, Future),
            "coroutine": asyncio.iscoroutine(coroutine),
            "first": first,
            "second": second,
            "result": coroutine.result(),
        }

    assert run(shapes).output() == {
        "future": True,
        "coroutine": True,
        "first": 8,
        "second": "cannot reuse already awaited coroutine",
        "result": 8,
    }


def test_coroutines_are_inputs_to_calls_maps_reduces_and_tail_calls(run):
    @application()
    @function()
    async def inputs(x: int) -> dict[str, object]:
        consumed = co_double(x)
        as_argument = await co_async_add(consumed, 1)
        try:
            await consumed
            reused = "no error"
        except RuntimeError:
            reused = "RuntimeError"
        return {
            "sync_future": await co_add.future(x, co_double(x)),
            "async_call": as_argument,
            "blocking_call": co_add(co_double(x), co_double(1)),
            "reused": reused,
            "map_items": co_triple.map([co_double(1), co_double(2)]),
            "map_of_coroutine": await co_double.map(co_double.map([1, 2])),
            "reduce_items": co_add.reduce([co_double(1), co_double(2)], 0),
            "tail_async": await co_tail_async(x),
            "tail_sync": co_tail_sync(x),
        }

    assert run(inputs, 5).output() == {
        "sync_future": 15,
        "async_call": 11,
        "blocking_call": 12,
        "reused": "RuntimeError",
        "map_items": [6, 12],
        "map_of_coroutine": [4, 8],
        "reduce_items": 6,
        "tail_async": 15,
        "tail_sync": 20,
    }


@function()
async def co_tail_async(x: int) -> int:
    return co_async_add(x, co_double(x))  # type: ignore[return-value]


@function()
def co_tail_sync(x: int) -> int:
    return co_double.future(co_double(x))  # type: ignore[return-value]


def test_gather_create_task_and_future_coroutine(run):
    @application()
    @function()
    async def loop_tools(x: int) -> dict[str, object]:
        gathered = await asyncio.gather(co_double(x), co_add.future(x, x).coroutine())
        task = asyncio.create_task(co_double(x + 1))
        future = co_triple.future(x)
        coroutine = future.coroutine()
        same = coroutine is future.coroutine()
        started = co_triple.future(x).run()
        try:
            started.coroutine()
            refused = "no error"
        except cairn.SDKUsageError:
            refused = "SDKUsageError"
        return {
            "gathered": gathered,
            "task": await task,
            "same": same,
            "coroutine": await coroutine,
            "as_argument": await co_async_add(x, co_triple.future(1).coroutine()),
            "refused": refused,
            "started": await started,
        }

    assert run(loop_tools, 2).output() == {
        "gathered": [4, 4],
        "task": 6,
        "same": True,
        "coroutine": 6,
        "as_argument": 5,
        "refused": "SDKUsageError",
        "started": 6,
    }


def test_future_coroutine_in_sync_code_is_a_usage_error(run):
    @application()
    @function()
    def sync_caller() -> str:
        try:
            co_triple.future(1).coroutine()
        except cairn.SDKUsageError as error:
            return str(error)
        return "no error"

    assert run(sync_caller).output() == (
        "Future.coroutine() can only be called from an async function. "
        "Use Future.result() to get the result in a sync function."
    )


def test_gather_raises_the_first_failure_without_waiting_for_the_rest(run, effects):
    @application()
    @function()
    async def first_failure() -> str:
        started = time.monotonic()
        try:
            await asyncio.gather(
                co_pause("slow", 3), co_refuse("refused"), co_pause("slow too", 3)
            )
        except cairn.RequestError as error:
            effects.record(f"{error.message} fast={time.monotonic() - started < 2}")
            return "caught"
        return "not raised"

    # The caller gets the first failure at once; a RequestError still fails the
    # request (Tensorlake's request-level request_error), caught or not.
    with pytest.raises(cairn.RequestError, match="refused"):
        run(first_failure).output()
    assert effects.lines() == ["refused fast=True"]


def test_an_async_map_with_a_future_input_does_not_block_the_loop(run):
    @function()
    async def co_numbers(n: int) -> list[int]:
        return list(range(n))

    @application()
    @function()
    async def mapped(n: int) -> list[int]:
        return await co_double.map(co_numbers.future(n))

    assert run(mapped, 4).output() == [0, 2, 4, 6]


@pytest.mark.parametrize("kind", ["str", "generator", "range", "dict values"])
def test_map_and_reduce_take_any_iterable(run, kind):
    @function()
    def iter_ord(c: object) -> int:
        return ord(c) if isinstance(c, str) else int(c)  # type: ignore[arg-type]

    @function()
    def iter_plus(a: int, b: int) -> int:
        return a + b

    @application()
    @function()
    def iterables(kind: str) -> dict[str, object]:
        def items() -> object:
            if kind == "str":
                return "abc"
            if kind == "generator":
                return (x for x in (97, 98, 99))
            if kind == "range":
                return range(97, 100)
            return {"a": 97, "b": 98, "c": 99}.values()

        return {
            "map": iter_ord.map(items()),
            "future_map": iter_ord.future.map(items()).result(),
            "reduce": iter_plus.reduce(iter_ord.map(items()), 0),
            "future_reduce": iter_plus.future.reduce(
                iter_ord.future.map(items()), 0
            ).result(),
        }

    assert run(iterables, kind).output() == {
        "map": [97, 98, 99],
        "future_map": [97, 98, 99],
        "reduce": 294,
        "future_reduce": 294,
    }
