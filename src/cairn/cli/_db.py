"""``cairn db status|migrate``."""

from __future__ import annotations

import click

from cairn import errors
from cairn.cli import _common, _render
from cairn.store import SCHEMA_VERSION, redact_url


@click.group(cls=_common.Group)
def db() -> None:
    """Create, migrate and inspect the store."""


@db.command()
@_common.store_option
def status(store_url: str | None) -> None:
    """Show the store's URL, schema version and number of requests."""
    with _common.opened(_common.resolve_url(store_url)) as store:
        counts = {str(k): v for k, v in store.count_requests().items()}
        url = store.url
    detail = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    out = _render.console()
    out.print(f"store           {redact_url(url)}", markup=False)
    out.print(f"schema version  {SCHEMA_VERSION}")
    out.print(
        f"requests        {sum(counts.values())}" + (f" ({detail})" if detail else "")
    )


def _is_new_sqlite_store(url: str) -> bool | None:
    from cairn.store import sqlite

    if "://" not in url and url.endswith(".db"):
        url = f"sqlite:///{url}"
    try:
        path, _options = sqlite.parse_url(url)
    except errors.StoreError:
        return None
    return not path.exists() or path.stat().st_size == 0


@db.command()
@_common.store_option
def migrate(store_url: str | None) -> None:
    """Create the store, or bring its schema up to this Cairn's version."""
    url = _common.resolve_url(store_url)
    new = _is_new_sqlite_store(url)
    with _common.opened(url) as store:
        url = store.url
        if new is None:  # a PostgreSQL store knows whether opening it migrated it
            new = bool(getattr(store, "created", False))
    out = _render.console()
    if new:
        out.print(
            f"created store {redact_url(url)} at schema version {SCHEMA_VERSION}",
            markup=False,
        )
    else:
        out.print(
            f"store {redact_url(url)} is at schema version {SCHEMA_VERSION} "
            "(up to date)",
            markup=False,
        )
