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
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, LiteralString

import psycopg

from . import _sql
from ._pglink import Connection

# A statement of ``write_all``: its query, and its parameters (a list of them: the
# statement runs once per set).
Statement = tuple[LiteralString, Mapping[str, Any] | Sequence[Mapping[str, Any]]]

Q: dict[str, LiteralString] = _sql.blocks("postgres_link")

# The statements sent alone that each connection has prepared in a pipeline (or
# tried to).
_piped: weakref.WeakKeyDictionary[Connection, set[str]] = weakref.WeakKeyDictionary()

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
    """``query`` as its own transaction, its commit mark in its WITH list.

    Prepared at its first use on ``conn``, in the round trip that runs it (a
    pipeline): psycopg alone would send its text, for the server to parse again,
    at each of its first five executions on every new connection (0.14-0.26 ms
    each for these statements); told to prepare it, it would do so outside a
    pipeline in a round trip of its own.
    """
    statement = with_commit_mark(query)
    values = {**params, **stamp}
    piped = _piped.setdefault(conn, set())
    if statement in piped:
        # Prepared, unless it failed: then psycopg forgot it (the server did not),
        # and prepares it when it would have, counting only what succeeds.
        return conn.execute(statement, values, binary=binary)
    # Once per connection, even if it fails: each try would leave one more
    # statement prepared on the server.
    piped.add(statement)
    with conn.pipeline():
        return conn.execute(statement, values, binary=binary, prepare=True)


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
