"""Loading named SQL blocks and numbered migrations shipped as package data.

A dialect's queries are the blocks of ``sql/<dialect>.sql``,
``sql/<dialect>_browse.sql``, ``_waits.sql``, ``_schedules.sql`` and ``_events.sql`` (the same names in every dialect: a test keeps them
so); ``{name}`` in a block is replaced by the block of that name (column lists,
a shared filter). Each store's plumbing, not shared, has its own file
(``sql/postgres_link.sql``, ``sql/sqlite_file.sql``).
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import LiteralString, cast

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_FRAGMENT = re.compile(r"\{(\w+)\}")


@functools.cache
def blocks(file: str) -> dict[str, LiteralString]:
    """The named blocks of ``sql/<file>.sql``, as written."""
    text = resources.files("cairn.store").joinpath("sql", f"{file}.sql").read_text()
    parts = _NAME.split(text)
    return {
        name: cast(LiteralString, body.strip())
        for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


@functools.cache
def queries(dialect: str) -> dict[str, LiteralString]:
    """Every named query of a dialect, with ``{name}`` fragments filled in."""
    found = {
        **blocks(dialect),
        **blocks(f"{dialect}_browse"),
        **blocks(f"{dialect}_waits"),
        **blocks(f"{dialect}_schedules"),
        **blocks(f"{dialect}_events"),
    }

    def expand(text: str) -> LiteralString:
        # Filled with blocks of the package's own files: literal still.
        return _FRAGMENT.sub(lambda match: expand(found[match.group(1)]), text)

    return {name: expand(text) for name, text in found.items()}


@functools.cache
def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` of every migration of a dialect, in order."""
    folder = resources.files("cairn.store").joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text()))
    return sorted(found)
