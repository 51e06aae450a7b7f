"""How the dashboard shows values: JSON formatted, pickles described without
running any of the code they name."""

from __future__ import annotations

import dataclasses
import datetime
import os
import pickle
from pathlib import Path

import pydantic

from cairn import _serialization
from cairn.server._dashboard import _values


class _Model(pydantic.BaseModel):
    x: int


@dataclasses.dataclass
class _Point:
    x: int


class _Planted:
    """Unpickling it for real would create a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.path}",))


def _shown(value: object) -> _values.Shown:
    return _values.pickled_value(_serialization.dumps(value, "a test value"))


def test_plain_data_is_json() -> None:
    assert _shown({"a": [1, 2.5, None, True]}) == _values.Shown(
        json=True, text='{\n  "a": [\n    1,\n    2.5,\n    null,\n    true\n  ]\n}'
    )
    assert _shown("<b>").text == '"<b>"'
    assert _shown((1, 2)).json  # a tuple is shown as a list


def test_objects_are_shown_by_their_fields() -> None:
    model = _shown(_Model(x=1))
    assert model.json
    assert model.text == f'{{\n  "__type__": "{__name__}._Model",\n  "x": 1\n}}'
    assert _shown(_Point(1)).text == (
        f'{{\n  "__type__": "{__name__}._Point",\n  "x": 1\n}}'
    )
    points = _shown([_Point(1), _Point(2)])
    assert points.json and points.text.count(f'"__type__": "{__name__}._Point"') == 2


def test_other_values_are_described_by_type() -> None:
    assert _shown(datetime.date(2026, 1, 2)).text.startswith("pickled datetime.date")
    assert _shown({1: "a"}).text.startswith("pickled dict of 1 item, ")
    assert _shown(b"xy").text.startswith("pickled bytes, ")
    assert _shown(lambda: 1).text.startswith("pickled function, ")
    assert _shown(float("nan")).text.startswith("pickled float")


def test_a_pickle_naming_code_does_not_run_it(tmp_path: Path) -> None:
    planted = tmp_path / "planted"
    data = pickle.dumps(_Planted(planted))
    shown = _values.pickled_value(data)
    assert not planted.exists()
    # Shown as what it names, with its arguments: never called.
    assert '"__type__": "posix.system"' in shown.text and "touch" in shown.text
    assert _values.pickled_value(b"\x80\x05not a pickle").text.startswith(
        "pickled value, "
    )


def test_arguments_are_labelled() -> None:
    data = _serialization.dumps_arguments("f", (1, _Point(2)), {"k": "v"})
    found = _values.arguments(data, ["a", "b"])
    assert isinstance(found, list)
    assert [(a.name, a.value.text) for a in found] == [
        ("a", "1"),
        ("b", f'{{\n  "__type__": "{__name__}._Point",\n  "x": 2\n}}'),
        ("k", '"v"'),
    ]
    json_input = b'{"args": [4, 5], "kwargs": {"z": [1]}}'
    labelled = _values.arguments(json_input, ["n"])
    assert isinstance(labelled, list)
    assert [a.name for a in labelled] == ["n", "1", "z"]
    assert _values.arguments(None) == _values.Shown(
        json=False, text="no arguments recorded"
    )


def test_large_values_are_cut_or_not_decoded() -> None:
    long = _shown("x" * 50_000)
    assert long.json and long.cut and len(long.text) < 21_000
    assert not _shown("x" * 5_000).cut
    big = _shown(b"y" * (2 << 20))
    assert big.text.startswith("pickled value, 2,097,") and big.cut
    assert _values.json_value(b"not json").text == "not JSON, 8 bytes"
