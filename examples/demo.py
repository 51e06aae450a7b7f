"""What ``make demo`` runs: an agent fails at step 15, is fixed, and resumes from there.

1. A fresh store in a temporary directory.
2. Process A runs ``examples/agent_loop.py`` (20 iterations, each an LLM decision
   and a tool call) with a fault injected into the tool at iteration 15. This
   process only watches, reading progress and failures from the store.
3. Process B, started afterwards without the fault, replays the request by id.
4. For each run: how many calls ran and how many came from checkpoints (from
   ``Request.calls()``), and how many tool executions the tool log recorded.

Every number printed comes from the store or from the tool log the tools append to.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from cairn import Request, get_request
from cairn.store import open_store

EXAMPLES = Path(__file__).resolve().parent
AGENT = EXAMPLES / "agent_loop.py"
STEPS = 20
FAIL_AT_STEP = 15
THINK_S = 0.06
"""Pause of the offline planner per decision, so progress is visible."""

console = Console(highlight=False, soft_wrap=True)


def tool_log(workdir: Path, request_id: str) -> list[dict[str, Any]]:
    """The tool executions the tools themselves logged for this request."""
    path = workdir / "agent_tool_calls.jsonl"
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [line for line in lines if line["request_id"] == request_id]


def start(args: list[str], workdir: Path, fault: bool) -> subprocess.Popen[str]:
    """Start ``agent_loop.py`` in a new process, offline, in the demo's directory."""
    env = dict(os.environ, CAIRN_EXAMPLE_PLANNER="offline", AGENT_THINK_S=str(THINK_S))
    env.pop("AGENT_FAIL_AT_STEP", None)
    if fault:
        env["AGENT_FAIL_AT_STEP"] = str(FAIL_AT_STEP)
    return subprocess.Popen(
        [sys.executable, str(AGENT), "--offline", *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def find_request(store_url: str, process: subprocess.Popen[str]) -> str:
    """The id of the request the child process created (the store is fresh)."""
    store = open_store(store_url)
    try:
        while True:
            found = store.list_requests(limit=1)
            if found:
                return found[0].id
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                raise SystemExit(f"the agent process exited early:\n{output}")
            time.sleep(0.01)
    finally:
        store.close()


def watch(
    request: Request, process: subprocess.Popen[str], label: str, after_seq: int
) -> int:
    """Show the request's progress events live until the process exits."""
    seq = after_seq
    columns = (
        TextColumn(f"  {label}"),
        BarColumn(bar_width=30),
        MofNCompleteColumn(),
        TextColumn("{task.fields[message]}"),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(label, total=STEPS, message="starting")
        while True:
            finished = process.poll() is not None
            for event in request.events(after_seq=seq):
                seq = event.seq
                payload = event.payload
                if event.kind == "RequestProgressUpdated":
                    bar.update(
                        task, completed=payload["step"], message=payload["message"]
                    )
                    bar.refresh()
                elif event.kind == "FunctionRunAttemptFailed":
                    bar.console.print(
                        f"    [yellow]{payload['function_name']} attempt "
                        f"{payload['attempt']} failed[/] ({payload['error_type']}); "
                        f"retrying in {payload['retry_delay_s']:.2f}s"
                    )
                elif (
                    event.kind == "FunctionRunCompleted"
                    and payload.get("outcome") == "failure"
                ):
                    bar.console.print(
                        f"    [red]{payload['function_name']} failed for good after "
                        f"attempt {payload['attempt']}[/]"
                    )
            if finished:
                return seq
            time.sleep(0.03)


def run_counts(request: Request) -> dict[str, int]:
    """Calls of the latest run (the application call aside), from the store."""
    calls = [c for c in request.calls() if c.kind != "app"]
    decisions = [c for c in calls if c.function == "decide"]
    return {
        "ran": sum(c.ran_in_latest_run for c in calls),
        "served": sum(c.served_from_checkpoint for c in calls),
        "decisions_ran": sum(c.ran_in_latest_run for c in decisions),
        "decisions_served": sum(c.served_from_checkpoint for c in decisions),
    }


def print_counts(counts: dict[str, int], tools: list[dict[str, Any]]) -> None:
    steps = sorted({line["step"] for line in tools})
    shown = f"{steps[0]}-{steps[-1]}" if steps else "none"
    console.print(
        f"  calls: [bold]{counts['ran']} ran[/], "
        f"[bold]{counts['served']} served from checkpoints[/] "
        f"(LLM decisions: {counts['decisions_ran']} ran, "
        f"{counts['decisions_served']} served)"
    )
    console.print(
        f"  tool executions logged by the tools: [bold]{len(tools)}[/] (steps {shown})"
    )


def main() -> int:
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="cairn-demo-"))
    store_url = f"sqlite:///{workdir / 'cairn.db'}"
    open_store(store_url).close()  # create it before the child processes use it
    console.print("[bold]Cairn demo[/]: an agent loop that fails at step 15")
    console.print(f"  store:     {workdir / 'cairn.db'}")
    console.print(f"  tool log:  {workdir / 'agent_tool_calls.jsonl'}")

    console.print(
        f"\n[bold]Run 1[/] (process A; AGENT_FAIL_AT_STEP={FAIL_AT_STEP} breaks "
        "the tool of that step)"
    )
    first = start(["--store", store_url, "--max-steps", str(STEPS)], workdir, True)
    request = get_request(find_request(store_url, first), store=store_url)
    console.print(f"  process A is pid {first.pid}; this process only reads the store")
    seq = watch(request, first, "run 1", 0)
    output_a = first.stdout.read() if first.stdout else ""
    first.wait()
    status = request.status()
    console.print(f"  request {request.id}: [bold]{status}[/]")
    failed = [c for c in request.calls() if c.kind != "app" and c.status == "failed"]
    if status != "failed" or not failed:
        console.print(f"[red]expected run 1 to fail[/]; its output:\n{output_a}")
        return 1
    tools_1 = tool_log(workdir, request.id)
    call = failed[0]
    error = call.error or {}
    console.print(
        f"  failed at step {tools_1[-1]['step']}: {call.function}, "
        f"{len(call.attempts)} attempts: {error.get('type')}: {error.get('message')}"
    )
    print_counts(run_counts(request), tools_1)

    console.print(
        "\n[bold]Fix[/]: the notes service is back (no AGENT_FAIL_AT_STEP). "
        f"[bold]Run 2[/]: process B replays request {request.id}"
    )
    replay_started = time.monotonic()
    second = start(["--store", store_url, "--replay", request.id], workdir, False)
    console.print(f"  process B is pid {second.pid}")
    watch(request, second, "run 2", seq)
    output_b = second.stdout.read() if second.stdout else ""
    second.wait()
    status = request.status()
    console.print(
        f"  request {request.id}: [bold]{status}[/] "
        f"in {time.monotonic() - replay_started:.1f}s"
    )
    if status != "succeeded":
        console.print(
            f"[red]expected the replay to succeed[/]; its output:\n{output_b}"
        )
        return 1
    tools_all = tool_log(workdir, request.id)
    tools_2 = tools_all[len(tools_1) :]
    print_counts(run_counts(request), tools_2)

    succeeded_before = {line["step"] for line in tools_1} - {tools_1[-1]["step"]}
    repeated = sorted(succeeded_before & {line["step"] for line in tools_2})
    output = request.output()
    console.print(
        f"\n[bold]Result[/]: {output['steps']} steps; tool executions over both "
        f"runs: {len(tools_all)} ({len(tools_1)} in run 1 with retries, "
        f"{len(tools_2)} in run 2)."
    )
    if repeated:
        console.print(
            f"[red]steps that ran again although they had succeeded: {repeated}"
        )
        return 1
    console.print("  No step that had succeeded ran again. First lines of the answer:")
    for line in output["answer"].splitlines()[:4]:
        console.print(f"    {line}", markup=False)
    cli = Path(sys.executable).parent / "cairn"
    command = str(cli) if cli.exists() else "cairn"
    if cli.exists() and cli.is_relative_to(Path.cwd()):
        command = str(cli.relative_to(Path.cwd()))
    console.print(
        f"\nInspect it: [bold]{command} requests show {request.id} --store {store_url}[/]"
    )
    console.print(f"(demo took {time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
