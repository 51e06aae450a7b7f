"""Decoration-time validation: mistakes fail at import, naming function and parameter.

Function names are one namespace for the whole test session, so every decorated
function is defined inside its test (its ``__qualname__`` includes the test name).
"""

from __future__ import annotations

import inspect
import math
import pickle
import sys
import types

import cloudpickle
import pytest

import cairn
from cairn import Retries, SDKUsageError, _registry, application, cls, function


def _plain(x: int) -> int:
    return x


# -- decorators must be called -----------------------------------------------------------------
def test_bare_function_decorator_must_be_called():
    with pytest.raises(SDKUsageError, match="must be called") as error:

        @function
        def bare_function(x: int) -> int:
            return x

    assert "bare_function" in str(error.value)


def test_bare_application_decorator_must_be_called():
    with pytest.raises(SDKUsageError, match="must be called") as error:

        @application
        @function()
        def bare_application(x: int) -> int:
            return x

    assert "bare_application" in str(error.value)


def test_bare_cls_decorator_must_be_called():
    with pytest.raises(SDKUsageError, match="must be called") as error:

        @cls  # type: ignore[arg-type]
        class BareCls:
            pass

    assert "BareCls" in str(error.value)


def test_called_decorators_return_a_function_that_mimics_the_original():
    @function(description="doubles")
    def doubled(x: int) -> int:
        """Twice x."""
        return 2 * x

    assert isinstance(doubled, cairn.Function)
    assert doubled.name == doubled.__qualname__
    assert doubled.name.endswith("doubled")
    assert "test_called_decorators" in doubled.name
    assert doubled.__doc__ == "Twice x."
    assert doubled.__name__ == "doubled"
    assert inspect.signature(doubled) == inspect.signature(_plain)
    assert not inspect.iscoroutinefunction(doubled)


def test_async_function_stays_a_coroutine_function():
    # TENSORLAKE-API §3: the Function mimics the original, so frameworks that
    # dispatch on inspect.iscoroutinefunction keep working (on every Python).
    @function()
    async def doubled_async(x: int) -> int:
        return 2 * x

    assert inspect.iscoroutinefunction(doubled_async)


def test_decorated_function_called_outside_a_request_is_a_usage_error():
    @function()
    def outside(x: int) -> int:
        return x

    with pytest.raises(SDKUsageError, match="inside a request"):
        outside(1)


# -- timeout -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "timeout", [0, -1, 172_801, "10", True, math.nan, math.inf, None]
)
def test_bad_timeout_is_rejected(timeout):
    with pytest.raises(SDKUsageError) as error:

        @function(timeout=timeout)
        def with_bad_timeout() -> None:
            pass

    message = str(error.value)
    assert "timeout" in message
    assert "with_bad_timeout" in message


@pytest.mark.parametrize("timeout", [1, 172_800, 300])
def test_timeout_bounds_are_accepted(timeout):
    @function(timeout=timeout)
    def with_good_timeout() -> None:
        pass

    assert with_good_timeout._spec.timeout_s == timeout


def test_default_timeout_is_300_seconds():
    @function()
    def with_default_timeout() -> None:
        pass

    assert with_default_timeout._spec.timeout_s == 300


# -- retries --------------------------------------------------------------------------------------
def test_int_and_retries_object_are_accepted():
    @function(retries=3)
    def retries_int() -> None:
        pass

    @function(retries=Retries(max_retries=3, initial_delay=0.5))
    def retries_object() -> None:
        pass

    assert retries_int._spec.retries is not None
    assert retries_int._spec.retries.max_retries == 3
    assert retries_object._spec.retries is not None
    assert retries_object._spec.retries.max_retries == 3
    assert retries_object._spec.retries.initial_delay_s == 0.5


@pytest.mark.parametrize("retries", ["3", -1, 3.5, True, [3]])
def test_bad_retries_are_rejected(retries):
    with pytest.raises(SDKUsageError) as error:

        @function(retries=retries)
        def with_bad_retries() -> None:
            pass

    message = str(error.value)
    assert "retries" in message
    assert "with_bad_retries" in message


def test_negative_max_retries_is_rejected_by_retries():
    with pytest.raises(SDKUsageError, match="max_retries"):
        Retries(max_retries=-1)


def test_application_retries_are_validated():
    with pytest.raises(SDKUsageError, match="retries") as error:

        @application(retries="2")  # type: ignore[arg-type]
        @function()
        def app_with_bad_retries() -> None:
            pass

    assert "app_with_bad_retries" in str(error.value)


# -- resources and placement ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("cpu", 0),
        ("cpu", -1.0),
        ("cpu", math.nan),
        ("cpu", "2"),
        ("memory", 0),
        ("memory", -0.5),
        ("memory", True),
        ("ephemeral_disk", 0),
    ],
)
def test_non_positive_resources_are_rejected(parameter, value):
    with pytest.raises(SDKUsageError) as error:

        @function(**{parameter: value})
        def with_bad_resource() -> None:
            pass

    message = str(error.value)
    assert parameter in message
    assert "with_bad_resource" in message


def test_positive_resources_are_accepted():
    @function(cpu=0.5, memory=2, ephemeral_disk=1.5)
    def with_resources() -> None:
        pass

    assert with_resources._spec.resources["cpu"] == 0.5
    assert with_resources._spec.resources["memory"] == 2


@pytest.mark.parametrize(
    "gpu", ["", "H100:0", "H100:-1", ":2", "H100:x", "H 100", [], ["H100", ""], 3]
)
def test_bad_gpu_is_rejected(gpu):
    with pytest.raises(SDKUsageError) as error:

        @function(gpu=gpu)
        def with_bad_gpu() -> None:
            pass

    message = str(error.value)
    assert "gpu" in message
    assert "with_bad_gpu" in message


@pytest.mark.parametrize("gpu", ["H100", "A100-80GB:2", ["H100", "A100-80GB:8"]])
def test_good_gpu_is_accepted(gpu):
    @function(gpu=gpu)
    def with_gpu() -> None:
        pass

    assert with_gpu._spec.resources["gpu"] == gpu


@pytest.mark.parametrize(
    "secrets", [[""], ["OPENAI_API_KEY", ""], "OPENAI_API_KEY", [1]]
)
def test_bad_secrets_are_rejected(secrets):
    with pytest.raises(SDKUsageError) as error:

        @function(secrets=secrets)
        def with_bad_secrets() -> None:
            pass

    message = str(error.value)
    assert "secrets" in message
    assert "with_bad_secrets" in message


def test_secrets_are_recorded():
    @function(secrets=["OPENAI_API_KEY"])
    def with_secrets() -> None:
        pass

    assert with_secrets._spec.resources["secrets"] == ["OPENAI_API_KEY"]


@pytest.mark.parametrize("region", ["us-west-2", "", "US-EAST-1"])
def test_unknown_region_is_rejected(region):
    with pytest.raises(SDKUsageError) as error:

        @function(region=region)
        def with_bad_region() -> None:
            pass

    message = str(error.value)
    assert "region" in message
    assert "with_bad_region" in message


def test_unknown_application_region_is_rejected():
    with pytest.raises(SDKUsageError, match="region") as error:

        @application(region="ap-south-1")
        @function()
        def app_with_bad_region() -> None:
            pass

    assert "app_with_bad_region" in str(error.value)


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", None])
def test_known_regions_are_accepted(region):
    @function(region=region)
    def with_region() -> None:
        pass

    assert with_region._spec.resources["region"] == region


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"min_containers": 3, "max_containers": 2}, "min_containers"),
        ({"warm_containers": 5, "max_containers": 2}, "warm_containers"),
        ({"min_containers": -1}, "min_containers"),
        ({"max_containers": 1.5}, "max_containers"),
    ],
)
def test_bad_container_counts_are_rejected(kwargs, named):
    with pytest.raises(SDKUsageError) as error:

        @function(**kwargs)
        def with_bad_containers() -> None:
            pass

    message = str(error.value)
    assert named in message
    assert "with_bad_containers" in message


def test_container_counts_within_bounds_are_accepted():
    @function(warm_containers=1, min_containers=2, max_containers=2)
    def with_containers() -> None:
        pass

    assert with_containers._spec.resources["max_containers"] == 2


@pytest.mark.parametrize("value", [0, -3, 1.5, True, "2"])
def test_bad_max_concurrency_is_rejected(value):
    with pytest.raises(SDKUsageError) as error:

        @function(max_concurrency=value)
        def with_bad_concurrency() -> None:
            pass

    message = str(error.value)
    assert "max_concurrency" in message
    assert "with_bad_concurrency" in message


def test_max_concurrency_is_recorded():
    @function(max_concurrency=4)
    def with_concurrency() -> None:
        pass

    assert with_concurrency._spec.max_concurrency == 4


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"tags": {"": "x"}}, "tags"),
        ({"tags": {"team": 1}}, "tags"),
        ({"tags": ["team"]}, "tags"),
        ({"allow": ["everyone"]}, "allow"),
    ],
)
def test_bad_application_options_are_rejected(kwargs, named):
    with pytest.raises(SDKUsageError) as error:

        @application(**kwargs)
        @function()
        def app_with_bad_option() -> None:
            pass

    message = str(error.value)
    assert named in message
    assert "app_with_bad_option" in message


# -- application shape -----------------------------------------------------------------------
def test_application_alone_cannot_be_run(tmp_path):
    # Tensorlake reports a lone @application() when the app is validated, not at
    # import; Cairn refuses to run it, naming what is missing.
    @application()
    def without_function(x: int) -> int:
        return x

    store = f"sqlite:///{tmp_path / 'cairn.db'}"
    with pytest.raises(SDKUsageError, match="missing @function") as error:
        cairn.run_local_application(without_function, 1, cairn_store=store)
    assert "without_function" in str(error.value)


def test_application_must_decorate_a_function():
    with pytest.raises(SDKUsageError, match="must decorate a function"):
        application()(42)  # type: ignore[arg-type]


def test_function_above_application_makes_the_same_application():
    # Tensorlake accepts the decorators in either order.
    @function(timeout=7, description="upside down")
    @application(tags={"team": "search"}, retries=Retries(max_retries=2))
    def function_on_top(x: int) -> int:
        return x

    @application(tags={"team": "search"}, retries=Retries(max_retries=2))
    @function(timeout=7, description="upside down")
    def application_on_top(x: int) -> int:
        return x

    for app in (function_on_top, application_on_top):
        spec = app._spec
        assert spec.application is not None
        assert spec.application.tags == {"team": "search"}
        assert spec.application.retries.max_retries == 2
        assert spec.timeout_s == 7
        assert spec.description == "upside down"
        assert _registry.get(app.name) is spec


def test_function_above_application_checks_the_application_parameters():
    with pytest.raises(SDKUsageError, match="keyword-only"):

        @function()
        @application()
        def upside_down_keyword_only(*, x: int) -> int:
            return x


def test_a_regular_function_cannot_be_run_as_an_application(tmp_path):
    @function()
    def only_a_function(x: int) -> int:
        return x

    store = f"sqlite:///{tmp_path / 'cairn.db'}"
    with pytest.raises(SDKUsageError) as error:
        cairn.run_local_application(only_a_function, 1, cairn_store=store)
    assert str(error.value) == (
        f"Tensorlake Function {only_a_function.name!r} is not an application "
        "function and cannot be run as an application. To make it an application "
        "function, add @application() decorator to it."
    )


def test_function_applied_twice_is_rejected():
    with pytest.raises(SDKUsageError, match="twice"):

        @function()
        @function()
        def decorated_twice() -> None:
            pass


def test_keyword_only_parameter_is_rejected():
    with pytest.raises(SDKUsageError) as error:

        @application()
        @function()
        def app_kw_only(a: int, *, flag: bool = False) -> int:
            return a

    message = str(error.value)
    assert "app_kw_only" in message
    assert "'flag'" in message


def test_positional_only_parameter_is_rejected():
    with pytest.raises(SDKUsageError) as error:

        @application()
        @function()
        def app_pos_only(a: int, /, b: int) -> int:
            return a + b

    message = str(error.value)
    assert "app_pos_only" in message
    assert "'a'" in message


def test_var_positional_parameter_is_rejected():
    with pytest.raises(SDKUsageError) as error:

        @application()
        @function()
        def app_var_args(*items: int) -> int:
            return sum(items)

    message = str(error.value)
    assert "app_var_args" in message
    assert "'items'" in message


def test_var_keyword_parameter_is_rejected():
    with pytest.raises(SDKUsageError) as error:

        @application()
        @function()
        def app_var_kwargs(**options: str) -> int:
            return len(options)

    message = str(error.value)
    assert "app_var_kwargs" in message
    assert "'options'" in message


def test_plain_functions_may_take_any_parameter_kinds():
    @function()
    def any_kinds(a: int, /, *rest: int, flag: bool = False, **more: int) -> int:
        return a

    assert any_kinds.name.endswith("any_kinds")


def test_application_with_zero_or_several_parameters_is_accepted():
    @application(tags={"team": "search"}, allow=["unauthenticated_requests"])
    @function()
    def app_no_params() -> str:
        return "ok"

    @application()
    @function()
    def app_several(a: int, b: str = "x", c: list[int] | None = None) -> str:
        return b * a

    assert app_no_params._spec.application is not None
    assert app_no_params._spec.application.tags == {"team": "search"}
    assert app_several._spec.application is not None


def test_application_inherits_retries_default():
    @application(retries=Retries(max_retries=2))
    @function()
    def app_with_retries() -> None:
        pass

    assert app_with_retries._spec.application is not None
    assert app_with_retries._spec.application.retries.max_retries == 2


# -- one global namespace -------------------------------------------------------------------
def _module_defining(module_name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(module_name)
    module.__dict__["function"] = function
    exec(compile(source, f"<{module_name}>", "exec"), module.__dict__)
    return module


def test_same_name_in_two_modules_is_rejected_naming_both(monkeypatch):
    source = "@function()\ndef test_decorators_duplicated_name(x):\n    return x\n"
    first = _module_defining("cairn_test_dup_module_a", source)
    assert (
        first.test_decorators_duplicated_name.name == "test_decorators_duplicated_name"
    )
    with pytest.raises(SDKUsageError) as error:
        _module_defining("cairn_test_dup_module_b", source)
    message = str(error.value)
    assert "test_decorators_duplicated_name" in message
    assert "cairn_test_dup_module_a" in message
    assert "cairn_test_dup_module_b" in message


def test_same_name_in_two_files_is_rejected(tmp_path, monkeypatch):
    source = (
        "from cairn import function\n\n"
        "@function()\n"
        "def test_decorators_duplicated_in_files(x):\n"
        "    return x\n"
    )
    (tmp_path / "cairn_test_file_one.py").write_text(source)
    (tmp_path / "cairn_test_file_two.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("cairn_test_file_one", "cairn_test_file_two"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    __import__("cairn_test_file_one")
    with pytest.raises(SDKUsageError) as error:
        __import__("cairn_test_file_two")
    message = str(error.value)
    assert "cairn_test_file_one" in message
    assert "cairn_test_file_two" in message
    for name in ("cairn_test_file_one", "cairn_test_file_two"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_redefining_in_the_same_module_is_allowed():
    # Re-running a module (a notebook cell, importlib.reload) replaces the function.
    source = "@function()\ndef test_decorators_redefined(x):\n    return x\n"
    module = _module_defining("cairn_test_redefine_module", source)
    exec(compile(source, "<again>", "exec"), module.__dict__)
    assert module.test_decorators_redefined.name == "test_decorators_redefined"


# -- Functions and Futures are not values ----------------------------------------------------
def test_function_cannot_be_pickled():
    @function()
    def not_a_value(x: int) -> int:
        return x

    with pytest.raises(SDKUsageError, match="not_a_value"):
        pickle.dumps(not_a_value)
    with pytest.raises(SDKUsageError):
        cloudpickle.dumps({"nested": [not_a_value]})


def test_future_cannot_be_pickled():
    @function()
    def future_source(x: int) -> int:
        return x

    future = future_source.future(1)
    assert isinstance(future, cairn.Future)
    with pytest.raises(SDKUsageError):
        pickle.dumps(future)
    with pytest.raises(SDKUsageError):
        cloudpickle.dumps([future])
    with pytest.raises(SDKUsageError):
        pickle.dumps(future_source.future.map([1, 2]))


# -- @cls ------------------------------------------------------------------------------------------
def test_cls_makes_construction_free_and_names_methods_by_class():
    built: list[str] = []

    @cls(init_timeout=60)
    class DecoratorsModel:
        def __init__(self) -> None:
            built.append("init")

        @function()
        def predict(self, x: str) -> str:
            return x

    DecoratorsModel()
    assert built == []
    assert DecoratorsModel.predict.name.endswith("DecoratorsModel.predict")


@pytest.mark.parametrize("init_timeout", [0, -5, "60", 172_801])
def test_cls_rejects_bad_init_timeout(init_timeout):
    with pytest.raises(SDKUsageError, match="timeout") as error:

        @cls(init_timeout=init_timeout)
        class BadInitTimeout:
            pass

    assert "BadInitTimeout" in str(error.value)
