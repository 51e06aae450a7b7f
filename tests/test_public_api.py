"""The public surface: ``cairn.__all__`` and the names Tensorlake programs import."""

from __future__ import annotations

import ast
import builtins
import inspect
import pickle
import traceback
from pathlib import Path

import pytest

import cairn
from cairn import errors

# ``tensorlake.applications.__all__`` (SDK 0.5.162): every name a Tensorlake program
# can import, so that ``from tensorlake.applications import X`` -> ``from cairn
# import X`` works.
TENSORLAKE_NAMES = [
    "application",
    "ApplicationCapability",
    "cls",
    "run_local_application",
    "run_remote_application",
    "function",
    "DeserializationError",
    "File",
    "Function",
    "Future",
    "Headers",
    "HttpBody",
    "FunctionError",
    "TimeoutError",
    "FunctionProgress",
    "Image",
    "InternalError",
    "RemoteAPIError",
    "Request",
    "RequestContext",
    "RequestFailed",
    "RequestState",
    "RequestError",
    "RequestNotFinished",
    "Retries",
    "RETURN_WHEN",
    "SDKUsageError",
    "SerializationError",
    "Logger",
    "TensorlakeException",
    "TensorlakeError",
]


def _names_bound_in_init() -> set[str]:
    """Public names that ``cairn/__init__.py`` binds at module level."""
    tree = ast.parse(Path(inspect.getfile(cairn)).read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(
                alias.asname or alias.name.partition(".")[0] for alias in node.names
            )
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names.add(target.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
    return {name for name in names if not name.startswith("_")}


def test_all_is_sorted():
    # Sorted as ruff's RUF022 ("isort-style": SCREAMING_CASE, CamelCase, then lower).
    def isort_key(name: str) -> tuple[int, str]:
        if name.isupper() and len(name) > 1:
            return (0, name)
        if name[:1].isupper():
            return (1, name)
        return (2, name)

    assert cairn.__all__ == sorted(cairn.__all__, key=isort_key)
    assert len(cairn.__all__) == len(set(cairn.__all__)), "duplicates in __all__"


def test_all_is_complete():
    bound = _names_bound_in_init()
    missing = bound - set(cairn.__all__)
    assert not missing, f"public names missing from cairn.__all__: {sorted(missing)}"


def test_every_name_in_all_exists():
    absent = [name for name in cairn.__all__ if not hasattr(cairn, name)]
    assert not absent


def test_star_import_gives_exactly_all():
    namespace: dict[str, object] = {}
    exec("from cairn import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == set(cairn.__all__)


@pytest.mark.parametrize("name", TENSORLAKE_NAMES)
def test_tensorlake_name_is_exported(name):
    assert name in cairn.__all__
    exec(f"from cairn import {name}", {})


def test_the_installed_tensorlake_exports_nothing_cairn_lacks():
    from tensorlake.applications import interface

    assert sorted(set(interface.__all__) - set(cairn.__all__)) == []


def test_tensorlake_bases_catch_every_cairn_error():
    assert issubclass(cairn.TensorlakeError, cairn.TensorlakeException)
    assert issubclass(cairn.CairnError, cairn.TensorlakeError)
    with pytest.raises(cairn.TensorlakeError):
        raise cairn.FunctionError("child failed")


def test_image_records_its_builder_operations():
    image = (
        cairn.Image(name="ocr", base_image="python:3.12-slim")
        .run("apt-get update")
        .run(["pip install a", "pip install b"], options={"mount": "cache"})
        .env("MODE", "fast")
        .copy("src", "/app/src")
        .add("https://example.com/model.bin", "/models/")
        .workdir("/app")
    )
    assert image.name == "ocr" and image.tag == "latest"
    assert image.base_image == "python:3.12-slim"
    assert image.operations == [
        ("run", ["apt-get update"], {}),
        ("run", ["pip install a", "pip install b"], {"mount": "cache"}),
        ("env", ["MODE", "fast"], {}),
        ("copy", ["src", "/app/src"], {}),
        ("add", ["https://example.com/model.bin", "/models/"], {}),
        ("workdir", ["/app"], {}),
    ]
    with pytest.raises(cairn.SDKUsageError, match="does not build images"):
        image.build()


def test_error_classes_are_the_ones_of_the_errors_module():
    for name in errors.__all__:
        assert getattr(cairn, name) is getattr(errors, name)


def test_error_hierarchy():
    assert issubclass(cairn.RequestError, cairn.RequestFailed)
    assert issubclass(cairn.RequestFailed, cairn.CairnError)
    assert issubclass(cairn.FunctionTimeout, cairn.FunctionError)
    assert issubclass(cairn.FunctionError, cairn.CairnError)
    assert issubclass(cairn.TimeoutError, cairn.CairnError)
    assert issubclass(cairn.TimeoutError, builtins.TimeoutError)
    assert cairn.TimeoutError is not builtins.TimeoutError
    # A child's timeout is a failed call, not a wait's deadline (TENSORLAKE-API §8.2).
    assert not issubclass(cairn.FunctionTimeout, builtins.TimeoutError)
    assert issubclass(cairn.CairnError, Exception)
    for name in (
        "RequestNotFinished",
        "SDKUsageError",
        "SerializationError",
        "DeserializationError",
        "ReplayMismatch",
        "RemoteAPIError",
        "InternalError",
        "StoreError",
        "RequestNotFound",
    ):
        assert issubclass(getattr(cairn, name), cairn.CairnError), name


def test_every_error_has_its_own_stable_code():
    classes = [
        getattr(errors, name)
        for name in errors.__all__
        if issubclass(getattr(errors, name), errors.CairnError)
    ]
    codes = [cls.code for cls in classes]
    assert len(set(codes)) == len(codes), codes
    assert all(isinstance(code, str) and code for code in codes)


def test_caught_as_builtin_timeout_error():
    with pytest.raises(builtins.TimeoutError):
        raise cairn.TimeoutError()
    assert str(cairn.TimeoutError()) == "Timed out."


def test_request_error_keeps_its_message_and_reason():
    error = cairn.RequestError("amount too large")
    assert error.message == "amount too large"
    assert str(error) == "amount too large"
    assert error.reason == "request_error"
    failed = cairn.RequestFailed("function_error")
    assert failed.reason == "function_error"
    assert str(failed) == "function_error"


def test_request_failed_is_its_reason_and_keeps_the_details_as_a_note():
    # Tensorlake: str(RequestFailed) is the outcome code. The details stay on the
    # exception, and a traceback still shows them.
    failed = cairn.RequestFailed(
        "function_error",
        "ValueError: bad row 3",
        function_name="parse",
        error_type="ValueError",
        error_message="bad row 3",
        traceback="Traceback (most recent call last): ...",
    )
    assert str(failed) == "function_error"
    assert failed.details == "ValueError: bad row 3"
    assert (failed.function_name, failed.error_type) == ("parse", "ValueError")
    assert failed.error_message == "bad row 3"
    assert failed.__notes__ == ["ValueError: bad row 3"]
    shown = "".join(traceback.format_exception(failed))
    assert "RequestFailed: function_error\nValueError: bad row 3" in shown
    again = pickle.loads(pickle.dumps(failed))
    assert (str(again), again.details) == ("function_error", failed.details)


def test_remote_api_error_carries_status_code():
    error = cairn.RemoteAPIError(404, "no such request")
    assert error.status_code == 404
    assert "no such request" in str(error)
