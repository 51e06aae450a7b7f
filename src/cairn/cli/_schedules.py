"""``cairn schedules add|list|pause|resume|delete``."""

from __future__ import annotations

import json

import click

from cairn import _events, _schedules, errors
from cairn.cli import _common, _render


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
def add(application: str, cron: str, input_json: str, store_url: str | None) -> None:
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
def list_schedules(application: str | None, store_url: str | None) -> None:
    """List schedules, oldest first."""
    found = _schedules.Schedules(_common.resolve_url(store_url)).list(application)
    out = _render.console()
    if not found:
        out.print("no schedules", markup=False)
    for schedule in found:
        out.print(_describe(schedule), markup=False)


@schedules.command()
@click.argument("schedule_id", metavar="ID")
@_common.store_option
def pause(schedule_id: str, store_url: str | None) -> None:
    """Stop a schedule starting requests (until resumed)."""
    done = _schedules.Schedules(_common.resolve_url(store_url)).pause(schedule_id)
    _render.console().print(f"paused {_describe(done)}", markup=False)


@schedules.command()
@click.argument("schedule_id", metavar="ID")
@_common.store_option
def resume(schedule_id: str, store_url: str | None) -> None:
    """Start a paused schedule again, from its next tick."""
    done = _schedules.Schedules(_common.resolve_url(store_url)).resume(schedule_id)
    _render.console().print(f"resumed {_describe(done)}", markup=False)


@schedules.command()
@click.argument("schedule_id", metavar="ID")
@_common.store_option
def delete(schedule_id: str, store_url: str | None) -> None:
    """Delete a schedule (the requests it started stay)."""
    _schedules.Schedules(_common.resolve_url(store_url)).delete(schedule_id)
    _render.console().print(f"deleted schedule {schedule_id}", markup=False)
