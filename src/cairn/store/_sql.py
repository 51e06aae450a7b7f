"""Loading named SQL blocks and numbered migrations shipped as package data."""

from __future__ import annotations

import functools
import re
from importlib import resources

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@functools.cache
def queries(dialect: str) -> dict[str, str]:
    """The named blocks of ``sql/<dialect>.sql``."""
    text = resources.files("cairn.store").joinpath("sql", f"{dialect}.sql").read_text()
    parts = _NAME.split(text)
    return {
        name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


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
