"""``cairn schedules add|list|pause|resume|delete``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from cairn import _events, _schedules, errors
from cairn.cli import _common, _render, _serve

if TYPE_CHECKING:
    from cairn import client


def _remote(data: dict[str, Any]) -> _schedules.Schedule:
    return _schedules.Schedule(
        id=data["id"],
        application=data["application"],
        cron=data["cron"],
        input=data.get("input"),
        paused=bool(data["paused"]),
        next_at_ms=float(data["next_at"]),
        last_at_ms=data.get("last_at"),
        last_request_id=data.get("last_request_id"),
    )


def _server(url: str) -> client.Client:
    from cairn import client  # httpx loads only for --server

    return client.Client(url)


@click.group(cls=_common.Group)
def schedules() -> None:
    """Start applications on cron expressions (UTC), from the serving workers."""


def _describe(schedule: _schedules.Schedule) -> str:
    state = "paused" if schedule.paused else f"next {_events.iso(schedule.next_at_ms)}"
    last = (
        ""
        if schedule.last_request_id is None
        else f", last request {schedule.last_request_id}"
    )
    return (
        f"{schedule.id}  {schedule.application}  '{schedule.cron}'  "
        f"input {json.dumps(schedule.input)}  {state}{last}"
    )


@schedules.command()
@click.argument("application", metavar="APP")
@click.option(
    "--cron",
    required=True,
    envvar="CAIRN_SCHEDULES_ADD_CRON",
    show_envvar=True,
    help="Five fields, UTC: minute hour day-of-month month day-of-week "
    "(e.g. '0 9 * * MON-FRI').",
)
@click.option(
    "--input",
    "input_json",
    metavar="JSON",
    default="null",
    show_default=True,
    envvar="CAIRN_SCHEDULES_ADD_INPUT",
    show_envvar=True,
    help="The application's input, as an invoke's JSON body: its first argument.",
)
@_common.store_option
@_serve.server_option
def add(
    application: str,
    cron: str,
    input_json: str,
    store_url: str | None,
    server: str | None,
) -> None:
    """Start APP on a cron schedule; each tick starts one request."""
    try:
        value = json.loads(input_json)
    except ValueError as error:
        raise click.BadParameter(
            f"not JSON ({error})", param_hint="'--input'"
        ) from None
    try:
        _schedules.check_cron(cron)
    except errors.SDKUsageError as error:
        raise click.BadParameter(error.message, param_hint="'--cron'") from None
    if server:
        with _server(server) as http:
            made = _remote(http.add_schedule(application, cron, value))
    else:
        made = _schedules.Schedules(_common.resolve_url(store_url)).add(
            application, cron, value
        )
    _render.console().print(f"added {_describe(made)}", markup=False)


@schedules.command("list")
@click.option(
    "--app",
    "application",
    metavar="NAME",
    envvar="CAIRN_SCHEDULES_LIST_APP",
    show_envvar=True,
    help="Only schedules of this application.",
)
@_common.store_option
@_serve.server_option
def list_schedules(
    application: str | None, store_url: str | None, server: str | None
) -> None:
    """List schedules, oldest first."""
    if server:
        with _server(server) as http:
            found = [_remote(s) for s in http.schedules()]
        found = [s for s in found if application in (None, s.application)]
    else:
        found = _schedules.Schedules(_common.resolve_url(store_url)).list(application)
    out = _render.console()
    if not found:
        out.print("no schedules", markup=False)
    for schedule in found:
        out.print(_describe(schedule), markup=False)


def _change(
    schedule_id: str, verb: str, store_url: str | None, server: str | None
) -> _schedules.Schedule:
    if server:
        with _server(server) as http:
            return _remote(http.change_schedule(schedule_id, verb))
    found = _schedules.Schedules(_common.resolve_url(store_url))
    done: _schedules.Schedule = getattr(found, verb)(schedule_id)
    return done


@schedules.command()
@click.argument("schedule_id", metavar="ID")
@_common.store_option
@_serve.server_option
def pause(schedule_id: str, store_url: str | None, server: str | None) -> None:
    """Stop a schedule starting requests (until resumed)."""
    _render.console().print(
        f"paused {_describe(_change(schedule_id, 'pause', store_url, server))}",
        markup=False,
    )


@schedules.command()
@click.argument("schedule_id", metavar="ID")
@_common.store_option
@_serve.server_option
def resume(schedule_id: str, store_url: str | None, server: str | None) -> None:
    """Start a paused schedule again, from its next tick."""
    _render.console().print(
        f"resumed {_describe(_change(schedule_id, 'resume', store_url, server))}",
        markup=False,
    )


@schedules.command()
@click.argument("schedule_id", metavar="ID")
@_common.store_option
@_serve.server_option
def delete(schedule_id: str, store_url: str | None, server: str | None) -> None:
    """Delete a schedule (the requests it started stay)."""
    if server:
        with _server(server) as http:
            http.delete_schedule(schedule_id)
    else:
        _schedules.Schedules(_common.resolve_url(store_url)).delete(schedule_id)
    _render.console().print(f"deleted schedule {schedule_id}", markup=False)
