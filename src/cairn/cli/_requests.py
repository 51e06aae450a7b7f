"""``cairn requests list|show|replay|cancel|signal``."""

from __future__ import annotations

import json
import sys

import click

import cairn
from cairn import _calls, _registry, _request, errors
from cairn.cli import _common, _loading, _render, _serve
from cairn.store import RequestRecord, Store, redact_url
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
    if server:
        return _serve.remote_list(server, application, status, limit)
    with _common.opened(_common.resolve_url(store_url)) as store:
        records = store.list_requests(
            application=application,
            status=RequestStatus(status.lower()) if status else None,
            limit=limit,
        )
        app_calls = {r.id: store.get_call(r.id) for r in records}
        url = store.url
    out = _render.console()
    if not records:
        out.print(f"no requests in {redact_url(url)}", markup=False)
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
    if server:
        return _serve.remote_show(server, request_id, tracebacks)
    url = _common.resolve_url(store_url)
    request = cairn.get_request(request_id, store=url)
    with _common.opened(url) as store:
        record = store.get_request(request_id)
        call_records = store.list_calls(request_id)
        waiting = _request.waiting_for(store, record) if record else None
    groups = {c.id: c.group_id for c in call_records}
    app_call = next((c for c in call_records if c.id == request_id), None)
    if record is None:
        raise errors.RequestNotFound(
            f"no request with id {request_id!r} in {redact_url(url)}"
        )
    calls = request.calls()
    out = _render.console()
    for line in _render.summary(record, app_call, waiting):
        out.print(line)
    out.print()
    out.print(_render.call_tree(calls, groups, tracebacks))
    out.print(_render.run_counts(calls, record.run))


def _resolve_call(store: Store, request_id: str, prefix: str) -> str:
    ids = [c.id for c in store.list_calls(request_id)]
    if prefix in ids:
        return prefix
    matches = [i for i in ids if i.startswith(prefix)]
    if len(matches) == 1:
        return matches[0]
    what = "several calls" if matches else "no call"
    raise click.BadParameter(
        f"request {request_id} has {what} with an id starting {prefix!r} "
        "(see 'cairn requests show')",
        param_hint="'--from-call'",
    )


def _load_request_code(record: RequestRecord, app: str | None) -> None:
    if app is not None:
        source, name = _loading.split_target(app)
        _loading.load_source(source)
        if name is not None and name != record.application:
            raise click.BadParameter(
                f"request {record.id} is of application {record.application!r}, "
                f"not {name!r}",
                param_hint="'--app'",
            )
    elif record.code_ref is None:
        raise click.UsageError(
            f"request {record.id} recorded no code location: pass --app FILE_OR_MODULE"
        )
    else:
        try:
            _loading.load_code_ref(record.code_ref)
        except click.UsageError as error:
            raise click.UsageError(
                f"{error.format_message()} (recorded code location of request "
                f"{record.id}); pass --app FILE_OR_MODULE to load it from elsewhere"
            ) from None
    spec = _registry.find(record.application)
    if spec is None or spec.application is None:
        raise click.UsageError(
            f"the loaded code defines no application {record.application!r}"
            + ("" if app else " (pass --app FILE_OR_MODULE)")
        )


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
    if server:
        return _serve.remote_replay(server, request_id, from_call, strict)
    url = _common.resolve_url(store_url)
    with _common.opened(url) as store:
        record = store.get_request(request_id)
        if record is None:
            raise errors.RequestNotFound(
                f"no request with id {request_id!r} in {redact_url(url)}"
            )
        forced = _resolve_call(store, request_id, from_call) if from_call else None
    _load_request_code(record, app)
    with _common.opened(url) as store:
        store.start_replay(
            request_id,
            from_call=forced,
            strict=strict,
            now_ms=_calls.now_ms(),
            owner=_request.local_owner(url),
        )
    record = _common.run_live(request_id, url)
    out = _render.console()
    _render.print_result(out, record)
    calls = cairn.get_request(request_id, store=url).calls()
    out.print(_render.run_counts(calls, record.run))
    sys.exit(0 if record.status is RequestStatus.SUCCEEDED else 1)


@requests.command()
@click.argument("request_id", metavar="ID")
@_common.store_option
@_serve.server_option
def cancel(request_id: str, store_url: str | None, server: str | None) -> None:
    """Cancel a request: nothing more runs for it."""
    if server:
        return _serve.remote_cancel(server, request_id)
    request = cairn.get_request(request_id, store=_common.resolve_url(store_url))
    status = request.status()
    out = _render.console()
    if status.finished:
        out.print(
            f"request {request_id} already finished ({status}); nothing to cancel"
        )
        return
    request.cancel()
    out.print(f"cancelled request {request_id}")


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
    request_id: str,
    name: str,
    value: str,
    store_url: str | None,
    server: str | None,
) -> None:
    """Send the signal NAME to a request (kept until a wait for it takes it)."""
    try:
        decoded = json.loads(value)
    except ValueError as error:
        raise click.BadParameter(
            f"not JSON ({error}); quote a string as '\"text\"'",
            param_hint="'--value'",
        ) from None
    if server:
        return _serve.remote_signal(server, request_id, name, decoded)
    request = _request.Request(request_id, _common.resolve_url(store_url))
    request.signal(name, decoded)
    _render.console().print(
        f"sent signal {name!r} to request {request_id}", markup=False
    )
