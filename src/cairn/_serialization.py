"""Values between functions are pickled; application inputs and outputs are JSON.

Pickling uses cloudpickle so that lambdas and locally defined classes survive,
and every value is serialized even when the call runs in the caller's process,
so that callers get copies and a value that cannot cross a process boundary
fails on the first run, not on the first crash.
"""

from __future__ import annotations

import functools
import inspect
import io
import json
import os
import pickle
import types
import typing
import warnings
from collections.abc import Callable
from typing import Any

import cloudpickle
import pydantic
import pydantic_core

from cairn import _main_classes, _values, errors

PICKLE_PROTOCOL = 5
# The most a value one call stores may take serialized (its arguments, its output,
# its state writes; CAIRN_MAX_VALUE_BYTES may lower it): a call's row holds three,
# and PostgreSQL takes at most 1 GB in one message. Over it, the value fails where
# it is made, for good, instead of a commit the database refuses.
MAX_VALUE_BYTES = 256 << 20


class _ByValueNeeded(Exception):
    pass


class _FastPickler(pickle.Pickler):
    """The C pickler, refusing what only cloudpickle can make portable."""

    def reducer_override(self, obj: Any) -> Any:
        if _main_classes.is_main_class(obj):
            return _main_classes.reduce(obj)
        # Plain pickle stores functions of __main__ by reference, which a replay
        # from another process (the CLI, a new script) could not load.
        if isinstance(obj, type | types.FunctionType) and obj.__module__ == "__main__":
            raise _ByValueNeeded
        return NotImplemented


class _PortablePickler(cloudpickle.Pickler):  # type: ignore[misc]  # untyped package
    """cloudpickle, keeping the classes of ``__main__`` one class across processes."""

    def reducer_override(self, obj: Any) -> Any:
        if _main_classes.is_main_class(obj):
            return _main_classes.reduce(obj)
        return super().reducer_override(obj)


# Exact types the picklers' hooks never see (the C pickler saves them itself), so
# ``pickle.dumps`` writes the very bytes ``_FastPickler`` would, without building
# a pickler per value.
_ATOMS = frozenset({int, float, str, bytes, bool, type(None)})


def is_atom(value: Any) -> bool:
    """Immutable and of a builtin scalar type: a copy of it is the value itself."""
    return type(value) in _ATOMS


def atoms_only(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Every argument is an atom (``is_atom``)."""
    atoms = _ATOMS
    for value in args:
        if type(value) not in atoms:
            return False
    for value in kwargs.values():
        if type(value) not in atoms:
            return False
    return True


def _pickle(value: Any) -> bytes:
    # The C pickler is several times faster for the common case; cloudpickle takes
    # over for lambdas, local classes and functions defined in __main__.
    if type(value) in _ATOMS:
        return pickle.dumps(value, PICKLE_PROTOCOL)
    buffer = io.BytesIO()
    try:
        _FastPickler(buffer, protocol=PICKLE_PROTOCOL).dump(value)
        return buffer.getvalue()
    except errors.SDKUsageError:
        raise  # a Function or a Future inside the value: no pickler can take it
    except Exception:
        return _portable_pickle(value)


def _portable_pickle(value: Any) -> bytes:
    buffer = io.BytesIO()
    _PortablePickler(buffer, protocol=PICKLE_PROTOCOL).dump(value)
    return buffer.getvalue()


def dumps(value: Any, what: str) -> bytes:
    """Pickle ``value``; ``what`` names it in the error ("argument 'x' of f").

    Raises:
        SerializationError: it cannot be pickled; also, as in Tensorlake, when it
            is or holds a Function or a Future (those refuse to be pickled).
    """
    try:
        data = _pickle(value)
    except Exception as error:
        raise errors.SerializationError(
            f"cannot serialize {what} ({type(value).__name__}): {error}"
        ) from error
    return sized(data, what)


@functools.cache
def _value_limit(setting: str | None) -> int:
    if setting is None:
        return MAX_VALUE_BYTES
    try:
        limit = int(setting)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_VALUE_BYTES:
        raise errors.SDKUsageError(
            f"CAIRN_MAX_VALUE_BYTES must be a number of bytes from 1 to "
            f"{MAX_VALUE_BYTES}, got {setting!r}"
        )
    return limit


def sized(data: bytes, what: str) -> bytes:
    """``data``, if it is not larger than a call may store.

    Raises:
        SerializationError: it is.
    """
    limit = _value_limit(os.environ.get("CAIRN_MAX_VALUE_BYTES"))
    if len(data) > limit:
        raise errors.SerializationError(
            f"{what} takes {len(data):,} bytes serialized, more than the {limit:,} "
            "a call may store (CAIRN_MAX_VALUE_BYTES): keep it elsewhere (a file, "
            "a bucket, a table) and pass where it is"
        )
    return data


def loads(data: bytes, what: str) -> Any:
    """Unpickle a value that ``dumps`` produced."""
    try:
        return pickle.loads(data)
    except Exception as error:
        raise errors.DeserializationError(
            f"cannot deserialize {what}: {error}"
        ) from error


def dumps_arguments(
    function_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> bytes:
    """Pickle a call's arguments, naming the first one that fails.

    Raises:
        SerializationError: as ``dumps``.
    """
    what = f"the arguments of {function_name}()"
    if atoms_only(args, kwargs):
        return sized(pickle.dumps((args, kwargs), PICKLE_PROTOCOL), what)
    try:
        data = _pickle((args, kwargs))
    except Exception as error:
        for position, value in enumerate(args):
            _check_one(value, f"argument {position} of {function_name}()")
        for name, value in kwargs.items():
            _check_one(value, f"argument {name!r} of {function_name}()")
        raise errors.SerializationError(f"cannot serialize {what}: {error}") from error
    return sized(data, what)


def _check_one(value: Any, what: str) -> None:
    try:
        _portable_pickle(value)
    except Exception as error:
        raise errors.SerializationError(
            f"cannot serialize {what} ({type(value).__name__}): {error}"
        ) from error


class JsonBoundary:
    """Validates an application's JSON input and encodes its output.

    Inputs are validated by pydantic against the parameters' type hints (a dict
    becomes a model, defaults are filled in); the output against the return hint.
    A parameter or return typed ``File`` (or ``HttpBody``) is raw bytes with a
    content type: the request's body, the response's body. A hint pydantic has
    no schema for does not stop an import: its values are checked by
    ``isinstance``, and one that must cross as JSON fails when it does.
    """

    def __init__(self, function: Callable[..., Any]) -> None:
        self.signature = inspect.signature(function)
        self.names = list(self.signature.parameters)
        self.hints = _type_hints(function)
        self.file_parameters: dict[str, type[_values.File]] = {
            name: hint
            for name in self.names
            if _is_file(hint := self.hints.get(name, Any))
        }
        self.parameters: dict[str, pydantic.TypeAdapter[Any]] = {
            name: _adapter(self.hints.get(name, Any), function)
            for name in self.names
            if name not in self.file_parameters
        }
        return_hint = self.hints.get("return", Any)
        self.file_output = _is_file(return_hint)
        self.output_is_any = return_hint is Any
        self.output = _adapter(Any if self.file_output else return_hint, function)

    def takes_file(self, key: int | str) -> bool:
        """Whether the parameter at this position (or of this name) is a File."""
        if isinstance(key, int):
            key = self.names[key] if 0 <= key < len(self.names) else ""
        return key in self.file_parameters

    def bind_input(
        self, args: list[Any], kwargs: dict[str, Any], application: str
    ) -> tuple[list[Any], dict[str, Any]]:
        """Validate JSON-decoded arguments; unknown extra arguments are ignored.

        Raises:
            SerializationError: a value does not match its parameter's type hint.
            SDKUsageError: a required input is missing.
        """
        names = self.names
        bound_args: list[Any] = []
        bound_kwargs: dict[str, Any] = {}
        for position, value in enumerate(args[: len(names)]):
            bound_args.append(self._validate(names[position], value, application))
        for name, value in kwargs.items():
            if name in self.signature.parameters and names.index(name) >= len(
                bound_args
            ):
                bound_kwargs[name] = self._validate(name, value, application)
        given = set(names[: len(bound_args)]) | set(bound_kwargs)
        missing = [
            name
            for name, parameter in self.signature.parameters.items()
            if name not in given and parameter.default is inspect.Parameter.empty
        ]
        if missing:
            raise errors.SDKUsageError(
                f"application {application!r} is missing required input "
                + ", ".join(repr(name) for name in missing)
            )
        return bound_args, bound_kwargs

    def _validate(self, name: str, value: Any, application: str) -> Any:
        kind = self.file_parameters.get(name)
        if kind is not None:
            file = _values.file_from_json(value, kind)
            if file is None:
                raise errors.SerializationError(
                    f"input {name!r} of application {application!r} must be a "
                    f"{kind.__name__} (raw bytes and a content type), got "
                    f"{type(value).__name__}"
                )
            return file
        # A File given to a parameter with another hint (or none) stays a File.
        value = _values.file_from_json(value) or value
        try:
            return self.parameters[name].validate_python(value)
        except pydantic.ValidationError as error:
            # Tensorlake's wording first, then which input of which application.
            raise errors.SerializationError(
                f"Failed to serialize '{_clipped(value)}' as "
                f"'{_hint_text(self.hints.get(name, Any))}' to json: input {name!r} "
                f"of application {application!r} is invalid: {_short(error)}"
            ) from error

    def encode_output(self, value: Any, application: str) -> bytes:
        """The output as JSON bytes, validated against the return type hint.

        A File (returned under a ``File`` hint or none) is stored in its JSON
        form, which the server answers as the raw body with its content type.
        """
        if self.file_output or (self.output_is_any and isinstance(value, _values.File)):
            if not isinstance(value, _values.File):
                raise errors.SerializationError(
                    f"output of application {application!r} must be a File, as "
                    f"its return type says, got {type(value).__name__}"
                )
            return sized(
                _values.file_json_bytes(value), f"output of application {application!r}"
            )
        try:
            data = self.output.dump_json(self.output.validate_python(value))
        except pydantic.ValidationError as error:
            raise errors.SerializationError(
                f"output of application {application!r} does not match its return "
                f"type: {_short(error)}"
            ) from error
        except pydantic_core.PydanticSerializationError as error:
            raise errors.SerializationError(
                f"output of application {application!r} is not JSON-serializable: {error}"
            ) from error
        return sized(data, f"output of application {application!r}")

    def decode_output(self, data: bytes) -> Any:
        """The output ``encode_output`` stored, as the caller gets it back."""
        file = _values.file_from_json_bytes(data)
        if file is not None:
            return file
        return self.output.validate_json(data)


@functools.lru_cache(maxsize=1024)
def boundary(function: Callable[..., Any]) -> JsonBoundary:
    """The ``JsonBoundary`` of an application function, built once."""
    return JsonBoundary(function)


def _is_file(hint: Any) -> bool:
    # Only a bare File hint is raw, as in Tensorlake (not list[File], File | None).
    return inspect.isclass(hint) and issubclass(hint, _values.File)


def _adapter(hint: Any, function: Callable[..., Any]) -> pydantic.TypeAdapter[Any]:
    try:
        return pydantic.TypeAdapter(hint)
    except pydantic.PydanticSchemaGenerationError:
        pass  # a class pydantic has no schema for: check values by isinstance
    try:
        return pydantic.TypeAdapter(
            hint, config=pydantic.ConfigDict(arbitrary_types_allowed=True)
        )
    except Exception as error:
        warnings.warn(
            f"pydantic cannot validate the type hint {_hint_text(hint)!r} of "
            f"{function.__qualname__!r} ({error}); its JSON values are not validated",
            stacklevel=5,
        )
        return pydantic.TypeAdapter(Any)


def _hint_text(hint: Any) -> str:
    return hint.__qualname__ if inspect.isclass(hint) else str(hint)


def _clipped(value: Any, limit: int = 200) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception as error:
        warnings.warn(
            f"cannot resolve the type hints of {function.__qualname__!r} ({error}); "
            "its JSON input and output are not validated",
            stacklevel=4,
        )
        return {}


def _short(error: pydantic.ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        location = ".".join(str(part) for part in item["loc"])
        parts.append(f"{location + ': ' if location else ''}{item['msg']}")
    return "; ".join(parts)


def encode_json_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """Encode the arguments of ``run_local_application`` as the request's JSON input.

    A File argument is stored in its JSON form (bytes in base64, content type).
    """
    adapter = _any_adapter()
    files_as_json = {
        "args": [_as_json(value) for value in args],
        "kwargs": {name: _as_json(value) for name, value in kwargs.items()},
    }
    try:
        data = adapter.dump_json(files_as_json)
    except pydantic_core.PydanticSerializationError as error:
        raise errors.SerializationError(
            f"application input is not JSON-serializable: {error}"
        ) from error
    return sized(data, "application input")


@functools.cache
def _any_adapter() -> pydantic.TypeAdapter[Any]:
    # Made once: building an adapter costs more than encoding a small input.
    return pydantic.TypeAdapter(Any)


def _as_json(value: Any) -> Any:
    return _values.file_to_json(value) if isinstance(value, _values.File) else value


def decode_json(data: bytes) -> Any:
    """Decode JSON bytes."""
    return json.loads(data)
