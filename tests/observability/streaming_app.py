"""Applications that stream output with ``ctx.stream.write``."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cairn import RequestContext, application, function

FLAG_DIR = Path(os.environ.get("SRV_TEST_DIR", "."))


@function()
def stream_words(text: str) -> int:
    ctx = RequestContext.get()
    for word in text.split():
        ctx.stream.write(word + " ")
    ctx.stream.write(b"\x00\xff")
    ctx.stream.write({"words": len(text.split())})
    return len(text.split())


@function()
def stream_gate(tag: str) -> str:
    # Fails until the test creates the file: a replay then runs it again.
    if not (FLAG_DIR / f"open-{tag}").exists():
        raise ValueError("gate closed")
    RequestContext.get().stream.write("gate open")
    return "open"


@application()
@function()
def stream_story(text: str) -> str:
    count = stream_words(text)
    return f"{count} words, gate {stream_gate(text.split()[0])}"


@application()
@function()
def stream_slowly(n: int) -> int:
    ctx = RequestContext.get()
    for i in range(n):
        ctx.stream.write(f"tick {i}")
        time.sleep(0.2)
    return n


@application()
@function()
def stream_bad(kind: str) -> str:
    chunk: object = {"set": {1, 2}} if kind == "set" else object()
    try:
        RequestContext.get().stream.write(chunk)  # type: ignore[arg-type]
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return "accepted"
