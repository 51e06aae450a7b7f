"""Flow control in the claim, the same on both stores: rate limits (a token bucket
per function, a row of ``rate_limits``) and concurrency caps per key (running
calls counted per value of the function's ``concurrency_key``).

A claim runs in two steps inside its write transaction. ``blocked`` reads, without
locks, which functions are out of tokens and which (function, key) pairs are at
their cap, so that the claim query passes over their calls (they stay pending: a
wait, not a failure, and no attempt is used). ``admit`` then settles the claimed
call: it takes a token (an upsert that holds the bucket's row lock) and counts the
key's running calls under the key's lock (PostgreSQL; SQLite serializes writers).
When it refuses, the claimer rolls the claim back.
"""

from __future__ import annotations

from ._dialect import Execute
from ._records import Bucket, FlowLimits

# Float refills may land a hair under a whole token: count that as one.
_ONE = 1.0 - 1e-9
KEY_SEPARATOR = "\x1f"


def level(bucket: Bucket, tokens: float, updated_at_ms: float, now_ms: float) -> float:
    """Tokens in a bucket at ``now_ms``."""
    return min(bucket.burst, tokens + max(0.0, now_ms - updated_at_ms) * bucket.per_ms)


def blocked(
    execute: Execute, limits: FlowLimits, now_ms: float
) -> tuple[list[str], list[str]]:
    """Functions out of tokens, and ``function<US>key`` pairs at their cap."""
    empty: list[str] = []
    if limits.rates:
        for function, tokens, updated_at_ms in execute(
            "bucket_levels", {"names": list(limits.rates)}
        ).fetchall():
            if level(limits.rates[function], tokens, updated_at_ms, now_ms) < _ONE:
                empty.append(function)
    full_keys: list[str] = []
    if limits.key_caps:
        for function, key, count in execute(
            "running_key_counts", {"names": list(limits.key_caps)}
        ).fetchall():
            if count >= limits.key_caps[function]:
                full_keys.append(f"{function}{KEY_SEPARATOR}{key}")
    return empty, full_keys


def admit(
    execute: Execute,
    limits: FlowLimits,
    function: str,
    key: str | None,
    now_ms: float,
    *,
    counted: bool = True,
) -> bool:
    """Whether a call of ``function`` (``key``) may start now; takes its token.

    ``counted``: the call is already marked running (a claim), so the key's count
    includes it; otherwise (a call about to start in process) it does not.
    """
    cap = limits.key_caps.get(function)
    if cap is not None and key is not None:
        params = {"function": function, "key": key}
        execute("lock_key", params)
        running = int(execute("count_running_key", params).fetchone()[0])
        if running > cap if counted else running >= cap:
            return False
    bucket = limits.rates.get(function)
    if bucket is not None:
        taken = execute(
            "take_token",
            {
                "function": function,
                "now_ms": now_ms,
                "per_ms": bucket.per_ms,
                "burst": bucket.burst,
                "one": _ONE,
            },
        ).fetchone()
        if taken is None:
            return False
    return True


def wait_s(bucket: Bucket) -> float:
    """How long a call out of tokens waits before it asks again: a token's time,
    within bounds (a tight loop costs write transactions; a long one, latency)."""
    return min(max(1.0 / bucket.per_ms / 1000.0 / 4, 0.005), 0.5)


def waits(
    execute: Execute, request_id: str, now_ms: float
) -> list[tuple[str, str, str | None]]:
    """The request's pending calls that flow control holds back, by function:
    out of tokens (``"rate"``), or with calls of their key running (``"key"``)."""
    rows = execute(
        "flow_waits", {"request_id": request_id, "now_ms": now_ms, "one": _ONE}
    ).fetchall()
    return [(str(function), str(kind), key) for function, kind, key in rows]
