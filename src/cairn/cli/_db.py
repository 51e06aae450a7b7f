"""``cairn db status|migrate``."""

from __future__ import annotations

import click

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


@db.command()
@_common.store_option
def migrate(store_url: str | None) -> None:
    """Create the store, or bring its schema up to this Cairn's version."""
    with _common.opened(_common.resolve_url(store_url)) as store:
        url, before = store.url, store.schema_before
    out = _render.console()
    if before == 0:
        out.print(
            f"created store {redact_url(url)} at schema version {SCHEMA_VERSION}",
            markup=False,
        )
    elif before < SCHEMA_VERSION:
        out.print(
            f"migrated store {redact_url(url)} from schema version {before} to "
            f"{SCHEMA_VERSION}",
            markup=False,
        )
    else:
        out.print(
            f"store {redact_url(url)} is at schema version {SCHEMA_VERSION} "
            "(up to date)",
            markup=False,
        )
