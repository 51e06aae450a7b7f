"""Checkpoints and replay, counted by side effects user code writes to a file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import cairn
from cairn import RequestContext, application, function
from cairn.types import CallStatus, RequestStatus


def test_agent_loop_fails_at_step_15_and_replay_runs_only_step_15(
    run, effects, tmp_path
):
    flag = tmp_path / "broken"
    flag.touch()

    @function()
    def tool(step: int) -> str:
        effects.record(f"tool {step}")
        if step == 15 and flag.exists():
            raise ConnectionError("search API unreachable")
        return f"result {step}"

    @application()
    @function()
    def agent(steps: int) -> list[str]:
        ctx = RequestContext.get()
        history = []
        for step in range(1, steps + 1):
            ctx.progress.update(step, steps, f"iteration {step}")
            history.append(tool(step))
        return history

    request = run(agent, 20)
    assert request.status() is RequestStatus.FAILED
    with pytest.raises(cairn.RequestFailed) as failure:
        request.output()
    assert failure.value.reason == "function_error"
    assert "search API unreachable" in failure.value.details
    assert effects.lines() == [f"tool {i}" for i in range(1, 16)]

    flag.unlink()
    effects.clear()
    request.replay()
    assert request.output() == [f"result {i}" for i in range(1, 21)]
    # Steps 1-14 came from checkpoints; only 15 (the failed one) and the new 16-20 ran.
    assert effects.lines() == [f"tool {i}" for i in range(15, 21)]
    calls = {c.seq: c for c in request.calls() if c.function.endswith("tool")}
    assert all(calls[i].served_from_checkpoint for i in range(14))
    assert not any(calls[i].served_from_checkpoint for i in range(14, 20))
    assert all(calls[i].ran_in_latest_run for i in range(14, 20))


def test_map_of_1000_with_3_failures_replays_exactly_those_3(run, effects, tmp_path):
    flag = tmp_path / "broken"
    flag.touch()
    failing = {17, 500, 998}

    @function()
    def parse(item: int) -> int:
        effects.record(str(item))
        if item in failing and flag.exists():
            raise ValueError(f"cannot parse {item}")
        return item * 2

    @application()
    @function()
    def pipeline(count: int) -> int:
        return sum(parse.map(list(range(count))))

    request = run(pipeline, 1000)
    assert request.status() is RequestStatus.FAILED
    failed = [
        c
        for c in request.calls()
        if c.status is CallStatus.FAILED and c.kind == "map_item"
    ]
    assert sorted(c.seq for c in failed) == sorted(failing)
    first_run = effects.lines()
    assert len(first_run) == len(set(first_run)) == 1000

    flag.unlink()
    effects.clear()
    request.replay()
    assert request.output() == sum(i * 2 for i in range(1000))
    assert sorted(int(line) for line in effects.lines()) == sorted(failing)


def test_side_effect_in_its_own_function_is_never_repeated(run, effects, tmp_path):
    flag = tmp_path / "broken"
    flag.touch()

    @function()
    def send_email(to: str) -> str:
        effects.record(f"email to {to}")
        return "sent"

    @function()
    def archive() -> str:
        if flag.exists():
            raise OSError("disk full")
        return "archived"

    @application()
    @function()
    def notify(to: str) -> list[str]:
        return [send_email(to), archive()]

    request = run(notify, "ada@example.com")
    assert request.status() is RequestStatus.FAILED
    flag.unlink()
    request.replay()
    request.replay()
    assert request.output() == ["sent", "archived"]
    assert effects.count("email to ada@example.com") == 1


def test_nested_calls_three_deep_sync_and_async(run, effects):
    @function()
    def leaf(x: int) -> int:
        effects.record(f"leaf {x}")
        return x + 1

    @function()
    def middle(x: int) -> int:
        return leaf(x) * 10

    @function()
    async def async_leaf(x: int) -> int:
        effects.record(f"async_leaf {x}")
        return x + 2

    @function()
    async def async_middle(x: int) -> int:
        return await async_leaf(x) * 100

    @application()
    @function()
    def top(x: int) -> list[int]:
        import asyncio

        return [middle(x), asyncio.run(async_middle(x))]

    @application()
    @function()
    async def async_top(x: int) -> list[int]:
        return [await async_middle(x), await async_middle(x + 1)]

    assert run(top, 1).output() == [20, 300]
    assert run(async_top, 1).output() == [300, 400]
    request = run(top, 5)
    effects.clear()
    request.replay()
    assert request.output() == [60, 700]
    assert effects.lines() == []
    depth = {c.id: c.parent_id for c in request.calls()}
    leaf_call = next(c for c in request.calls() if c.function.endswith(".leaf"))
    chain = []
    node: str | None = leaf_call.id
    while node is not None:
        chain.append(node)
        node = depth.get(node)
    assert len(chain) == 3 and chain[-1] == request.id


def test_replay_from_a_new_process_after_fixing_the_code(tmp_path, store_url):
    app = tmp_path / "agent_app.py"
    source = textwrap.dedent(
        """
        from cairn import application, function

        LOG = {log!r}

        @function()
        def fixable_step(i: int) -> int:
            with open(LOG, "a") as handle:
                handle.write(f"{{i}}\\n")
            if i == 3:
                {body}
            return i

        @application()
        @function()
        def fixable_agent(n: int) -> int:
            return sum(fixable_step(i) for i in range(n))
        """
    )
    log = tmp_path / "log.txt"
    app.write_text(source.format(log=str(log), body="raise RuntimeError('bug')"))
    driver = tmp_path / "driver.py"
    driver.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(tmp_path)!r})
            import agent_app, cairn
            if sys.argv[1] == "run":
                r = cairn.run_local_application(
                    agent_app.fixable_agent, 6, cairn_store={store_url!r}
                )
                print(r.id)
            else:
                r = cairn.get_request(sys.argv[2], store={store_url!r}).replay()
                print(r.output())
            """
        )
    )
    env = {**os.environ, "CAIRN_CONCURRENCY": "2"}
    first = subprocess.run(
        [sys.executable, str(driver), "run"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    request_id = first.stdout.strip()
    assert log.read_text().split() == ["0", "1", "2", "3"]
    app.write_text(source.format(log=str(log), body="pass"))
    log.write_text("")
    second = subprocess.run(
        [sys.executable, str(driver), "replay", request_id],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert second.stdout.strip() == str(sum(range(6)))
    assert log.read_text().split() == ["3", "4", "5"]


def test_large_output_checkpoints_and_replays(run, effects):
    @function()
    def big() -> bytes:
        effects.record("big")
        return os.urandom(1024) * (20 * 1024)  # 20 MiB

    @application()
    @function()
    def sizes() -> int:
        return len(big())

    request = run(sizes)
    assert request.output() == 20 * 1024 * 1024
    request.replay()
    assert request.output() == 20 * 1024 * 1024
    assert effects.count("big") == 1


def test_state_is_durable_and_reproduced_on_replay(run, effects, tmp_path):
    flag = tmp_path / "broken"
    flag.touch()

    @function()
    def count_visit() -> int:
        ctx = RequestContext.get()
        visits = ctx.state.get("visits", 0) + 1
        ctx.state.set("visits", visits)
        effects.record(f"visit {visits}")
        return visits

    @function()
    def fragile() -> None:
        if flag.exists():
            raise RuntimeError("later failure")

    @application()
    @function()
    def visits() -> list[int]:
        seen = [count_visit(), count_visit()]
        fragile()
        return [*seen, RequestContext.get().state.get("visits")]

    request = run(visits)
    assert request.status() is RequestStatus.FAILED
    flag.unlink()
    request.replay()
    # The replay served both visits from checkpoints and re-applied their state
    # writes: the counter reads 2, not 4.
    assert request.output() == [1, 2, 2]
    assert effects.lines() == ["visit 1", "visit 2"]


def test_requests_are_found_by_id_and_unknown_ids_are_clear(run, store_url):
    @function()
    def noop_app_body() -> int:
        return 1

    @application()
    @function()
    def lookup_app() -> int:
        return noop_app_body()

    request = run(lookup_app)
    again = cairn.get_request(request.id, store=store_url)
    assert again.output() == 1
    with pytest.raises(cairn.RequestNotFound, match="no request with id 'nope'"):
        cairn.get_request("nope", store=store_url)


def test_calling_a_function_outside_a_request_is_a_usage_error():
    @function()
    def outside() -> int:
        return 1

    with pytest.raises(cairn.SDKUsageError, match="inside a request"):
        outside()


def test_progress_updates_are_recorded_as_events(run):
    @application()
    @function()
    def reporter(n: int) -> int:
        ctx = RequestContext.get()
        for i in range(n):
            ctx.progress.update(i + 1, n, attributes={"i": str(i)})
        return n

    request = run(reporter, 3)
    progress = [
        e.payload for e in request.events() if e.kind == "RequestProgressUpdated"
    ]
    assert [(p["step"], p["total"]) for p in progress] == [(1, 3), (2, 3), (3, 3)]
    assert progress[0]["message"].endswith("executing step 1 of 3")
    assert progress[2]["attributes"] == {"i": "2"}
    kinds = [e.kind for e in request.events()]
    assert kinds[0] == "RequestStarted" and kinds[-1] == "RequestFinished"
    # The application call's run: created once, completed once.
    assert kinds.count("FunctionRunCreated") == kinds.count("FunctionRunCompleted") == 1
    seqs = [e.seq for e in request.events()]
    assert seqs == list(range(1, len(seqs) + 1))


def test_bad_progress_values_fail_the_call_with_a_usage_error(run):
    @application()
    @function()
    def negative_progress() -> None:
        RequestContext.get().progress.update(-1, 3)

    request = run(negative_progress)
    with pytest.raises(cairn.RequestFailed, match="must be a finite number >= 0"):
        request.output()


def test_a_request_whose_process_was_killed_is_taken_over(tmp_path, store_url):
    import signal
    import time

    app = tmp_path / "killed_app.py"
    app.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            from cairn import application, function, run_local_application

            @function()
            def takeover_step(i: int) -> int:
                with open({str(tmp_path / "steps.log")!r}, "a") as handle:
                    handle.write(f"{{i}}\\n")
                if i == 2 and sys.argv[1] == "first":
                    time.sleep(60)
                return i

            @application()
            @function()
            def takeover_app(n: int) -> int:
                return sum(takeover_step(i) for i in range(n))

            if __name__ == "__main__":
                run_local_application(takeover_app, 4, cairn_store={store_url!r})
            """
        )
    )
    env = {**os.environ, "CAIRN_CONCURRENCY": "1"}
    first = subprocess.Popen([sys.executable, str(app), "first"], env=env)
    log = tmp_path / "steps.log"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "2" not in (
        log.read_text().split() if log.exists() else []
    ):
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    # A worker that serves its functions takes the orphaned request over.
    cairn_cli = str(Path(sys.executable).parent / "cairn")
    worker = subprocess.Popen(
        [cairn_cli, "worker", str(app), "--store", store_url], env=env
    )
    store = cairn.store.open_store(store_url)
    try:
        (orphan,) = store.list_requests(application="takeover_app")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            finished = store.get_request(orphan.id)
            if finished is not None and finished.status.finished:
                break
            time.sleep(0.05)
    finally:
        store.close()
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    assert finished is not None and finished.status is RequestStatus.SUCCEEDED
    assert log.read_text().split() == ["0", "1", "2", "2", "3"]


def test_each_call_is_created_then_completed_once_in_the_event_stream(run):
    @function(retries=cairn.Retries(max_retries=1, initial_delay=0.01))
    def flaky_event(i: int) -> int:
        if i == 1 and not RequestContext.get().state.get("failed_once"):
            RequestContext.get().state.set("failed_once", True)
            raise ValueError("once")
        return i

    @application()
    @function()
    def evented() -> int:
        return sum(flaky_event.map([0, 1])) + flaky_event(2)

    request = run(evented)
    assert request.output() == 3
    events = [(e.kind, e.payload) for e in request.events()]
    calls = {c.id for c in request.calls()}
    created = [p["function_run_id"] for k, p in events if k == "FunctionRunCreated"]
    completed = [p["function_run_id"] for k, p in events if k == "FunctionRunCompleted"]
    assert sorted(created) == sorted(completed) == sorted(calls)
    for call_id in calls:
        kinds = [k for k, p in events if p.get("function_run_id") == call_id]
        assert kinds[0] == "FunctionRunCreated" and kinds[-1] == "FunctionRunCompleted"
    assert [k for k, _ in events].count("FunctionRunAttemptFailed") == 1
