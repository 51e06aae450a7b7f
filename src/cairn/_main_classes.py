"""Classes of ``__main__`` cross processes as the same class.

A program run as ``python app.py`` (Tensorlake's README pattern) defines its
pydantic models in ``__main__``. Plain pickle would store such a class by
reference to ``__main__``, which a process running other code (the CLI replaying
a request, the dashboard showing a value) cannot resolve; cloudpickle stores it by
value, but then every process that pickled it hands over a copy of its own, and
pydantic refuses a copy where the model is expected ("Input should be a valid
dictionary or instance of ChunkEmbeddings").

So a class of ``__main__`` is pickled as its script's path and qualified name,
with its by-value pickle as a fallback. Loading it takes the class of that name
from ``__main__`` when ``__main__`` is that script (the executor processes are
forked from it), else from a module loaded from that file (the CLI loads the
script under another name), else from the by-value pickle. Each process resolves
one (script, name) once, so all the values it loads share one class.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
from types import ModuleType
from typing import Any

import cloudpickle

_PROTOCOL = 5
_lock = threading.RLock()
# (script, qualified name) -> the class this process uses for it.
_resolved: dict[tuple[str | None, str], type] = {}
# class -> its by-value pickle, made once per class and process.
_by_value: dict[type, bytes] = {}


def is_main_class(obj: Any) -> bool:
    """Whether ``obj`` is a class of ``__main__`` that can be found by name."""
    return (
        isinstance(obj, type)
        and obj.__module__ == "__main__"
        and "<locals>" not in obj.__qualname__
    )


def reduce(cls: type) -> tuple[Any, tuple[str | None, str, bytes]]:
    """The pickle reduction of a class of ``__main__`` (see the module docstring)."""
    blob = _by_value.get(cls)
    if blob is None:
        blob = _by_value[cls] = bytes(cloudpickle.dumps(cls, protocol=_PROTOCOL))
    return load, (_script(sys.modules.get("__main__")), cls.__qualname__, blob)


def load(script: str | None, qualname: str, blob: bytes) -> type:
    """The class a ``reduce`` stands for, in this process."""
    key = (script, qualname)
    with _lock:
        found = _resolved.get(key)
        if found is None:
            found = _find(script, qualname)
            if found is None:
                found = pickle.loads(blob)
            _resolved[key] = found
    return found


def _script(module: ModuleType | None) -> str | None:
    path = getattr(module, "__file__", None)
    return os.path.realpath(path) if isinstance(path, str) else None


def _find(script: str | None, qualname: str) -> type | None:
    candidates = [sys.modules.get("__main__")]
    if script is not None:
        candidates += [m for m in list(sys.modules.values()) if _script(m) == script]
    for module in candidates:
        if module is None or _script(module) != script:
            continue
        found: Any = module
        for part in qualname.split("."):
            found = getattr(found, part, None)
        if isinstance(found, type) and found.__qualname__ == qualname:
            return found
    return None
