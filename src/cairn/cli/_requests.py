"""``cairn requests list|show|replay|cancel|signal``."""

from __future__ import annotations

import json
import sys

import click

from cairn.cli import _backends, _common, _render, _serve
from cairn.types import RequestStatus


@click.group(cls=_common.Group)
def requests() -> None:
    """Inspect, replay, cancel and signal requests."""


@requests.command("list")
@click.option(
    "--app",
    "application",
    metavar="NAME",
    envvar="CAIRN_REQUESTS_LIST_APP",
    show_envvar=True,
    help="Only requests of this application.",
)
@click.option(
    "--status",
    type=click.Choice([s.value for s in RequestStatus], case_sensitive=False),
    envvar="CAIRN_REQUESTS_LIST_STATUS",
    show_envvar=True,
    help="Only requests in this status.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    envvar="CAIRN_REQUESTS_LIST_LIMIT",
    show_envvar=True,
    help="At most this many, newest first.",
)
@_common.store_option
@_serve.server_option
def list_requests(
    application: str | None,
    status: str | None,
    limit: int,
    store_url: str | None,
    server: str | None,
) -> None:
    """List requests, newest first."""
    backend = _backends.choose(server, store_url)
    records, app_calls = backend.newest(application, status, limit)
    out = _render.console()
    if not records:
        out.print(f"no requests {backend.where}", markup=False)
        return
    out.print(_render.requests_table(records, app_calls))


@requests.command()
@click.argument("request_id", metavar="ID")
@click.option(
    "--traceback",
    "tracebacks",
    is_flag=True,
    envvar="CAIRN_REQUESTS_SHOW_TRACEBACK",
    show_envvar=True,
    help="Also show the traceback of each failed call.",
)
@_common.store_option
@_serve.server_option
def show(
    request_id: str, tracebacks: bool, store_url: str | None, server: str | None
) -> None:
    """Show a request: its outcome and the tree of its calls with their attempts."""
    shown = _backends.choose(server, store_url).show(request_id)
    out = _render.console()
    for line in _render.summary(shown.record, shown.app_call, shown.waiting):
        out.print(line)
    out.print()
    out.print(_render.call_tree(shown.calls, shown.groups, tracebacks))
    out.print(_render.run_counts(shown.calls, shown.record.run))


@requests.command()
@click.argument("request_id", metavar="ID")
@click.option(
    "--from-call",
    metavar="CALL_ID",
    envvar="CAIRN_REQUESTS_REPLAY_FROM_CALL",
    show_envvar=True,
    help="Run this call (an id or a unique prefix of one) and every later call again.",
)
@click.option(
    "--strict",
    is_flag=True,
    envvar="CAIRN_REQUESTS_REPLAY_STRICT",
    show_envvar=True,
    help="Fail with replay_mismatch where the code takes a different path.",
)
@click.option(
    "--app",
    metavar="FILE_OR_MODULE",
    envvar="CAIRN_REQUESTS_REPLAY_APP",
    show_envvar=True,
    help="Load the code from here instead of the location the request recorded.",
)
@_common.store_option
@_serve.server_option
def replay(
    request_id: str,
    from_call: str | None,
    strict: bool,
    app: str | None,
    store_url: str | None,
    server: str | None,
) -> None:
    """Run a request again with the current code; checkpointed calls are served.

    Calls whose outputs were committed return them without running; failed,
    timed-out and new calls run. Exits 1 when the replayed request fails. With
    --server, the server replays it with the code it serves.
    """
    backend = _backends.choose(server, store_url)
    record, calls = backend.replay(request_id, from_call, strict, app)
    out = _render.console()
    _render.print_result(out, record)
    out.print(_render.run_counts(calls, record.run))
    sys.exit(0 if record.status is RequestStatus.SUCCEEDED else 1)


@requests.command()
@click.argument("request_id", metavar="ID")
@_common.store_option
@_serve.server_option
def cancel(request_id: str, store_url: str | None, server: str | None) -> None:
    """Cancel a request: nothing more runs for it."""
    done = _backends.choose(server, store_url).cancel(request_id)
    out = _render.console()
    if done.cancelled:
        out.print(f"cancelled request {request_id}")
    else:
        out.print(
            f"request {request_id} already finished ({done.status}); nothing to cancel"
        )


@requests.command()
@click.argument("request_id", metavar="ID")
@click.argument("name")
@click.option(
    "--value",
    metavar="JSON",
    default="null",
    show_default=True,
    envvar="CAIRN_REQUESTS_SIGNAL_VALUE",
    show_envvar=True,
    help="The signal's value, as JSON: what wait_for_signal(NAME) returns.",
)
@_common.store_option
@_serve.server_option
def signal(
    request_id: str, name: str, value: str, store_url: str | None, server: str | None
) -> None:
    """Send the signal NAME to a request (kept until a wait for it takes it)."""
    try:
        decoded = json.loads(value)
    except ValueError as error:
        raise click.BadParameter(
            f"not JSON ({error}); quote a string as '\"text\"'",
            param_hint="'--value'",
        ) from None
    _backends.choose(server, store_url).signal(request_id, name, decoded)
    _render.console().print(
        f"sent signal {name!r} to request {request_id}", markup=False
    )
