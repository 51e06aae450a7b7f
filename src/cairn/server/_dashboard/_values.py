"""Inputs and outputs as the dashboard shows them, decoded without running user code.

Application inputs and outputs are JSON: shown formatted. Values between functions
are pickles (cloudpickle), and unpickling runs whatever code a pickle names, so the
server never unpickles them for real: a restricted unpickler resolves every global
a pickle names to a harmless stand-in class of the same name (the approach of the
``pickle`` docs' "Restricting Globals"). Plain data (str, numbers, lists, dicts...)
comes out as itself and is shown as JSON; anything else is described by its type,
``pickled app.Point, 120 bytes``.
"""

from __future__ import annotations

import io
import json
import math
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# Pickles larger than this are described by size only, not decoded.
_DECODE_LIMIT_BYTES = 1 << 20
# Formatted JSON longer than this is cut (the full value is in the API).
_TEXT_LIMIT_CHARS = 20_000
_MAX_DEPTH = 60


@dataclass(frozen=True, kw_only=True)
class Shown:
    """A value ready to show."""

    json: bool
    """Whether ``text`` is formatted JSON (else it describes a pickle)."""
    text: str
    """The formatted JSON or the description."""


@dataclass(frozen=True, kw_only=True)
class Argument:
    """One argument of a call: its position or name, and its value."""

    name: str
    value: Shown


class _NotJson(Exception):
    pass


class _Opaque:
    """A stand-in for an object of a class the server does not load."""

    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> _Opaque:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Opaque:
        return type(self)()

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        """Ignored (a list subclass being rebuilt)."""

    def extend(self, values: Any) -> None:
        """Ignored (a list subclass being rebuilt)."""

    def add(self, value: Any) -> None:
        """Ignored (a set subclass being rebuilt)."""


def _stand_in(module: str, name: str) -> type[_Opaque]:
    return type(name, (_Opaque,), {"__module__": module, "__slots__": ()})


def _skeleton_class(*args: Any) -> type[_Opaque]:
    # cloudpickle rebuilds a class defined in __main__ (or locally) by value:
    # _make_skeleton_class(type, name, bases, {"__module__": ...}, id, extra).
    name = args[1] if len(args) > 1 and isinstance(args[1], str) else "object"
    extra = args[3] if len(args) > 3 and isinstance(args[3], dict) else {}
    module = extra.get("__module__")
    return _stand_in(module if isinstance(module, str) else "__main__", name)


def _reconstructor(*args: Any) -> _Opaque:
    # copyreg._reconstructor(cls, base, state): an instance of cls.
    cls = args[0] if args else None
    if isinstance(cls, type) and issubclass(cls, _Opaque):
        return cls()
    return _stand_in("copyreg", "object")()


def _function(*args: Any) -> _Opaque:
    return _stand_in("builtins", "function")()


_SPECIAL: dict[tuple[str, str], Callable[..., Any]] = {
    ("cloudpickle.cloudpickle", "_make_skeleton_class"): _skeleton_class,
    ("cloudpickle.cloudpickle", "_make_skeleton_enum"): _skeleton_class,
    ("cloudpickle.cloudpickle", "_make_function"): _function,
    ("copyreg", "_reconstructor"): _reconstructor,
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        special = _SPECIAL.get((module, name))
        return special if special is not None else _stand_in(module, name)

    def persistent_load(self, pid: Any) -> Any:
        return _stand_in("pickle", "persistent")()


def _safe_loads(data: bytes) -> Any:
    return _Unpickler(io.BytesIO(data)).load()


def type_name(value: Any) -> str:
    """``int``, ``app.Point``: the type of a decoded value, as a user wrote it."""
    kind = type(value)
    module = kind.__module__
    if module == "builtins":
        return kind.__qualname__
    return f"{module}.{kind.__qualname__}"


def _jsonable(value: Any, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        raise _NotJson
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotJson
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(item, depth + 1) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise _NotJson
        return {key: _jsonable(item, depth + 1) for key, item in value.items()}
    raise _NotJson


def _clip(text: str) -> str:
    if len(text) <= _TEXT_LIMIT_CHARS:
        return text
    cut = len(text) - _TEXT_LIMIT_CHARS
    return f"{text[:_TEXT_LIMIT_CHARS]}\n… ({cut:,} more characters)"


def _pretty(value: Any) -> str:
    return _clip(json.dumps(value, indent=2, ensure_ascii=False))


def _size(data: bytes) -> str:
    return f"{len(data):,} byte" + ("" if len(data) == 1 else "s")


def shown(value: Any, size: str | None = None) -> Shown:
    """A decoded value: JSON when it is plain data, else described by its type."""
    try:
        return Shown(json=True, text=_pretty(_jsonable(value)))
    except (_NotJson, RecursionError):
        described = f"pickled {type_name(value)}"
        if isinstance(value, list | tuple | dict | set | frozenset):
            count = len(value)
            described += f" of {count} item" + ("" if count == 1 else "s")
        return Shown(json=False, text=f"{described}, {size}" if size else described)


def json_value(data: bytes | None) -> Shown:
    """Stored JSON bytes (an application's input or output), formatted."""
    if data is None:
        return Shown(json=True, text="null")
    try:
        return Shown(json=True, text=_pretty(json.loads(data)))
    except (ValueError, RecursionError):
        return Shown(json=False, text=f"not JSON, {_size(data)}")


def _decode(data: bytes) -> Any:
    """The value of a pickle with stand-ins for its classes; raises if it cannot."""
    if len(data) > _DECODE_LIMIT_BYTES:
        raise ValueError("too large to decode")
    return _safe_loads(data)


def pickled_value(data: bytes | None) -> Shown:
    """A call's pickled output: JSON when it is plain data, else its type and size."""
    if data is None:
        return Shown(json=False, text="no value recorded")
    try:
        value = _decode(data)
    except Exception:
        return Shown(json=False, text=f"pickled value, {_size(data)}")
    return shown(value, _size(data))


def arguments(data: bytes | None, names: Sequence[str] = ()) -> list[Argument] | Shown:
    """A call's recorded arguments, one by one, or what they are if not readable.

    A call's arguments are a pickled ``(args, kwargs)``; an application call's are
    its JSON input ``{"args": [...], "kwargs": {...}}``. Positional arguments are
    labelled with ``names`` (the function's parameters) where known.
    """
    if data is None:
        return Shown(json=False, text="no arguments recorded")
    value: Any
    if data[:1] == b"\x80":  # the PROTO opcode every pickle Cairn writes starts with
        try:
            value = _decode(data)
        except Exception:
            return Shown(json=False, text=f"pickled arguments, {_size(data)}")
        if not (isinstance(value, tuple) and len(value) == 2):
            return shown(value, _size(data))
        args, kwargs = value
    else:
        try:
            value = json.loads(data)
        except (ValueError, RecursionError):
            return Shown(json=False, text=f"arguments, {_size(data)}")
        if not isinstance(value, dict):
            return shown(value)
        args, kwargs = value.get("args", []), value.get("kwargs", {})
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        return shown(value, _size(data))
    labels = [*names[: len(args)], *map(str, range(len(names), len(args)))]
    found = [
        Argument(name=n, value=shown(v)) for n, v in zip(labels, args, strict=True)
    ]
    found += [Argument(name=str(k), value=shown(v)) for k, v in kwargs.items()]
    return found
