"""Attempts are recorded as they happened, also when a call's timeout stops the
process its callers wait in; tracebacks show the user's code."""

from __future__ import annotations

import time

import pytest

import cairn
from cairn import Retries, application, function


def _attempts(request: cairn.Request, function_suffix: str) -> list[tuple[int, str]]:
    call = next(c for c in request.calls() if c.function.endswith(function_suffix))
    return [(a.attempt, a.outcome) for a in call.attempts]


def test_a_childs_timeout_records_its_callers_interrupted_attempt(
    run, effects, tmp_path
):
    first = tmp_path / "first"
    first.touch()

    @function(timeout=1, retries=Retries(max_retries=1, initial_delay=0.01))
    def ar_stuck_once() -> str:
        if first.exists():
            first.unlink()
            time.sleep(30)  # stopped by its timeout
        return "ok"

    @function()
    def ar_quick() -> int:
        effects.record("quick")
        return 1

    @application()
    @function()
    def ar_parent() -> str:
        ar_quick()
        time.sleep(0.3)
        return ar_stuck_once()

    request = run(ar_parent)
    assert request.output() == "ok"
    assert _attempts(request, "ar_stuck_once") == [(1, "timed_out"), (2, "success")]
    # The parent ran twice: until its process was stopped (about 1.3 s), then again.
    assert _attempts(request, "ar_parent") == [(1, "interrupted"), (2, "success")]
    parent = next(c for c in request.calls() if c.function.endswith("ar_parent"))
    interrupted = parent.attempts[0]
    assert interrupted.duration_s is not None and interrupted.duration_s >= 1.0
    assert "ar_stuck_once timed out" in (interrupted.error or {}).get("message", "")
    quick = next(c for c in request.calls() if c.function.endswith("ar_quick"))
    assert quick.ran_in_latest_run and len(quick.attempts) == 1
    assert effects.lines() == ["quick"]

    request.replay()
    assert request.output() == "ok"
    # The replay's attempt follows the two of the first run (a success is kept as
    # the call's latest outcome, so the first run's is replaced by this one).
    assert _attempts(request, "ar_parent") == [(1, "interrupted"), (3, "success")]


def test_recorded_tracebacks_show_the_users_frames_not_cairns(run):
    @function()
    def ar_user_code(x: int) -> int:
        return {"a": 1}[str(x)]

    @application()
    @function()
    def ar_caller() -> int:
        return ar_user_code(2)

    request = run(ar_caller)
    with pytest.raises(cairn.RequestFailed):
        request.output()
    call = next(c for c in request.calls() if c.function.endswith("ar_user_code"))
    text = (call.error or {}).get("traceback") or ""
    assert "ar_user_code" in text and "KeyError" in text
    assert "src/cairn/" not in text  # no frame of the engine between them
