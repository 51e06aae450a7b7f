"""The SQL store's named queries: both dialects define the same names, every name
the store runs is defined, and no SQL sits inline in the store's modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from cairn.store import _sql

STORE = Path(__file__).parents[2] / "src" / "cairn" / "store"
DIALECTS = ("sqlite", "postgres")
# Methods that take a query's name as their first argument.
_RUNNERS = {"execute", "executemany", "_one", "_all", "_blob", "stream"}
# Statements that set up a connection or a transaction, not queries of the store.
_CONTROL = re.compile(r"^(PRAGMA|BEGIN|COMMIT|ROLLBACK|SET|LISTEN)\b")
_SQL = re.compile(r"^\s*(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|WITH)\b")


def _names_run() -> dict[str, list[str]]:
    """Query names passed as string literals to a runner, per module."""
    found: dict[str, list[str]] = {}
    for path in sorted(STORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in _RUNNERS
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.setdefault(node.args[0].value, []).append(path.name)
    return found


def test_both_dialects_define_the_same_queries():
    sqlite, postgres = (set(_sql.queries(dialect)) for dialect in DIALECTS)
    assert sorted(sqlite - postgres) == []
    assert sorted(postgres - sqlite) == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_query_the_store_runs_is_defined(dialect):
    names = _names_run()
    assert len(names) > 50  # the walk found the store's queries
    undefined = {
        name: modules
        for name, modules in names.items()
        if name not in _sql.queries(dialect) and not _CONTROL.match(name)
    }
    assert undefined == {}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_fragments_are_filled_in(dialect):
    unfilled = {
        name: re.findall(r"\{\w+\}", text)
        for name, text in _sql.queries(dialect).items()
        if re.search(r"\{\w+\}", text)
    }
    assert unfilled == {}


def test_no_sql_inline_in_the_store_modules():
    inline = []
    for path in sorted(STORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            text = None
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            elif isinstance(node, ast.JoinedStr) and node.values:
                first = node.values[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    text = first.value
            if text is not None and _SQL.match(text) and not _CONTROL.match(text):
                inline.append(f"{path.name}:{node.lineno}: {text[:40]!r}")
    assert inline == []


def test_the_checks_see_what_they_look_for():
    assert _SQL.match("SELECT 1 FROM calls")
    assert _CONTROL.match("PRAGMA data_version")
    assert not _CONTROL.match("SELECT 1")
