"""Pickled values between functions, validated JSON at the application boundary."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pydantic
import pytest

import cairn
from cairn import _serialization, application, function
from cairn._serialization import JsonBoundary
from cairn.types import CallStatus, RequestStatus


def _numbers() -> Iterator[int]:
    yield 1


class Query(pydantic.BaseModel):
    text: str
    limit: int = 10
    tags: list[str] = []


class Answer(pydantic.BaseModel):
    text: str
    score: float


# -- pickled values ---------------------------------------------------------------------------
def test_dumps_and_loads_round_trip_local_objects():
    def local(x: int) -> int:
        return x + 1

    value = {"fn": local, "lambda": lambda y: y * 2, "data": [1, b"2", None]}
    back = _serialization.loads(_serialization.dumps(value, "value"), "value")
    assert back["fn"](1) == 2
    assert back["lambda"](3) == 6
    assert back["data"] == [1, b"2", None]


def test_dumps_names_what_failed():
    with pytest.raises(cairn.SerializationError) as error:
        _serialization.dumps(threading.Lock(), "output of summarize()")
    message = str(error.value)
    assert "output of summarize()" in message
    assert "lock" in message


def test_loads_of_garbage_is_a_deserialization_error():
    with pytest.raises(cairn.DeserializationError, match="output of f"):
        _serialization.loads(b"not a pickle", "output of f()")


def test_dumps_arguments_names_the_failing_keyword_argument():
    with pytest.raises(cairn.SerializationError) as error:
        _serialization.dumps_arguments(
            "store_rows", ("table", 3), {"conn": threading.Lock(), "batch": 10}
        )
    message = str(error.value)
    assert "'conn'" in message
    assert "store_rows" in message
    assert "lock" in message


def test_dumps_arguments_names_the_failing_positional_argument():
    with pytest.raises(cairn.SerializationError) as error:
        _serialization.dumps_arguments("consume", ("ok", _numbers()), {})
    message = str(error.value)
    assert "argument 1 of consume()" in message
    assert "generator" in message


def test_dumps_arguments_round_trips():
    blob = _serialization.dumps_arguments("f", (1, [2]), {"k": {"v": 3}})
    assert _serialization.loads(blob, "args") == ((1, [2]), {"k": {"v": 3}})


def test_a_function_or_a_future_inside_a_value_is_a_serialization_error():
    # Tensorlake turns the refusal of Function/Future to be pickled into a
    # SerializationError at the call; so does Cairn.
    @function()
    def nested_function_value(x: int) -> int:
        return x

    with pytest.raises(cairn.SerializationError, match="nested_function_value"):
        _serialization.dumps_arguments("f", ([nested_function_value],), {})
    with pytest.raises(cairn.SerializationError, match="argument 0 of f"):
        _serialization.dumps_arguments("f", (nested_function_value,), {})
    futures = [nested_function_value.future(1), nested_function_value.future(2)]
    with pytest.raises(cairn.SerializationError, match="argument 'items' of f"):
        _serialization.dumps_arguments("f", (), {"items": futures})
    with pytest.raises(cairn.SerializationError, match="output of g"):
        _serialization.dumps(futures, "output of g()")


# -- JSON at the application boundary -------------------------------------------------------------
def _search(query: Query, page: int, verbose: bool = False) -> list[Answer]:
    return []


def test_a_dict_input_becomes_the_model_with_defaults_filled():
    boundary = JsonBoundary(_search)
    args, kwargs = boundary.bind_input([{"text": "cairns"}, 2], {}, "search_app")
    assert isinstance(args[0], Query)
    assert args[0] == Query(text="cairns", limit=10, tags=[])
    assert args[1] == 2
    assert kwargs == {}


def test_inputs_by_keyword_and_extra_inputs_are_ignored():
    boundary = JsonBoundary(_search)
    args, kwargs = boundary.bind_input(
        [{"text": "a", "limit": 3}],
        {"page": 1, "verbose": True, "unknown": "dropped"},
        "search_app",
    )
    assert args[0].limit == 3
    assert kwargs == {"page": 1, "verbose": True}
    args, kwargs = boundary.bind_input(
        [{"text": "a"}, 1, False, "extra positional"], {}, "search_app"
    )
    assert len(args) == 3


def test_missing_required_input_is_named():
    boundary = JsonBoundary(_search)
    with pytest.raises(cairn.SDKUsageError) as error:
        boundary.bind_input([{"text": "a"}], {}, "search_app")
    message = str(error.value)
    assert "'page'" in message
    assert "search_app" in message
    assert "'verbose'" not in message


def test_wrong_input_type_is_a_serialization_error_naming_the_input():
    # Tensorlake raises SerializationError here, in its own words; Cairn adds
    # which input of which application.
    boundary = JsonBoundary(_search)
    with pytest.raises(cairn.SerializationError) as error:
        boundary.bind_input([{"text": "a"}, "two"], {}, "search_app")
    assert "Failed to serialize 'two' as 'int' to json" in str(error.value)
    assert "'page'" in str(error.value)
    with pytest.raises(cairn.SerializationError) as error:
        boundary.bind_input([{"limit": 3}, 1], {}, "search_app")
    message = str(error.value)
    assert "'query'" in message
    assert "text" in message


def test_output_is_encoded_against_the_return_hint():
    boundary = JsonBoundary(_search)
    data = boundary.encode_output(
        [Answer(text="a", score=1), {"text": "b", "score": "0.5"}], "search_app"
    )
    assert pydantic.TypeAdapter(list[dict[str, float | str]]).validate_json(data) == [
        {"text": "a", "score": 1.0},
        {"text": "b", "score": 0.5},
    ]


def test_output_of_the_wrong_type_is_a_serialization_error():
    boundary = JsonBoundary(_search)
    with pytest.raises(cairn.SerializationError) as error:
        boundary.encode_output([{"text": "a"}], "search_app")
    message = str(error.value)
    assert "search_app" in message
    assert "score" in message


def test_unhinted_output_must_be_json():
    def untyped(x):
        return x

    boundary = JsonBoundary(untyped)
    assert boundary.encode_output({"a": [1, "b"]}, "untyped_app") == b'{"a":[1,"b"]}'
    with pytest.raises(cairn.SerializationError, match="untyped_app"):
        boundary.encode_output(threading.Lock(), "untyped_app")


def test_request_input_must_be_json():
    with pytest.raises(cairn.SerializationError):
        _serialization.encode_json_input((threading.Lock(),), {})


# -- end to end ----------------------------------------------------------------------------------
def test_unpicklable_argument_fails_the_call_and_the_caller_can_catch_it(
    run, store, effects
):
    @function()
    def save_rows(table: str, conn: object) -> str:
        effects.record("save_rows ran")
        return table

    @application()
    @function()
    def save_app(table: str) -> str:
        try:
            return save_rows(table, conn=threading.Lock())
        except cairn.SerializationError as error:
            return f"caught: {error}"

    request = run(save_app, "users")
    assert request.status() is RequestStatus.SUCCEEDED
    output = request.output()
    assert output.startswith("caught: ")
    assert "'conn'" in output
    assert "save_rows" in output
    assert effects.count("save_rows ran") == 0
    # Nothing half-written: no checkpoint for the call that never ran.
    calls = store.list_calls(request.id)
    assert [c for c in calls if c.function == save_rows.name] == []
    assert not [
        c for c in calls if c.status is CallStatus.SUCCEEDED and c.kind != "app"
    ]


def test_unpicklable_future_argument_raises_where_the_future_starts(run, store):
    @function()
    def future_rows(items: object) -> int:
        return 1

    @application()
    @function()
    def future_app(n: int) -> str:
        try:
            return str(future_rows.future(items=_numbers()).result())
        except cairn.SerializationError as error:
            return f"caught: {error}"

    request = run(future_app, 1)
    output = request.output()
    assert output.startswith("caught: ")
    assert "'items'" in output
    assert "future_rows" in output
    assert not [
        c for c in store.list_calls(request.id) if c.function == future_rows.name
    ]


def test_uncaught_serialization_error_fails_the_request(run, store):
    @function()
    def uncaught_rows(conn: object) -> int:
        return 1

    @application()
    @function()
    def uncaught_app(n: int) -> int:
        return uncaught_rows(threading.Lock())

    request = run(uncaught_app, 1)
    assert request.status() is RequestStatus.FAILED
    with pytest.raises(cairn.RequestFailed) as error:
        request.output()
    assert str(error.value) == "function_error"
    assert error.value.error_type == "SerializationError"
    assert "argument 0 of" in error.value.error_message
    assert "argument 0 of" in error.value.details
    assert not [
        c for c in store.list_calls(request.id) if c.function == uncaught_rows.name
    ]


def test_unpicklable_output_is_a_failed_attempt_not_a_checkpoint(run, store, effects):
    @function()
    def opens_lock() -> object:
        effects.record("opens_lock ran")
        return threading.Lock()

    @application()
    @function()
    def output_app() -> str:
        try:
            opens_lock()
        except cairn.FunctionError as error:
            return f"{error.error_type}: {error.error_message}"
        return "no error"

    request = run(output_app)
    output = request.output()
    assert output.startswith("SerializationError: ")
    assert "opens_lock" in output
    assert effects.count("opens_lock ran") == 1
    (call,) = [c for c in store.list_calls(request.id) if c.function == opens_lock.name]
    assert call.status is CallStatus.FAILED
    assert store.get_call_output(call.id) is None


def test_application_input_is_validated_before_the_request_is_created(run, store):
    @application()
    @function()
    def typed_app(query: Query, page: int) -> list[Answer]:
        return [Answer(text=query.text, score=query.limit + page)]

    with pytest.raises(cairn.SDKUsageError, match="'page'"):
        run(typed_app, {"text": "x"})
    assert store.list_requests() == []

    request = run(typed_app, {"text": "x"}, page=2)
    assert request.output() == [Answer(text="x", score=12.0)]


# -- hints JSON cannot describe: File, HttpBody, plain classes ---------------------------------
class _Opaque:
    """A plain class: pydantic has no schema for it."""

    def __init__(self, n: int) -> None:
        self.n = n


def test_raw_and_opaque_hints_do_not_stop_an_import():
    @application()
    @function()
    def hints_file_in_file_out(doc: cairn.File, note: str = "") -> cairn.File:
        return doc

    @application()
    @function()
    def hints_http_body(body: cairn.HttpBody) -> int:
        return len(body.content)

    @application()
    @function()
    def hints_opaque(value: _Opaque) -> _Opaque:
        return value

    boundary = JsonBoundary(hints_file_in_file_out._spec.fn)
    assert boundary.file_output
    assert boundary.takes_file(0) and boundary.takes_file("doc")
    assert not boundary.takes_file(1) and not boundary.takes_file("note")
    assert not boundary.takes_file(5)


def test_a_file_parameter_binds_from_its_json_form():
    def reads(doc: cairn.File, body: cairn.HttpBody, n: int) -> int:
        return n

    boundary = JsonBoundary(reads)
    payload = _serialization.encode_json_input(
        (cairn.File(b"%PDF-1.7", "application/pdf"),),
        {"body": cairn.HttpBody(b'{"a": 1}', "application/json"), "n": 3},
    )
    data = _serialization.decode_json(payload)
    args, kwargs = boundary.bind_input(data["args"], data["kwargs"], "reads_app")
    assert args == [cairn.File(b"%PDF-1.7", "application/pdf")]
    assert type(kwargs["body"]) is cairn.HttpBody
    assert kwargs["body"].json() == {"a": 1}
    assert kwargs["n"] == 3


def test_a_file_parameter_given_json_is_a_serialization_error():
    def reads_file(doc: cairn.File) -> None:
        return None

    with pytest.raises(cairn.SerializationError, match=r"'doc'.*File"):
        JsonBoundary(reads_file).bind_input(["not a file"], {}, "reads_file_app")


def test_a_file_output_round_trips_with_its_content_type():
    def makes_file() -> cairn.File:
        return cairn.File(b"\x89PNG", "image/png")

    boundary = JsonBoundary(makes_file)
    data = boundary.encode_output(cairn.File(b"\x89PNG", "image/png"), "png_app")
    assert boundary.decode_output(data) == cairn.File(b"\x89PNG", "image/png")
    with pytest.raises(cairn.SerializationError, match="must be a File"):
        boundary.encode_output(b"\x89PNG", "png_app")


def test_an_unhinted_output_may_be_a_file():
    def untyped_file():
        return None

    boundary = JsonBoundary(untyped_file)
    data = boundary.encode_output(cairn.File(b"x", "text/plain"), "untyped_file_app")
    assert boundary.decode_output(data) == cairn.File(b"x", "text/plain")


def test_an_opaque_hint_checks_values_by_isinstance():
    def opaque(value: _Opaque) -> _Opaque:
        return value

    boundary = JsonBoundary(opaque)
    value = _Opaque(1)
    assert boundary.bind_input([value], {}, "opaque_app") == ([value], {})
    with pytest.raises(cairn.SerializationError, match="'value'"):
        boundary.bind_input([{"n": 1}], {}, "opaque_app")
    with pytest.raises(cairn.SerializationError, match="opaque_app"):
        boundary.encode_output(value, "opaque_app")


def test_a_value_over_the_limit_is_refused_where_it_is_made(monkeypatch):
    monkeypatch.setenv("CAIRN_MAX_VALUE_BYTES", "1000")
    assert _serialization.loads(_serialization.dumps("x" * 900, "v"), "v") == "x" * 900
    with pytest.raises(cairn.SerializationError, match=r"output of big\(\) takes"):
        _serialization.dumps("x" * 2000, "output of big()")
    with pytest.raises(cairn.SerializationError, match=r"the arguments of f\(\) takes"):
        _serialization.dumps_arguments("f", ("x" * 2000,), {})
    with pytest.raises(cairn.SerializationError, match="application input takes"):
        _serialization.encode_json_input(("x" * 2000,), {})


@pytest.mark.parametrize("setting", ["lots", "0", "-5", str(2**40)])
def test_a_bad_value_limit_is_named(monkeypatch, setting):
    monkeypatch.setenv("CAIRN_MAX_VALUE_BYTES", setting)
    with pytest.raises(cairn.SDKUsageError, match="CAIRN_MAX_VALUE_BYTES must be"):
        _serialization.dumps(1, "v")
