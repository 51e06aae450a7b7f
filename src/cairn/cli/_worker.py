"""``cairn worker``: a long-lived worker process on a store."""

from __future__ import annotations

import sys

import click

from cairn import _engine
from cairn.cli import _common, _loading
from cairn.store import redact_url


@click.command()
@click.argument("source", metavar="FILE_OR_MODULE")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    envvar="CAIRN_CONCURRENCY",
    show_envvar=True,
    help="Executor processes (default: the number of cores, at least 2).",
)
@click.option(
    "--grace",
    "grace_s",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    envvar="CAIRN_WORKER_GRACE",
    show_envvar=True,
    help="Seconds a stopping worker lets running calls finish before handing them back.",
)
@_common.store_option
def worker(
    source: str, concurrency: int | None, grace_s: float, store_url: str | None
) -> None:
    """Run the calls of any request on the store, until SIGTERM or Ctrl-C.

    FILE_OR_MODULE is the code of the applications (a .py file or a dotted module).
    Several workers, here or on other machines, share the store's work. The first
    SIGTERM/SIGINT stops claiming and lets running calls finish within --grace;
    a second one exits at once. Calls of a worker that died are taken over by the
    others once its heartbeat goes stale.
    """
    _loading.load_source(source)
    engine = _engine.Engine(_common.resolve_url(store_url), concurrency=concurrency)
    click.echo(
        f"cairn worker {engine.worker_id}: {engine.concurrency} executor(s) on "
        f"{redact_url(engine.store_url)}",
        err=True,
    )
    sys.exit(engine.serve(grace_s=grace_s))
