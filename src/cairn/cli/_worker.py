"""``cairn worker``: a long-lived worker process on a store."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

import click

from cairn import errors
from cairn.cli import _common, _loading
from cairn.observability import _metrics
from cairn.store import StoreUnreachable, redact_url
from cairn.worker import Engine

logger = logging.getLogger(__name__)

# How long a worker that cannot reach its store waits before it tries again: from
# the first wait, doubled each time, up to the last.
_RETRY_FIRST_S = 0.5
_RETRY_MAX_S = 5.0


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
@click.option(
    "--functions",
    "function_names",
    metavar="NAME",
    multiple=True,
    help="Serve only these functions (repeat, or separate with commas): route "
    "GPU-heavy or rate-limited functions to the hosts meant for them. Default: "
    "every function the code defines.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    default=None,
    envvar="CAIRN_METRICS_PORT",
    show_envvar=True,
    help="Serve Prometheus metrics of this worker and its executors at "
    "http://HOST:PORT/metrics (default: none).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    envvar="CAIRN_METRICS_HOST",
    show_envvar=True,
    help="The address the metrics port listens on (0.0.0.0: every interface).",
)
@_common.store_option
def worker(
    source: str,
    concurrency: int | None,
    grace_s: float,
    function_names: tuple[str, ...],
    metrics_port: int | None,
    metrics_host: str,
    store_url: str | None,
) -> None:
    """Run the calls of the store's requests, until SIGTERM or Ctrl-C.

    FILE_OR_MODULE is the code of the applications (a .py file or a dotted module).
    A worker runs calls of the functions it has loaded (or of --functions), of
    any request not run by a `cairn run` or run_local_application process of its
    own. Several workers, here or on other machines, share the store's work. The
    first SIGTERM/SIGINT stops claiming and lets running calls finish within
    --grace; a second one exits at once. Calls of a process that died are taken
    over by the workers that serve its functions once its heartbeat goes stale.
    """
    if metrics_port is not None:
        _metrics.enable()  # before the code loads and anything forks
    _loading.load_source(source)
    if metrics_port is not None:
        try:
            _metrics.serve_in_child(metrics_port, metrics_host)
        except OSError as error:
            raise click.BadParameter(
                f"cannot listen on {metrics_host}:{metrics_port}: {error.strerror}",
                param_hint="'--metrics-port'",
            ) from None
        click.echo(
            f"cairn worker: metrics at http://{metrics_host}:{metrics_port}/metrics",
            err=True,
        )
    names = frozenset(n.strip() for ns in function_names for n in ns.split(","))
    url = _common.resolve_url(store_url)
    try:
        engine = _open_engine(
            lambda: Engine(
                url,
                concurrency=concurrency,
                serving=True,
                functions=(names - {""}) or None,
            )
        )
    except errors.SDKUsageError as error:
        raise click.BadParameter(error.message, param_hint="'--functions'") from None
    served = ", ".join(engine.scope.functions or ()) or "nothing"
    click.echo(
        f"cairn worker {engine.worker_id}: {engine.concurrency} executor(s) on "
        f"{redact_url(engine.store_url)}, serving {served}",
        err=True,
    )
    sys.exit(engine.serve(grace_s=grace_s))


def _open_engine(make: Callable[[], Engine]) -> Engine:
    """The worker's engine, once its store can be reached: a worker started
    before its database (with it, by a service manager, or while it restarts)
    waits for it, as it rides out the database's restarts once serving. A store
    that refused it for good (a bad password, no such database) fails at once."""
    delay_s = _RETRY_FIRST_S
    while True:
        try:
            return make()
        except StoreUnreachable as error:
            logger.warning(
                "%s; trying again in %.1fs",
                error.message,
                delay_s,
                extra={"action": "store_unreachable"},
            )
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, _RETRY_MAX_S)
