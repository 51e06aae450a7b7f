"""Programs run as ``python app.py`` (Tensorlake's README pattern): their pydantic
models are classes of ``__main__``, and still cross processes as the same class."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

MODELS = """
import sys

import pydantic

import cairn
from cairn import _serialization


class Embedding(pydantic.BaseModel):
    text: str
    vector: list[float]


class Embeddings(pydantic.BaseModel):
    items: list[Embedding]
"""

PIPELINE = """
@cairn.function()
def embed(text: str) -> Embedding:
    return Embedding(text=text, vector=[float(len(text)), float(sum(map(ord, text)))])


@cairn.application()
@cairn.function()
def embed_all(texts: list[str]) -> Embeddings:
    # Items are embedded in other executor processes, then validated here.
    return Embeddings(items=embed.map(texts))


if __name__ == "__main__":
    request = cairn.run_local_application(embed_all, [f"page {i}" * i for i in range(8)])
    print(len(request.output().items))
"""

ROUND_TRIP = """
if __name__ == "__main__":
    path = sys.argv[2]
    if sys.argv[1] == "dump":
        value = Embeddings(items=[Embedding(text="a", vector=[1.0])])
        with open(path, "wb") as out:
            out.write(_serialization.dumps(value, "value"))
    else:
        with open(path, "rb") as source:
            value = _serialization.loads(source.read(), "value")
        assert type(value) is Embeddings, type(value)
        assert type(value.items[0]) is Embedding, type(value.items[0])
        Embeddings(items=value.items)  # pydantic accepts them as its own
        print("same class")
"""


def _python(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAIRN_STORE": f"sqlite:///{script.parent / 'cairn.db'}"}
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=script.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_main_class_pickled_in_one_process_loads_as_that_class_in_another(
    tmp_path,
):
    script = tmp_path / "round_trip.py"
    script.write_text(textwrap.dedent(MODELS) + textwrap.dedent(ROUND_TRIP))
    blob = tmp_path / "value.pickle"
    dumped = _python(script, "dump", str(blob))
    assert dumped.returncode == 0, dumped.stderr
    # A new process, not a fork of the first: it has its own class objects.
    loaded = _python(script, "load", str(blob))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "same class"


def test_a_main_program_passes_its_models_between_processes(tmp_path):
    script = tmp_path / "embed_app.py"
    script.write_text(textwrap.dedent(MODELS) + textwrap.dedent(PIPELINE))
    for _ in range(2):
        finished = _python(script)
        assert finished.returncode == 0, finished.stderr[-3000:]
        assert finished.stdout.strip().splitlines()[-1] == "8"


def test_the_dashboard_still_names_a_main_class(monkeypatch):
    from cairn import _serialization
    from cairn.server._dashboard import _values

    main = sys.modules["__main__"]
    point = type("DashboardPoint", (), {"__module__": "__main__"})
    monkeypatch.setattr(main, "DashboardPoint", point, raising=False)
    shown = _values.pickled_value(_serialization.dumps(point(), "value"))
    assert shown.text.startswith("pickled __main__.DashboardPoint, ")
