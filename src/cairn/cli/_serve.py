"""``cairn serve``, and the ``--server`` option of ``cairn requests``.

``serve`` loads the code, then runs the HTTP API with an embedded worker.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from cairn import _registry
from cairn.cli import _common, _loading, _render
from cairn.store import redact_url

# The server (starlette, uvicorn) is imported by the command that uses it, so that every other command starts fast.


@click.command()
@click.argument("source", metavar="FILE_OR_MODULE")
@_common.store_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="CAIRN_SERVE_HOST",
    show_envvar=True,
    help="Address to listen on.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8900,
    show_default=True,
    envvar="CAIRN_SERVE_PORT",
    show_envvar=True,
    help="Port to listen on.",
)
@click.option(
    "--api-key",
    metavar="KEY",
    envvar="CAIRN_API_KEY",
    show_envvar=True,
    help="Require 'Authorization: Bearer KEY' on every route but /healthz.",
)
@click.option(
    "--allow-no-auth",
    is_flag=True,
    envvar="CAIRN_ALLOW_NO_AUTH",
    show_envvar=True,
    help="Serve without an API key on an address other machines can reach.",
)
@click.option(
    "--allowed-hosts",
    metavar="NAMES",
    default="",
    envvar="CAIRN_ALLOWED_HOSTS",
    show_envvar=True,
    help=(
        "Names (comma-separated; *.example.com for subdomains) the server answers "
        "to in Host, besides loopback and --host."
    ),
)
@click.option(
    "--namespace",
    default="default",
    show_default=True,
    envvar="CAIRN_NAMESPACE",
    show_envvar=True,
    help="The namespace served under /v1/namespaces/.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    envvar="CAIRN_CONCURRENCY",
    show_envvar=True,
    help="Executor processes of the embedded worker (default: cores, at least 2).",
)
@click.option(
    "--grace",
    "grace_s",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    envvar="CAIRN_SERVE_GRACE",
    show_envvar=True,
    help="Seconds a stopping server lets running calls finish before handing them back.",
)
@click.option(
    "--no-worker",
    is_flag=True,
    envvar="CAIRN_SERVE_NO_WORKER",
    show_envvar=True,
    help="Serve the API only; 'cairn worker' processes on the store run the requests.",
)
@click.option(
    "--worker-nice",
    type=click.IntRange(0, 19),
    default=0,
    show_default=True,
    envvar="CAIRN_SERVE_WORKER_NICE",
    show_envvar=True,
    help="How much lower the embedded worker's CPU priority is (nice(1)'s scale), "
    "so that the API answers first while requests run on the same cores (best "
    "with PostgreSQL: on SQLite the API may wait for a put-aside worker's lock).",
)
def serve(
    source: str,
    store_url: str | None,
    host: str,
    port: int,
    api_key: str | None,
    allow_no_auth: bool,
    allowed_hosts: str,
    namespace: str,
    concurrency: int | None,
    grace_s: float,
    no_worker: bool,
    worker_nice: int,
) -> None:
    """Serve the applications of FILE_OR_MODULE over HTTP, with a worker.

    The API is Tensorlake's v1 HTTP API (also under /v1/namespaces/NAMESPACE);
    /openapi.json describes it. Without an API key the server listens on loopback
    only, unless --allow-no-auth. Stops on Ctrl-C or SIGTERM.
    """
    from cairn import server
    from cairn.server import _auth

    _loading.load_source(source)
    url = _common.resolve_url(store_url)
    key = api_key or None
    if _auth.unprotected(host, key, allow_no_auth):
        raise click.UsageError(
            f"refusing to serve {host} without an API key: set CAIRN_API_KEY (or "
            "--api-key), or pass --allow-no-auth to serve it unauthenticated"
        )
    apps = sorted(spec.name for spec in _registry.applications())
    err = _render.console(stderr=True)
    err.print(
        f"cairn serve: {len(apps)} application(s) ({', '.join(apps) or 'none'}) "
        f"on http://{host}:{port} (namespace {namespace!r}, store {redact_url(url)})",
        markup=False,
        soft_wrap=True,
    )
    if key is None:
        reach = (
            "listening on loopback only"
            if _auth.is_loopback(host)
            else f"anyone who can reach {host} can run requests (--allow-no-auth)"
        )
        err.print(
            f"cairn serve: auth is OFF (no CAIRN_API_KEY): {reach}",
            markup=False,
            soft_wrap=True,
        )
    else:
        err.print("cairn serve: auth is on (Bearer API key)", markup=False)
    err.print(f"cairn serve: dashboard at http://{host}:{port}/ui", markup=False)
    root = click.get_current_context().find_root()
    given = (
        root.get_parameter_source("log_level") is not click.core.ParameterSource.DEFAULT
    )
    options = server.ServeOptions(
        store_url=url,
        host=host,
        port=port,
        api_key=key,
        allow_no_auth=allow_no_auth,
        allowed_hosts=tuple(allowed_hosts.replace(",", " ").split()),
        namespace=namespace,
        concurrency=concurrency,
        grace_s=grace_s,
        worker=not no_worker,
        worker_nice=worker_nice,
        log_level=str(root.params["log_level"]).lower() if given else "info",
    )
    sys.exit(server.serve(options))


# -- cairn requests --server URL ------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def server_option(command: F) -> F:
    """The ``--server`` option of the ``requests`` commands."""
    return click.option(
        "--server",
        metavar="URL",
        envvar="CAIRN_API_URL",
        show_envvar=True,
        callback=_server_or_store,
        help=(
            "Act on the requests of this Cairn server (e.g. http://127.0.0.1:8900) "
            "instead of a store (an explicit --store wins over CAIRN_API_URL); its "
            "key comes from CAIRN_API_KEY."
        ),
    )(command)


def _server_or_store(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    command_line = click.core.ParameterSource.COMMANDLINE
    if value and ctx.get_parameter_source("server") is not command_line:
        root = ctx.find_root()
        if command_line in (
            ctx.get_parameter_source("store_url"),
            root.get_parameter_source("store_url"),
        ):
            return None
    return value
