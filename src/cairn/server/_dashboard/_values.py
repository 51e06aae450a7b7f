"""Inputs and outputs as the dashboard shows them, decoded without running user code.

Application inputs and outputs are JSON: shown formatted. Values between functions
are pickles (cloudpickle), and unpickling runs whatever code a pickle names, so the
server never unpickles them for real: a restricted unpickler resolves every global
a pickle names to a harmless stand-in class of the same name (the approach of the
``pickle`` docs' "Restricting Globals"). Plain data (str, numbers, lists, dicts...)
comes out as itself and is shown as JSON; an object as the fields its pickle
gives it, its type first (``{"__type__": "app.Point", "x": 1}``); anything else
is described by its type, ``pickled datetime.date, 52 bytes``.

A value's text is built under a budget of characters and stops as soon as the
budget is spent, never after: a pickle of a few bytes can share one list at every
level (``x = [x, x]`` 22 times is 149 bytes and 4 million leaves), so the size of
what a value expands to is unrelated to its size stored. Past the budget the page
shows the start and offers the download (``Shown.cut``).

This module needs the standard library only: ``_decoding`` runs it as a script in
a child process to decode pickles (``main``), because unpickling itself can take
memory or time without bound, in C code no thread can be stopped in.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import pickle
import resource
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

# Pickles and JSON texts larger than this are described by size only, not decoded.
DECODE_LIMIT_BYTES = 1 << 20
# The text of one value stops here (the full value is in the API).
VALUE_CHARS = 20_000
# The text of all the arguments of a call stops here (each also stops at VALUE_CHARS).
ARGUMENTS_CHARS = 100_000
_MAX_DEPTH = 60
# Distinct globals one pickle may name (each becomes a new stand-in class).
_MAX_CLASSES = 10_000
# The decoding child's limits: its parent kills it long before the alarm rings;
# the alarm (whose default action ends the process, even inside C code) only
# matters if the parent died meanwhile.
_CHILD_MEMORY_BYTES = 768 << 20
_CHILD_ALARM_S = 10


@dataclass(frozen=True, kw_only=True)
class Shown:
    """A value ready to show."""

    json: bool
    """Whether ``text`` is formatted JSON (else it describes the value)."""
    text: str
    """The formatted JSON or the description."""
    cut: bool = False
    """Whether the value is too large to show whole: ``text`` is its start, or only
    says what it is (default False)."""


@dataclass(frozen=True, kw_only=True)
class Argument:
    """One argument of a call: its position or name, and its value."""

    name: str
    value: Shown


Arguments = list[Argument] | Shown


class _NotJson(Exception):
    pass


class _Opaque:
    """A stand-in for an object of a class the server does not load; it keeps the
    state the pickle gives it (its fields), to be shown."""

    __slots__ = ("_cairn_state",)

    def __new__(cls, *args: Any, **kwargs: Any) -> _Opaque:
        made = object.__new__(cls)
        made._cairn_state = list(args) if args else None
        return made

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Opaque:
        return type(self)()

    def __setstate__(self, state: Any) -> None:
        self._cairn_state = state

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


def _main_class(*args: Any) -> type[_Opaque]:
    # Cairn pickles a class of __main__ as _main_classes.load(script, name, blob).
    name = args[1] if len(args) > 1 and isinstance(args[1], str) else "object"
    return _stand_in("__main__", name)


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
    ("cairn._main_classes", "load"): _main_class,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self._classes: dict[tuple[str, str], type[_Opaque]] = {}

    def find_class(self, module: str, name: str) -> Any:
        special = _SPECIAL.get((module, name))
        if special is not None:
            return special
        key = (module, name)
        if key not in self._classes:
            if len(self._classes) >= _MAX_CLASSES:
                raise pickle.UnpicklingError("too many classes")
            self._classes[key] = _stand_in(module, name)
        return self._classes[key]

    def persistent_load(self, pid: Any) -> Any:
        return _stand_in("pickle", "persistent")()


def type_name(value: Any) -> str:
    """``int``, ``app.Point``: the type of a decoded value, as a user wrote it."""
    kind = type(value)
    module = kind.__module__
    if module == "builtins":
        return kind.__qualname__
    return f"{module}.{kind.__qualname__}"


# -- bounded JSON text ----------------------------------------------------------------


class _Budget:
    """Characters still to show, shared by the values of one page part."""

    def __init__(self, chars: int) -> None:
        self.left = chars


def _string(text: str) -> str:
    # Only the start of a long string can be shown; quoting all of it is waste.
    quoted = json.dumps(text[: VALUE_CHARS + 1], ensure_ascii=False)
    try:
        quoted.encode()
    except UnicodeEncodeError:  # a lone surrogate: escape it, as JSON can
        quoted = json.dumps(text[: VALUE_CHARS + 1])
    return quoted


def _pieces(value: Any, pad: str) -> Iterator[str]:
    """``json.dumps(value, indent=2)``, a piece at a time (raises ``_NotJson``)."""
    if len(pad) > 2 * _MAX_DEPTH:
        raise _NotJson
    if value is None or isinstance(value, bool):
        yield {None: "null", True: "true", False: "false"}[value]
    elif isinstance(value, int):
        try:
            yield int.__repr__(value)
        except ValueError:  # more digits than int -> str converts
            raise _NotJson from None
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _NotJson
        yield float.__repr__(value)
    elif isinstance(value, str):
        yield _string(value)
    elif isinstance(value, _Opaque):
        fields = _fields(value)
        if len(fields) == 1:  # nothing but its type: described, not shown
            raise _NotJson
        yield from _pieces(fields, pad)
    elif isinstance(value, list | tuple | dict):
        if not value:
            yield "{}" if isinstance(value, dict) else "[]"
            return
        inner = pad + "  "
        yield "{" if isinstance(value, dict) else "["
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for index, (key, item) in enumerate(items):
            yield ("\n" if index == 0 else ",\n") + inner
            if isinstance(value, dict):
                if not isinstance(key, str):
                    raise _NotJson
                yield _string(key) + ": "
            yield from _pieces(item, inner)
        yield "\n" + pad + ("}" if isinstance(value, dict) else "]")
    else:
        raise _NotJson


def _fields(value: _Opaque) -> dict[str, Any]:
    """An object as the fields its pickle gave it, its type first (``__type__``)."""
    found: dict[str, Any] = {"__type__": type_name(value)}
    state = value._cairn_state
    if isinstance(state, tuple) and len(state) == 2:  # (__dict__, slots)
        merged: dict[Any, Any] = {}
        for part in state:
            if isinstance(part, dict):
                merged.update(part)
        state = merged
    if isinstance(state, dict):
        inner = state.get("__dict__")  # a pydantic model's fields
        items = inner if isinstance(inner, dict) else state
        for key, item in items.items():
            if isinstance(key, str) and not key.startswith("__pydantic"):
                found[key] = item
    elif state is not None:
        found["__state__"] = state
    return found


def _render(value: Any, budget: _Budget) -> Shown:
    """A value's JSON text, cut where the budget ends (raises ``_NotJson``)."""
    limit = min(VALUE_CHARS, budget.left)
    pieces: list[str] = []
    size = 0
    for piece in _pieces(value, ""):
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            budget.left -= limit
            text = "".join(pieces)[:limit]
            return Shown(json=True, text=f"{text}\n…", cut=True)
    budget.left -= size
    return Shown(json=True, text="".join(pieces))


def _size(data: bytes) -> str:
    return f"{len(data):,} byte" + ("" if len(data) == 1 else "s")


def shown(value: Any, budget: _Budget, size: str | None = None) -> Shown:
    """A decoded value: JSON when it is plain data, else described by its type."""
    if budget.left <= 0:
        return Shown(json=False, text=f"{type_name(value)}, not shown", cut=True)
    try:
        return _render(value, budget)
    except (_NotJson, RecursionError):
        described = f"pickled {type_name(value)}"
        if isinstance(value, list | tuple | dict | set | frozenset):
            count = len(value)
            described += f" of {count:,} item" + ("" if count == 1 else "s")
        return Shown(json=False, text=f"{described}, {size}" if size else described)


def _parse_json(data: bytes) -> Any:
    """Stored JSON text's value; raises ValueError past the limit or if not JSON."""
    if len(data) > DECODE_LIMIT_BYTES:
        raise OverflowError
    return json.loads(data)


def json_value(data: bytes | None) -> Shown:
    """Stored JSON bytes (an application's input or output), formatted."""
    if data is None:
        return Shown(json=True, text="null")
    try:
        value = _parse_json(data)
    except OverflowError:
        return Shown(json=False, text=f"JSON, {_size(data)}", cut=True)
    except (ValueError, RecursionError):
        return Shown(json=False, text=f"not JSON, {_size(data)}")
    return shown(value, _Budget(VALUE_CHARS))


def is_pickle(data: bytes) -> bool:
    """Whether stored arguments are pickled (a call's), not JSON (an application's)."""
    return data[:1] == b"\x80"  # the PROTO opcode every pickle Cairn writes starts with


def _decode(data: bytes) -> Any:
    """The value of a pickle with stand-ins for its classes; raises if it cannot."""
    if len(data) > DECODE_LIMIT_BYTES:
        raise OverflowError
    return _Unpickler(data).load()


def pickled_value(data: bytes | None) -> Shown:
    """A call's pickled output: JSON when it is plain data, else its type and size."""
    if data is None:
        return Shown(json=False, text="no value recorded")
    try:
        value = _decode(data)
    except Exception as error:
        too_large = isinstance(error, OverflowError | MemoryError)
        return Shown(json=False, text=f"pickled value, {_size(data)}", cut=too_large)
    return shown(value, _Budget(VALUE_CHARS), _size(data))


def undecoded(data: bytes | None, what: str = "value") -> Shown:
    """What a pickle is when decoding it took too long or too much memory."""
    size = "" if data is None else f", {_size(data)}"
    return Shown(json=False, text=f"pickled {what}{size}", cut=True)


def arguments(data: bytes | None, names: Sequence[str] = ()) -> Arguments:
    """A call's recorded arguments, one by one, or what they are if not readable.

    A call's arguments are a pickled ``(args, kwargs)``; an application call's are
    its JSON input ``{"args": [...], "kwargs": {...}}``. Positional arguments are
    labelled with ``names`` (the function's parameters) where known.
    """
    if data is None:
        return Shown(json=False, text="no arguments recorded")
    budget = _Budget(ARGUMENTS_CHARS)
    value: Any
    if is_pickle(data):
        try:
            value = _decode(data)
        except Exception as error:
            too_large = isinstance(error, OverflowError | MemoryError)
            return Shown(
                json=False, text=f"pickled arguments, {_size(data)}", cut=too_large
            )
        if not (isinstance(value, tuple) and len(value) == 2):
            return shown(value, budget, _size(data))
        args, kwargs = value
    else:
        try:
            value = _parse_json(data)
        except OverflowError:
            return Shown(json=False, text=f"arguments, {_size(data)}", cut=True)
        except (ValueError, RecursionError):
            return Shown(json=False, text=f"arguments, {_size(data)}")
        if not isinstance(value, dict):
            return shown(value, budget)
        args, kwargs = value.get("args", []), value.get("kwargs", {})
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        return shown(value, budget, _size(data))
    labels = [*names[: len(args)], *map(str, range(len(names), len(args)))]
    found = [
        Argument(name=n, value=shown(v, budget))
        for n, v in zip(labels, args, strict=True)
    ]
    found += [Argument(name=str(k), value=shown(v, budget)) for k, v in kwargs.items()]
    return found


# -- the decoding child ---------------------------------------------------------------


def to_wire(found: Arguments) -> Any:
    """A result as JSON-able data (what the child answers)."""
    if isinstance(found, Shown):
        return {"shown": dataclasses.asdict(found)}
    return {
        "arguments": [
            {"name": item.name, "value": dataclasses.asdict(item.value)}
            for item in found
        ]
    }


def _safe(text: str) -> str:
    # A pickle's strings and class names may hold lone surrogates, which no page
    # can be encoded with.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _shown_of(data: Any) -> Shown:
    return Shown(
        json=bool(data["json"]), text=_safe(data["text"]), cut=bool(data["cut"])
    )


def from_wire(data: Any) -> Arguments:
    """A result from ``to_wire``; raises (KeyError, TypeError) if malformed."""
    if "shown" in data:
        return _shown_of(data["shown"])
    return [
        Argument(name=_safe(item["name"]), value=_shown_of(item["value"]))
        for item in data["arguments"]
    ]


def main() -> None:  # pragma: no cover - runs in the decoding child
    """Decode the pickles sent on stdin; answer their results on stdout as JSON.

    Stdin is one JSON line ``{"jobs": [{"kind", "size", "names"}]}`` followed by
    each job's bytes (``size`` of them; -1 for none).
    """
    resource.setrlimit(resource.RLIMIT_AS, (_CHILD_MEMORY_BYTES, _CHILD_MEMORY_BYTES))
    signal.alarm(_CHILD_ALARM_S)
    header = json.loads(sys.stdin.buffer.readline())
    results = []
    for job in header["jobs"]:
        size = job["size"]
        data = None if size < 0 else sys.stdin.buffer.read(size)
        if job["kind"] == "arguments":
            results.append(to_wire(arguments(data, job["names"])))
        else:
            results.append(to_wire(pickled_value(data)))
    sys.stdout.write(json.dumps(results))


if __name__ == "__main__":  # pragma: no cover
    main()
