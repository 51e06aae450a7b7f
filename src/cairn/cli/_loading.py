"""Find user code for the CLI: import a file or module, pick the application, bind input.

Everything here fails with a ``click`` exception carrying one clear line: a usage
error (exit 2) when an argument names something that is not there, a plain
``ClickException`` (exit 1) when the user's code itself fails to import.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import keyword
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from cairn import _registry
from cairn.store import RequestRecord


def split_target(target: str) -> tuple[str, str | None]:
    """``"app.py:main"`` -> ``("app.py", "main")``; the app part is optional."""
    source, sep, app = target.rpartition(":")
    if not sep:
        return target, None
    if not source or not app:
        raise click.BadParameter(
            f"{target!r} is not FILE_OR_MODULE:APP (e.g. app.py:my_app or pkg.mod:my_app)",
            param_hint="'FILE_OR_MODULE:APP'",
        )
    return source, app


def _is_module_name(text: str) -> bool:
    return all(
        part.isidentifier() and not keyword.iskeyword(part) for part in text.split(".")
    )


def load_source(source: str) -> ModuleType:
    """Import a ``.py`` file or a dotted module name and return the module."""
    looks_like_path = source.endswith(".py") or "/" in source or os.sep in source
    if looks_like_path or not _is_module_name(source):
        path = Path(source)
        if not path.is_file():
            what = "directory, not a file" if path.is_dir() else "such file"
            raise click.UsageError(f"cannot load {source!r}: no {what}")
        return load_file(path)
    return load_module(source)


def _module_name_for(path: Path) -> str:
    stem = path.stem
    if _is_module_name(stem) and "." not in stem:
        existing = sys.modules.get(stem)
        if existing is None:
            return stem
        if Path(getattr(existing, "__file__", "") or "").resolve() == path:
            return stem
    cleaned = "".join(c if c.isalnum() else "_" for c in stem)
    return f"_cairn_app_{cleaned}"


def load_file(path: Path, module_name: str | None = None) -> ModuleType:
    """Import the file as a module (its directory goes first on ``sys.path``)."""
    path = path.resolve()
    name = module_name or _module_name_for(path)
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__file__", None) == str(path):
        return existing
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise click.UsageError(f"cannot load {str(path)!r} as Python code")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:
        del sys.modules[name]
        raise _import_failed(str(path), error) from error
    return module


def load_module(name: str) -> ModuleType:
    """Import a module by dotted name, from the working directory or installed."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is not None and (name + ".").startswith(error.name + "."):
            raise click.UsageError(
                f"cannot load {name!r}: no module of that name (and no such file)"
            ) from error
        raise _import_failed(f"module {name!r}", error) from error
    except (Exception, SystemExit) as error:
        raise _import_failed(f"module {name!r}", error) from error


def _import_failed(what: str, error: BaseException) -> click.ClickException:
    where = ""
    if isinstance(error, SyntaxError):
        where = f" ({error.filename}, line {error.lineno})"
        detail = error.msg
    else:
        detail = str(error)
        frames = traceback.extract_tb(error.__traceback__)
        user = [f for f in frames if "importlib" not in f.filename]
        if user:
            where = f" ({user[-1].filename}, line {user[-1].lineno})"
    return click.ClickException(
        f"importing {what} failed: {type(error).__name__}: {detail}{where}"
    )


def load_code_ref(code_ref: str) -> None:
    """Import the code a request recorded: a file path, or ``module@path``."""
    module, sep, path = code_ref.partition("@")
    file = Path(path if sep else code_ref)
    if not sep or (file.is_file() and "." not in module):
        if not file.is_file():
            raise click.UsageError(f"cannot load {str(file)!r}: no such file")
        load_file(file, module if sep else None)
        return
    if file.is_file():
        # A module of a package: its root goes on sys.path, then import by name.
        root = file.parent if file.name != "__init__.py" else file.parent.parent
        for _ in module.split(".")[1:]:
            root = root.parent
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        load_module(module)
        return
    try:
        load_module(module)
    except click.UsageError:
        raise click.UsageError(
            f"cannot load {path!r}: no such file (nor an importable {module!r})"
        ) from None


def describe(source: str) -> str:
    """How to name the source in messages."""
    return source if source.endswith(".py") else f"module {source!r}"


def find_application(
    module: ModuleType, source: str, app: str | None
) -> _registry.FunctionSpec:
    """The application named ``app`` (or the only one the module defines)."""
    defined = [s for s in _registry.applications() if s.module == module.__name__]
    names = ", ".join(sorted(s.name for s in defined)) or "none"
    if app is None:
        if len(defined) == 1:
            return defined[0]
        raise click.UsageError(
            f"name the application to run as {source}:APP "
            f"(applications in {describe(source)}: {names})"
        )
    spec = _registry.find(app)
    if spec is None:
        raise click.UsageError(
            f"no application named {app!r} in {describe(source)} "
            f"(applications there: {names})"
        )
    if spec.application is None:
        raise click.UsageError(
            f"{app!r} in {describe(source)} is a @function() but not an application: "
            "decorate it with @application() on top of @function()"
        )
    return spec


def parse_input(
    text: str | None, spec: _registry.FunctionSpec
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``--input`` JSON -> call arguments (see the ``run`` help for the rules)."""
    if text is None:
        return (), {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(
            f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}",
            param_hint="'--input'",
        ) from None
    parameters = list(inspect.signature(spec.fn).parameters.values())
    if spec.class_name is not None and parameters:
        parameters = parameters[1:]
    names = [
        p.name
        for p in parameters
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.KEYWORD_ONLY)
    ]
    keywords = [p.name for p in parameters if p.kind is not p.VAR_POSITIONAL]
    open_args = any(p.kind is p.VAR_POSITIONAL for p in parameters)
    open_kwargs = any(p.kind is p.VAR_KEYWORD for p in parameters)
    wrap = _wrap_hint(keywords)
    if isinstance(value, dict):
        unknown = [k for k in value if k not in keywords]
        if unknown and not open_kwargs:
            raise click.BadParameter(
                f"{spec.name} has no parameter {unknown[0]!r} "
                f"(parameters: {', '.join(keywords) or 'none'}){wrap}",
                param_hint="'--input'",
            )
        return (), value
    if isinstance(value, list):
        if len(value) > len(names) and not open_args:
            raise click.BadParameter(
                f"{spec.name} takes {len(names)} positional argument(s), "
                f"got a list of {len(value)}{wrap}",
                param_hint="'--input'",
            )
        return tuple(value), {}
    required = [
        n for n, p in zip(names, parameters, strict=False) if p.default is p.empty
    ]
    if len(keywords) == 1 or (names and required == names[:1]):
        return (value,), {}
    raise click.BadParameter(
        f"{spec.name} takes parameters ({', '.join(keywords) or 'none'}): pass a JSON "
        "object mapping their names to values, or a JSON array of them in order",
        param_hint="'--input'",
    )


def _wrap_hint(keywords: list[str]) -> str:
    if len(keywords) != 1:
        return ""
    return (
        f"; to pass a list or an object as the one argument, wrap it: "
        f'{{"{keywords[0]}": ...}}'
    )


def load_request_code(record: RequestRecord, app: str | None) -> None:
    """Load the code of a request to replay: from ``app`` (``--app``) when
    given, else from the location the request recorded."""
    if app is not None:
        source, name = split_target(app)
        load_source(source)
        if name is not None and name != record.application:
            raise click.BadParameter(
                f"request {record.id} is of application {record.application!r}, "
                f"not {name!r}",
                param_hint="'--app'",
            )
    elif record.code_ref is None:
        raise click.UsageError(
            f"request {record.id} recorded no code location: pass --app FILE_OR_MODULE"
        )
    else:
        try:
            load_code_ref(record.code_ref)
        except click.UsageError as error:
            raise click.UsageError(
                f"{error.format_message()} (recorded code location of request "
                f"{record.id}); pass --app FILE_OR_MODULE to load it from elsewhere"
            ) from None
    spec = _registry.find(record.application)
    if spec is None or spec.application is None:
        raise click.UsageError(
            f"the loaded code defines no application {record.application!r}"
            + ("" if app else " (pass --app FILE_OR_MODULE)")
        )
