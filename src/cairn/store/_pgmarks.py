"""How a PostgreSQL write is sent so that a lost answer can be settled: with its
commit mark (``Database.committed`` reads it back).

A transaction of several statements goes whole, in one pipeline: BEGIN, the
statements, the stamping of the mark and COMMIT. A single statement goes alone,
as its own transaction, with the mark first in its WITH list: a data-modifying
CTE always runs, so the mark commits exactly when the statement does.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any, LiteralString

import psycopg

from . import _sql
from ._pglink import Connection

# A statement of ``write_all``: its query, and its parameters (a list of them: the
# statement runs once per set).
Statement = tuple[LiteralString, Mapping[str, Any] | Sequence[Mapping[str, Any]]]

Q: dict[str, LiteralString] = _sql.blocks("postgres_link")

# The parameters of with_commit_mark, which a statement sent alone must not use.
_STAMP_PARAMS = re.compile(r"%\((slot|mark|notify|channel|origin)\)s")


def send_whole(
    conn: Connection, statements: Sequence[Statement], stamp: dict[str, Any]
) -> tuple[list[int], bool]:
    """BEGIN, ``statements``, the commit mark and COMMIT in one pipeline: each
    statement's row count, and whether the transaction wrote (stamped its mark)."""
    cursors: list[psycopg.Cursor[Any]] = []
    with conn.pipeline():
        conn.execute("BEGIN")
        for query, params in statements:
            cursor = conn.cursor()
            if isinstance(params, Mapping):
                cursor.execute(query, params)
            else:
                cursor.executemany(query, params)
            cursors.append(cursor)
        stamped = conn.execute(Q["end_transaction"], stamp)
        conn.execute("COMMIT")
    row = stamped.fetchone()
    wrote = row is not None and row[0] is not None
    return [cursor.rowcount for cursor in cursors], wrote


def send_alone(
    conn: Connection,
    query: LiteralString,
    params: Mapping[str, Any],
    stamp: dict[str, Any],
    *,
    binary: bool = False,
) -> psycopg.Cursor[Any]:
    """``query`` as its own transaction, its commit mark in its WITH list."""
    return conn.execute(with_commit_mark(query), {**params, **stamp}, binary=binary)


@functools.cache
def with_commit_mark(query: LiteralString) -> LiteralString:
    """``query`` with the commit mark first in its WITH list (``with_commit_mark``
    of postgres_link.sql): a statement that commits alone and can be settled."""
    body = _uncommented(query)
    if _STAMP_PARAMS.search(body):
        raise ValueError(f"a parameter of the commit mark is also the query's: {body}")
    mark = _uncommented(Q["with_commit_mark"])
    first, rest = body.split(None, 1)
    if first.lower() != "with":
        return f"{mark}\n{body}"
    if not rest.lower().startswith("recursive"):
        return f"{mark},\n{rest}"
    keyword, ctes = mark.split(None, 1)
    recursive, rest = rest.split(None, 1)
    return f"{keyword} {recursive} {ctes},\n{rest}"


def _uncommented(query: LiteralString) -> LiteralString:
    """A named block without its leading comment lines."""
    lines = query.splitlines()
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
        del lines[0]
    return "\n".join(lines)


def answered(error: psycopg.Error, conn: Connection) -> bool:
    """Whether the server answered a statement with ``error`` (so the transaction
    did not commit), rather than the link or the backend going away (so it may
    have: a backend terminated mid-commit may answer before the link reads as
    broken)."""
    state = error.sqlstate or ""
    return bool(state) and not conn.broken and not state.startswith(("08", "57"))
