"""``cairn serve``, and the ``--server`` side of ``cairn requests``.

``serve`` loads the code, then runs the HTTP API with an embedded worker. The
``remote_*`` functions are ``cairn requests list|show|replay|cancel`` over HTTP:
they fetch with ``cairn.client.Client`` and render with the same functions as the
store-backed commands.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cairn import _registry, _remote
from cairn.cli import _common, _loading, _render
from cairn.store import redact_url
from cairn.types import RequestStatus

if TYPE_CHECKING:
    from cairn import client

# The server (starlette, uvicorn) and the HTTP client (httpx) are imported by the
# commands that use them, so that every other command starts fast.


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


def _client(url: str) -> client.Client:
    from cairn import client

    return client.Client(url)


def remote_list(
    url: str, application: str | None, status: str | None, limit: int
) -> None:
    """``cairn requests list --server URL``."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    with _client(url) as http:
        while len(found) < limit:
            page = http.requests(
                application,
                limit=min(limit - len(found), 100),
                cursor=cursor,
                status=status.lower() if status else None,
            )
            found += page["requests"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    records = [_remote.record_from_metadata(item) for item in found]
    out = _render.console()
    if not records:
        out.print(f"no requests on {url}", markup=False)
        return
    out.print(_render.requests_table(records, {}))


def remote_show(url: str, request_id: str, tracebacks: bool) -> None:
    """``cairn requests show ID --server URL``."""
    with _client(url) as http:
        metadata = _found(http, request_id)
        record = _remote.record_from_metadata(metadata)
        if record.status is RequestStatus.SUCCEEDED:
            output, _ = http.output_bytes(record.application, request_id)
            record = dataclasses.replace(record, output=output)
    calls = _remote.calls_from_metadata(metadata)
    groups = {run["id"]: run.get("group_id") for run in metadata["function_runs"]}
    out = _render.console()
    for line in _render.summary(record, None):
        out.print(line)
    out.print()
    out.print(_render.call_tree(calls, groups, tracebacks))
    out.print(_render.run_counts(calls, record.run))


def remote_replay(
    url: str, request_id: str, from_call: str | None, strict: bool
) -> None:
    """``cairn requests replay ID --server URL``: the server replays with its code."""
    with _client(url) as http:
        metadata = _found(http, request_id)
        application = metadata["application_name"]
        forced = _resolve_call(metadata, from_call) if from_call else None
        http.replay(application, request_id, from_call=forced, strict=strict)
        for _ in http.events(application, request_id, after=None):
            pass
        metadata = http.request(application, request_id)
        record = _remote.record_from_metadata(metadata)
        if record.status is RequestStatus.SUCCEEDED:
            output, _ = http.output_bytes(application, request_id)
            record = dataclasses.replace(record, output=output)
    out = _render.console()
    _render.print_result(out, record)
    calls = _remote.calls_from_metadata(metadata)
    out.print(_render.run_counts(calls, record.run))
    sys.exit(0 if record.status is RequestStatus.SUCCEEDED else 1)


def remote_cancel(url: str, request_id: str) -> None:
    """``cairn requests cancel ID --server URL``."""
    with _client(url) as http:
        metadata = _found(http, request_id)
        result = http.cancel(metadata["application_name"], request_id)
    out = _render.console()
    if result["cancelled"]:
        out.print(f"cancelled request {request_id}")
    else:
        out.print(
            f"request {request_id} already finished ({result['status']}); "
            "nothing to cancel"
        )


def remote_signal(url: str, request_id: str, name: str, value: Any) -> None:
    """``cairn requests signal ID NAME --server URL``."""
    with _client(url) as http:
        metadata = _found(http, request_id)
        result = http.signal(metadata["application_name"], request_id, name, value)
    _render.console().print(
        f"sent signal {name!r} to request {request_id} (#{result['seq']})",
        markup=False,
    )


def _found(http: client.Client, request_id: str) -> dict[str, Any]:
    from cairn import client

    try:
        return http.request(None, request_id)
    except client.ServerError as error:
        if error.status_code == 404:
            raise click.UsageError(
                f"no request with id {request_id!r} on {http.url}"
            ) from None
        raise


def _resolve_call(metadata: dict[str, Any], prefix: str) -> str:
    runs = metadata.get("function_runs")
    ids = [str(run["id"]) for run in runs] if isinstance(runs, list) else []
    if prefix in ids:
        return prefix
    matches = [i for i in ids if i.startswith(prefix)]
    if len(matches) == 1:
        return matches[0]
    what = "several calls" if matches else "no call"
    raise click.BadParameter(
        f"request {metadata.get('id')} has {what} with an id starting {prefix!r} "
        "(see 'cairn requests show')",
        param_hint="'--from-call'",
    )
