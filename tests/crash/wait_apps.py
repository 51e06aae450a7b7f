"""Applications that sleep and wait for signals, for the tests that kill workers
while they wait. Side effects go to a file, one line each."""

from __future__ import annotations

import os
import time

import cairn
from cairn import RequestContext, application, function


@function()
def effect(label: str) -> str:
    with open(os.environ["CAIRN_TEST_EFFECTS"], "a") as handle:
        handle.write(label + "\n")
    return label


@application()
@function()
def nap_then_signal(i: int) -> str:
    effect(f"start {i}")
    RequestContext.get().sleep(float(os.environ.get("CAIRN_TEST_SLEEP_S", "3")))
    effect(f"woke {i}")
    value = cairn.wait_for_signal("go")
    effect(f"got {i} {value}")
    return f"{i}:{value}"


@application()
@function()
def wait_or_time_out(i: int) -> str:
    try:
        value = cairn.wait_for_signal("never", timeout_s=3)
    except TimeoutError:
        effect(f"timed out {i}")
        return "timed out"
    return f"got {value}"


@application()
@function()
def await_signal(i: int) -> int:
    return int(cairn.wait_for_signal("go")) + i


@application()
@function()
def two_signals(i: int) -> list[int]:
    first = cairn.wait_for_signal("n")
    effect(f"first {i} {first}")
    second = cairn.wait_for_signal("n")
    return [first, second]


@function()
def nested_sleeper(i: int) -> int:
    effect(f"nested before {i}")
    cairn.sleep(1.5)
    effect(f"nested after {i}")
    return i * 10


@application()
@function()
def sleeps_in_a_child(i: int) -> int:
    return nested_sleeper(i) + sum(nested_sleeper.map([i + 1, i + 2]))


@function()
def approve_child(i: int) -> int:
    effect(f"child start {i}")
    return int(cairn.wait_for_signal("go")) + i


@application()
@function()
def parent_of_waiting_child(i: int) -> int:
    effect(f"parent start {i}")
    value = approve_child.future(i).result()
    effect(f"parent end {i}")
    return value


@function()
def slow_child(seconds: float) -> str:
    time.sleep(seconds)
    return "slow done"


@function()
def pause(seconds: float) -> None:
    time.sleep(seconds)


@application()
@function()
def parent_of_slow_children(seconds: float) -> list[str]:
    children = slow_child.future.map([seconds, seconds]).run()
    pause(1.0)  # meanwhile other executors take both children: none is left to run
    return children.result()


@application()
@function()
def scheduled(note: str) -> str:
    effect(f"scheduled {note}")
    return f"ran {note}"
