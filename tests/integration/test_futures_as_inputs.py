"""Futures never started by user code, passed as inputs: the SDK starts them."""

from __future__ import annotations

from cairn import Future, application, function


@function()
def inputs_square(x: int) -> int:
    return x * x


@function()
def inputs_add(a: int, b: int) -> int:
    return a + b


@function()
def inputs_total(values: list[int]) -> int:
    return sum(values)


def test_a_reduce_over_an_unstarted_map_future_folds_its_outputs(run):
    @application()
    @function()
    def sum_of_squares() -> int:
        return inputs_add.future.reduce(
            inputs_square.future.map([0, 1, 2, 3]), 0
        ).result()

    assert run(sum_of_squares).output() == 14


def test_map_futures_nested_in_calls_maps_reduces_and_tail_calls(run):
    @application()
    @function()
    def nested() -> dict[str, int]:
        squares = inputs_square.future.map(range(4))
        return {
            "call": inputs_total(inputs_square.future.map([1, 2])),
            "future_call": inputs_total.future(squares).result(),
            "reduce_items": inputs_add.reduce(
                [inputs_square.future(2), inputs_square.future(3)], 0
            ),
            "blocking_reduce": inputs_add.reduce(inputs_square.future.map([1, 2]), 0),
            "tail": inputs_tail_reduce(3),
        }

    assert run(nested).output() == {
        "call": 5,
        "future_call": 14,
        "reduce_items": 13,
        "blocking_reduce": 5,
        "tail": 5,
    }


@function()
def inputs_tail_reduce(n: int) -> Future:
    return inputs_add.future.reduce(inputs_square.future.map(range(n)), 0)
