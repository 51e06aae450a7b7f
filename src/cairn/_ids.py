"""Durable call ids: a hash chained over start order, as Tensorlake's ``durable_id``.

A child's id depends on its parent's id, the id of the previous call the parent
started, the function name and the ids of Future arguments. Argument *values* are
not hashed: replay is strict on control flow and lenient on data.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable


def chain(parts: Iterable[str]) -> str:
    """Hash strings as Tensorlake does: 8-byte big-endian length, UTF-8, then ``|``."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode()
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
        digest.update(b"|")
    return digest.hexdigest()


def child_id(
    parent_id: str, previous_id: str, metadata: list[str], dependency_ids: list[str]
) -> str:
    """The durable id of the next call a parent starts."""
    return chain([parent_id, previous_id, *metadata, *dependency_ids])


def item_id(operation_id: str, label: str, position: int) -> str:
    """Id of the ``position``-th item of a map or step of a reduce."""
    return hashlib.sha256(f"{operation_id}:{label}:{position}".encode()).hexdigest()


def new_request_id() -> str:
    """A fresh, URL-safe request id."""
    return secrets.token_hex(12)
