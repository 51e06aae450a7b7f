"""What a local run prints to stderr about its failures, as Tensorlake's local mode.

Tensorlake prints every function call that failed for good as ``FunctionError:
Tensorlake Function Call Future f(args...) failed due to exception:`` followed by
the exception's traceback, because its request only says ``function_error``.
People (and Tensorlake's own tests) read the cause there, so a local run of Cairn
prints the same block for each call of the run that failed for good, in the order
they failed: a caller that caught the failure does not hide it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from cairn import _serialization
from cairn.store import CallRecord, RequestRecord, Store

# Larger arguments are not loaded just to be shown (a call may take 100 MB).
_MAX_SHOWN_ARGUMENTS_BYTES = 64 * 1024
# Tensorlake's limit on the text of one value in these blocks.
_MAX_VALUE_CHARS = 1000


def print_failures(store: Store, finished: RequestRecord) -> None:
    """Print each call of the request's latest run (``finished``) that failed for
    good; read only if an attempt of the run failed."""
    if not finished.attempts_failed:
        return
    blocks = [_block(store, call) for call in store.failed_calls(finished.id)]
    for block in blocks:
        # Read sys.stderr now, not at import: callers (and tests) may replace it.
        print("\n", file=sys.stderr)
        print(block, file=sys.stderr, flush=True)


def _block(store: Store, call: CallRecord) -> str:
    error = call.error or {}
    cause = error.get("traceback") or f"{error.get('type')}: {error.get('message')}\n"
    return (
        f"FunctionError: Tensorlake Function Call Future {_call_text(store, call)} "
        f"failed due to exception: \n{cause}"
    ).rstrip("\n")


def _call_text(store: Store, call: CallRecord) -> str:
    arguments = _arguments(store, call)
    if arguments is None:
        return f"{call.function}(...)"
    args, kwargs = arguments
    lines = [f"  {_value_text(value)},\n" for value in args]
    lines += [f"  {name}={_value_text(value)},\n" for name, value in kwargs.items()]
    return f"{call.function}({chr(10) if lines else ''}{''.join(lines)})"


def _arguments(
    store: Store, call: CallRecord
) -> tuple[list[Any], dict[str, Any]] | None:
    """The call's arguments as it got them, or None when they are not shown."""
    if call.kind not in ("app", "call"):
        return None  # map items and reduce steps store other shapes
    data = store.get_call_args(call.id)
    if data is None or len(data) > _MAX_SHOWN_ARGUMENTS_BYTES:
        return None
    try:
        if call.kind == "app":
            payload = json.loads(data)
            return list(payload["args"]), dict(payload["kwargs"])
        args, kwargs = _serialization.loads(data, f"arguments of {call.function}()")
        return list(args), dict(kwargs)
    except Exception:
        return None  # the block is still worth printing without them


def _value_text(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"
    if len(text) > _MAX_VALUE_CHARS:
        return text[: _MAX_VALUE_CHARS - 3] + "..."
    return text
