"""Is a call made with the arguments its checkpoint was recorded with?

Argument values are not part of a durable id, so a replay whose code now passes
other values reaches the same id: it must not be served the old output. Values
are compared as values, not as pickles: a set of strings or a dict built in
another order pickles differently in another process but is the same argument.
"""

from __future__ import annotations

import math
from typing import Any

from cairn import _serialization

_PRIMITIVES = (str, bytes, int, bool, type(None), complex)
_OBJECT_EQ: Any = object.__eq__


def changed(recorded: bytes | None, blob: bytes, function: str) -> str | None:
    """The first argument that differs from the recorded ones ("argument 0",
    "argument 'x'", "the arguments"), or None when they are the same."""
    if recorded is None or recorded == blob:
        return None
    try:
        old_args, old_kwargs = _serialization.loads(
            recorded, f"arguments of {function}()"
        )
    except Exception:  # recorded by code that is gone: nothing to compare with
        return None
    args, kwargs = _serialization.loads(blob, f"arguments of {function}()")
    if len(args) != len(old_args) or set(kwargs) != set(old_kwargs):
        return "the arguments"
    for position, (old, new) in enumerate(zip(old_args, args, strict=True)):
        if not same(old, new):
            return f"argument {position}"
    for name in sorted(kwargs):
        if not same(old_kwargs[name], kwargs[name]):
            return f"argument {name!r}"
    return None


def same(a: Any, b: Any, seen: set[tuple[int, int]] | None = None) -> bool:
    """Whether two values are the same by value (containers compared in a canonical
    way, objects by their own ``==`` or else by their state)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, _PRIMITIVES):
        return bool(a == b)
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    seen = set() if seen is None else seen
    if (id(a), id(b)) in seen:  # a cycle: judged where it started
        return True
    seen.add((id(a), id(b)))
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(
            same(x, y, seen) for x, y in zip(a, b, strict=True)
        )
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], seen) for k in a)
    if isinstance(a, set | frozenset):
        return bool(a == b)
    if getattr(type(a), "__eq__", None) is not _OBJECT_EQ:
        try:
            return bool(a == b)
        except Exception:  # an array's == is not a bool: compare its state
            pass
    return _same_state(a, b, seen)


def _same_state(a: Any, b: Any, seen: set[tuple[int, int]]) -> bool:
    try:
        reduced_a, reduced_b = a.__reduce_ex__(5), b.__reduce_ex__(5)
    except Exception:
        return False
    if isinstance(reduced_a, str) or isinstance(reduced_b, str):
        return bool(reduced_a == reduced_b)  # a global, pickled by name
    if len(reduced_a) != len(reduced_b) or reduced_a[0] is not reduced_b[0]:
        return False
    return all(
        same(x, y, seen) for x, y in zip(reduced_a[1:3], reduced_b[1:3], strict=True)
    )
