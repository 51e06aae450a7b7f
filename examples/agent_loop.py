"""A durable agent loop: an LLM picks a tool, the tool runs, the result feeds back.

Every LLM decision (``decide``) and every tool call (``search_notes``,
``read_document``, ``calculator``) is its own ``@function()``, so each one is a
checkpoint. If the tool at iteration 15 fails, a replay serves iterations 1-14 from
their checkpoints (no model call, no tool call) and runs only what is left.

The tools work on the files in ``examples/documents/``. Each tool execution appends
one line to ``agent_tool_calls.jsonl`` in the working directory: count the lines to
see what ran. The planner is behind a small interface (``Planner``):

- by default an offline, rule-based planner (deterministic, no network);
- an OpenAI-compatible chat-completions planner when ``OPENAI_API_KEY`` or
  ``OPENAI_BASE_URL`` is set (model from ``CAIRN_EXAMPLE_MODEL``, default
  ``gpt-4o-mini``). ``CAIRN_EXAMPLE_PLANNER=offline`` forces the offline one.

Run it::

    python examples/agent_loop.py                      # answer the default questions
    python examples/agent_loop.py --fail-at-step 15    # inject a fault at iteration 15
    python examples/agent_loop.py --replay REQUEST_ID  # replay it (the fault is gone)

``--fail-at-step N`` sets ``AGENT_FAIL_AT_STEP=N`` for that process only: the tool
of iteration N raises (after its retries). The replay runs in a new process without
it, which stands for "the notes service is back". Or with the CLI::

    cairn run examples/agent_loop.py:research_agent --input '{"max_steps": 30}'
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import math
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

import httpx
from textkit import (
    DOCUMENTS,
    arithmetic_of,
    best_passage,
    evaluate,
    load_document,
    questions_of,
    terms,
)

from cairn import (
    RequestContext,
    Retries,
    RetryAfter,
    application,
    function,
    get_request,
    run_local_application,
)

TOOL_LOG = "agent_tool_calls.jsonl"
"""One line per tool execution, in the working directory (``AGENT_TOOL_LOG``)."""

DEFAULT_TASK = """Answer these questions from my notes:
- When did the Golden Gate Bridge open?
- What is the orbital period of Neptune in days?
- calculate 59800 / 365.25
- Who proposed the lens used in lighthouses?
- What does the angle of the waggle run tell the honeybees?
- What causes spring tides?
- Which element has atomic number 8?
- Which is the longest river in Asia?
- What water temperature suits green tea?
- What was the root cause of the duplicate digest emails?
"""

Action = dict[str, Any]
Message = dict[str, Any]


# -- the planner interface -------------------------------------------------------------
class Planner(Protocol):
    """Decides the next action from the conversation so far (an LLM, or rules)."""

    name: str

    def next_action(self, history: list[Message]) -> Action:
        """``{"tool": name, "args": {...}, "thought": str}``; tool "finish" ends."""
        ...


class RuleBasedPlanner:
    """An offline stand-in for an LLM: search, read the best hit, quote the best line.

    It derives everything from the history, so the same history gives the same
    action. ``AGENT_THINK_S`` adds a pause per decision to feel like a model call.
    """

    name = "offline-rules"

    def next_action(self, history: list[Message]) -> Action:
        delay = float(os.environ.get("AGENT_THINK_S", "0"))
        if delay > 0:
            time.sleep(delay)
        questions = questions_of(history[0]["content"])
        answers, pending_hits = self._answers_so_far(questions, history)
        if len(answers) == len(questions):
            lines = [f"- {q}\n  {a}" for q, a in zip(questions, answers, strict=True)]
            return {
                "tool": "finish",
                "args": {"answer": "\n".join(lines)},
                "thought": "every question has an answer",
            }
        question = questions[len(answers)]
        expression = arithmetic_of(question)
        if expression is not None:
            return {
                "tool": "calculator",
                "args": {"expression": expression},
                "thought": f"this is arithmetic: {expression}",
            }
        if pending_hits:
            top = pending_hits[0]["document"]
            return {
                "tool": "read_document",
                "args": {"name": top},
                "thought": f"{top} looks most relevant to {question!r}",
            }
        return {
            "tool": "search_notes",
            "args": {"query": question},
            "thought": f"look for notes about {question!r}",
        }

    @staticmethod
    def _answers_so_far(
        questions: list[str], history: list[Message]
    ) -> tuple[list[str], list[dict[str, Any]]]:
        answers: list[str] = []
        hits: list[dict[str, Any]] = []
        for message in history[1:]:
            if message["role"] != "tool":
                continue
            result = message["content"]
            if isinstance(result, dict) and "error" in result:
                answers.append(f"(failed: {result['error']})")
                hits = []
            elif message["tool"] == "calculator":
                answers.append(str(result["value"]))
            elif message["tool"] == "search_notes":
                hits = result["hits"]
                if not hits:
                    answers.append("(no notes mention this)")
            elif message["tool"] == "read_document":
                question = questions[len(answers)]
                answers.append(f"{best_passage(question, result)} [{result['name']}]")
                hits = []
        return answers, hits


SYSTEM_PROMPT = """You are a research assistant working from a folder of notes.
Tools:
- search_notes {"query": str}: the names of the notes that match the query best
- read_document {"name": str}: the text of one note
- calculator {"expression": str}: evaluate arithmetic (+ - * / ** % and parentheses,
  round, sqrt, abs, min, max)
- finish {"answer": str}: give the final answer and stop
Reply with one JSON object and nothing else:
{"thought": "<one short sentence>", "tool": "<tool name>", "args": {...}}
Use the tools; do not answer from memory. Answer every question of the task."""


class ChatCompletionsPlanner:
    """A planner backed by any OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(self, base_url: str, api_key: str | None, model: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.model = model
        self.name = f"chat-completions:{model}"

    def next_action(self, history: list[Message]) -> Action:
        messages = [{"role": "system", "content": SYSTEM_PROMPT}]
        for message in history:
            if message["role"] == "user":
                messages.append({"role": "user", "content": message["content"]})
            elif message["role"] == "assistant":
                action = {k: message[k] for k in ("thought", "tool", "args")}
                messages.append({"role": "assistant", "content": json.dumps(action)})
            else:
                result = json.dumps(message["content"])[:4000]
                messages.append(
                    {"role": "user", "content": f"{message['tool']} returned: {result}"}
                )
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        response = httpx.post(
            f"{self.base_url}/chat/completions",
            json={"model": self.model, "messages": messages, "temperature": 0},
            headers=headers,
            timeout=90.0,
        )
        if response.status_code == 429:
            # Rate limited: ask Cairn to retry after the delay the server gave.
            raise RetryAfter(float(response.headers.get("retry-after", "5")))
        response.raise_for_status()
        text = response.json()["choices"][0]["message"]["content"] or ""
        match = re.search(r"\{.*\}", text, re.DOTALL)
        if match is None:
            raise ValueError(f"the model did not reply with JSON: {text[:200]!r}")
        action = json.loads(match.group(0))
        return {
            "tool": str(action.get("tool", "")),
            "args": dict(action.get("args") or {}),
            "thought": str(action.get("thought", "")),
        }


def make_planner() -> Planner:
    """The offline planner unless an OpenAI-compatible endpoint is configured."""
    choice = os.environ.get("CAIRN_EXAMPLE_PLANNER", "auto")
    base_url = os.environ.get("OPENAI_BASE_URL")
    api_key = os.environ.get("OPENAI_API_KEY")
    if choice != "offline" and (base_url or api_key or choice == "openai"):
        return ChatCompletionsPlanner(
            base_url or "https://api.openai.com/v1",
            api_key,
            os.environ.get("CAIRN_EXAMPLE_MODEL", "gpt-4o-mini"),
        )
    return RuleBasedPlanner()


# -- the durable functions ---------------------------------------------------------------
@function(timeout=120, retries=Retries(max_retries=3, initial_delay=1.0, max_delay=30))
def decide(history: list[Message]) -> Action:
    """One LLM decision. Checkpointed: a replay never asks the model again."""
    planner = make_planner()
    action = planner.next_action(history)
    action["planner"] = planner.name
    return action


def _record_tool_call(tool: str, step: int, args: dict[str, Any]) -> None:
    """Append to the tool log, and fail on purpose where a fault was injected."""
    line = {
        "request_id": RequestContext.get().request_id,
        "step": step,
        "tool": tool,
        "args": args,
    }
    with open(os.environ.get("AGENT_TOOL_LOG", TOOL_LOG), "a") as log:
        log.write(json.dumps(line) + "\n")
    if os.environ.get("AGENT_FAIL_AT_STEP") == str(step):
        raise ConnectionError(
            f"{tool}: the notes service is unreachable (fault injected at step {step} "
            "by AGENT_FAIL_AT_STEP)"
        )


@function(timeout=30, retries=Retries(max_retries=2, initial_delay=0.2, max_delay=2))
def search_notes(query: str, step: int) -> dict[str, Any]:
    """Rank the documents by TF-IDF overlap with the query; the top three."""
    _record_tool_call("search_notes", step, {"query": query})
    documents = [load_document(p) for p in sorted(DOCUMENTS.iterdir())]
    counts = {d["name"]: Counter(terms(d["name"] + " " + d["text"])) for d in documents}
    wanted = set(terms(query))
    scores = {}
    for name, count in counts.items():
        score = 0.0
        for term in wanted:
            if count[term]:
                df = sum(1 for c in counts.values() if c[term])
                score += (1 + math.log(count[term])) * math.log(1 + len(counts) / df)
        if score > 0:
            scores[name] = round(score, 2)
    ranked = sorted(scores, key=lambda n: (-scores[n], n))[:3]
    return {
        "query": query,
        "hits": [{"document": n, "score": scores[n]} for n in ranked],
    }


@function(timeout=30, retries=Retries(max_retries=2, initial_delay=0.2, max_delay=2))
def read_document(name: str, step: int) -> dict[str, Any]:
    """The text of one document of ``examples/documents``."""
    _record_tool_call("read_document", step, {"name": name})
    path = (DOCUMENTS / name).resolve()
    if path.parent != DOCUMENTS or not path.is_file():
        return {"error": f"no document named {name!r}"}
    return load_document(path)


@function(timeout=10)
def calculator(expression: str, step: int) -> dict[str, Any]:
    """Evaluate an arithmetic expression safely (no names, no attribute access)."""
    _record_tool_call("calculator", step, {"expression": expression})
    try:
        value = evaluate(ast.parse(expression.replace(",", ""), mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, TypeError) as error:
        return {"error": f"{expression!r}: {error}"}
    return {"expression": expression, "value": round(value, 6)}


TOOLS: dict[str, Callable[..., dict[str, Any]]] = {
    "search_notes": search_notes,
    "read_document": read_document,
    "calculator": calculator,
}


def check_action(tool: str, args: dict[str, Any]) -> dict[str, str] | None:
    """An error to show the model if it asked for a tool or arguments that don't exist."""
    if tool not in TOOLS:
        return {"error": f"unknown tool {tool!r}; use one of {sorted(TOOLS)}"}
    try:
        inspect.signature(TOOLS[tool]).bind(**args, step=0)
    except TypeError as error:
        return {"error": f"bad arguments for {tool}: {error}"}
    return None


def _summary(result: Any) -> str:
    if not isinstance(result, dict):
        return repr(result)[:80]
    if "error" in result:
        return f"error: {result['error']}"
    if "hits" in result:
        return ", ".join(h["document"] for h in result["hits"]) or "no hits"
    if "value" in result:
        return str(result["value"])
    return f"{result.get('name')} ({len(result.get('text', ''))} chars)"


@application()
@function()
def research_agent(task: str = DEFAULT_TASK, max_steps: int = 30) -> dict[str, Any]:
    """Loop: decide, run the chosen tool, feed the result back; stop at "finish"."""
    ctx = RequestContext.get()
    history: list[Message] = [{"role": "user", "content": task}]
    transcript: list[str] = []
    for step in range(1, max_steps + 1):
        action = decide(history)
        history.append({"role": "assistant", **action})
        tool = action["tool"]
        ctx.progress.update(step, max_steps, f"step {step}: {tool}")
        if tool == "finish":
            transcript.append(f"{step:2d}. finish")
            return {
                "answer": action["args"].get("answer", ""),
                "steps": step,
                "planner": action.get("planner"),
                "transcript": transcript,
            }
        args = {k: v for k, v in action["args"].items() if k != "step"}
        result = check_action(tool, args)
        if result is None:
            result = TOOLS[tool](**args, step=step)
        history.append({"role": "tool", "tool": tool, "content": result})
        shown = ", ".join(f"{v!r}" for v in args.values())
        transcript.append(f"{step:2d}. {tool}({shown[:60]}) -> {_summary(result)}")
    return {
        "answer": f"(stopped after {max_steps} steps without finishing)",
        "steps": max_steps,
        "planner": None,
        "transcript": transcript,
    }


# -- command line ------------------------------------------------------------------------
def report(request_id: str, store: str | None) -> int:
    """Print what a request did: its output or failure, and where its calls came from."""
    request = get_request(request_id, store=store)
    calls = [c for c in request.calls() if c.kind != "app"]
    ran = sum(c.ran_in_latest_run for c in calls)
    served = sum(c.served_from_checkpoint for c in calls)
    print(f"request {request.id}: {request.status()}")
    print(f"  calls in this run: {ran} ran, {served} served from checkpoints")
    try:
        output = request.output()
    except Exception as error:
        print(f"  failed: {error}")
        where = f" --store {store}" if store else ""
        print(f"  replay it: python {sys.argv[0]} --replay {request.id}{where}")
        return 1
    print(f"  planner: {output['planner']}, {output['steps']} steps")
    for line in output["transcript"]:
        print(f"  {line}")
    print("answer:")
    print(output["answer"])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default=DEFAULT_TASK, help="questions, one a line")
    parser.add_argument("--max-steps", type=int, default=30)
    parser.add_argument("--store", help="store URL (default: $CAIRN_STORE or .cairn)")
    parser.add_argument("--fail-at-step", type=int, help="inject a tool fault")
    parser.add_argument("--replay", metavar="REQUEST_ID", help="replay a request")
    parser.add_argument("--offline", action="store_true", help="rule-based planner")
    options = parser.parse_args(argv)
    if options.offline:
        os.environ["CAIRN_EXAMPLE_PLANNER"] = "offline"
    if options.fail_at_step is not None:
        # Read by the tools at call time, in the executor processes this one forks.
        os.environ["AGENT_FAIL_AT_STEP"] = str(options.fail_at_step)
    if options.replay:
        get_request(options.replay, store=options.store).replay()
        return report(options.replay, options.store)
    kwargs: dict[str, Any] = {"cairn_store": options.store} if options.store else {}
    request = run_local_application(
        research_agent, options.task, options.max_steps, **kwargs
    )
    return report(request.id, options.store)


if __name__ == "__main__":
    sys.exit(main())
