"""The ``cairn`` command: click groups named after nouns, rich output.

Commands parse their arguments, call the engine or the store, and format; every
failure ends as one ``error: ...`` line on stderr (see ``_Cli.main``).
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from rich.logging import RichHandler

import cairn
from cairn import _calls, _registry, _request, errors
from cairn.cli import _live, _loading, _render
from cairn.store import SCHEMA_VERSION, RequestRecord, Store, default_url, open_store
from cairn.types import RequestStatus

F = TypeVar("F", bound=Callable[..., Any])
_DEFAULT_STORE = "sqlite:///.cairn/cairn.db"
_INTERRUPTED_EXIT = 130


class _Group(click.Group):
    """Lists commands in declaration order."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


class _Cli(_Group):
    """The root group: turns every error into one line on stderr."""

    debug = False

    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.NoArgsIsHelpError as error:
            error.show()
            sys.exit(error.exit_code)
        except click.UsageError as error:
            hint = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
            _fail(error.format_message() + hint, error.exit_code)
        except click.ClickException as error:
            _fail(error.format_message(), error.exit_code)
        except click.Abort:
            _fail("interrupted", _INTERRUPTED_EXIT)
        except errors.CairnError as error:
            _fail(f"{error.message} ({error.code})", 1)
        except OSError as error:
            _fail(str(error), 1)
        except Exception as error:
            if self.debug:
                raise
            _fail(
                f"unexpected {type(error).__name__}: {error} "
                "(run with --debug for the traceback)",
                1,
            )
        sys.exit(code if isinstance(code, int) else 0)


class _Interrupted(click.ClickException):
    exit_code = _INTERRUPTED_EXIT


def _fail(message: str, code: int) -> None:
    line = " ".join(message.split())
    click.echo(f"error: {line}", err=True)
    sys.exit(code)


def _store_option(command: F) -> F:
    return click.option(
        "--store",
        "store_url",
        metavar="URL",
        envvar="CAIRN_STORE",
        show_envvar=True,
        help=(
            "Store URL: sqlite:///relative.db, sqlite:////absolute.db or "
            f"postgresql://…  [default: {_DEFAULT_STORE}]"
        ),
    )(command)


@contextmanager
def _opened(store_url: str | None) -> Iterator[Store]:
    store = open_store(store_url or default_url())
    try:
        yield store
    finally:
        store.close()


@click.group(
    cls=_Cli,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
    envvar="CAIRN_LOG_LEVEL",
    show_envvar=True,
    help="Engine log messages at this level and above go to stderr.",
)
@click.option(
    "--debug",
    is_flag=True,
    envvar="CAIRN_DEBUG",
    show_envvar=True,
    help="Show the traceback of an unexpected error.",
)
@click.version_option(cairn.__version__, "-V", "--version", prog_name="cairn")
@click.pass_context
def cli(ctx: click.Context, log_level: str, debug: bool) -> None:
    """Cairn: durable execution for Python agents and data pipelines."""
    if isinstance(ctx.command, _Cli):
        ctx.command.debug = debug
    handler = RichHandler(
        console=_render.console(stderr=True), show_path=False, show_time=False
    )
    logging.basicConfig(
        level=log_level.upper(), handlers=[handler], format="%(message)s", force=True
    )


def _run_live(request_id: str, store_url: str) -> RequestRecord:
    """Run a submitted request here, with the live progress display."""
    err = _render.console(stderr=True)
    try:
        with _live.LiveProgress(request_id, store_url, err) as live:
            return _request._run(request_id, store_url, on_tick=live.tick)
    except KeyboardInterrupt:
        raise _Interrupted(
            f"interrupted: request {request_id} did not finish; resume it with "
            f"'cairn requests replay {request_id}'"
        ) from None


@cli.command()
@click.argument("target", metavar="FILE_OR_MODULE:APP")
@click.option(
    "--input",
    "input_json",
    metavar="JSON",
    envvar="CAIRN_RUN_INPUT",
    show_envvar=True,
    help=(
        "The application's input: a JSON object mapping parameter names to values, "
        "or a JSON array of positional arguments; for an application with one "
        "parameter, any other JSON value is that argument."
    ),
)
@_store_option
def run(target: str, input_json: str | None, store_url: str | None) -> None:
    """Run an application here, durably, with a live progress display.

    FILE_OR_MODULE is a path to a .py file or a dotted module name; APP is the
    application function's name (optional when the code defines only one).
    Prints the request id, the outcome and the output as JSON; exits 1 when the
    request fails.
    """
    source, app = _loading.split_target(target)
    module = _loading.load_source(source)
    spec = _loading.find_application(module, source, app)
    args, kwargs = _loading.parse_input(input_json, spec)
    url = store_url or default_url()
    try:
        request_id = _request.submit(spec.name, args, kwargs, store_url=url)
    except (errors.SDKUsageError, errors.SerializationError) as error:
        raise click.BadParameter(error.message, param_hint="'--input'") from None
    record = _run_live(request_id, url)
    _render.print_result(_render.console(), record)
    sys.exit(0 if record.status is RequestStatus.SUCCEEDED else 1)


@cli.group(cls=_Group)
def requests() -> None:
    """Inspect, replay and cancel requests."""


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
@_store_option
def list_requests(
    application: str | None, status: str | None, limit: int, store_url: str | None
) -> None:
    """List requests, newest first."""
    with _opened(store_url) as store:
        records = store.list_requests(
            application=application,
            status=RequestStatus(status.lower()) if status else None,
            limit=limit,
        )
        app_calls = {r.id: store.get_call(r.id) for r in records}
        url = store.url
    out = _render.console()
    if not records:
        out.print(f"no requests in {url}", markup=False)
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
@_store_option
def show(request_id: str, tracebacks: bool, store_url: str | None) -> None:
    """Show a request: its outcome and the tree of its calls with their attempts."""
    url = store_url or default_url()
    request = cairn.get_request(request_id, store=url)
    with _opened(url) as store:
        record = store.get_request(request_id)
        call_records = store.list_calls(request_id)
    groups = {c.id: c.group_id for c in call_records}
    app_call = next((c for c in call_records if c.id == request_id), None)
    if record is None:
        raise errors.RequestNotFound(f"no request with id {request_id!r} in {url}")
    calls = request.calls()
    out = _render.console()
    for line in _render.summary(record, app_call):
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
@_store_option
def replay(
    request_id: str,
    from_call: str | None,
    strict: bool,
    app: str | None,
    store_url: str | None,
) -> None:
    """Run a request again with the current code; checkpointed calls are served.

    Calls whose outputs were committed return them without running; failed,
    timed-out and new calls run. Exits 1 when the replayed request fails.
    """
    url = store_url or default_url()
    with _opened(url) as store:
        record = store.get_request(request_id)
        if record is None:
            raise errors.RequestNotFound(f"no request with id {request_id!r} in {url}")
        forced = _resolve_call(store, request_id, from_call) if from_call else None
    _load_request_code(record, app)
    with _opened(url) as store:
        store.start_replay(
            request_id, from_call=forced, strict=strict, now_ms=_calls.now_ms()
        )
    record = _run_live(request_id, url)
    out = _render.console()
    _render.print_result(out, record)
    calls = cairn.get_request(request_id, store=url).calls()
    out.print(_render.run_counts(calls, record.run))
    sys.exit(0 if record.status is RequestStatus.SUCCEEDED else 1)


@requests.command()
@click.argument("request_id", metavar="ID")
@_store_option
def cancel(request_id: str, store_url: str | None) -> None:
    """Cancel a request: nothing more runs for it."""
    request = cairn.get_request(request_id, store=store_url or default_url())
    status = request.status()
    out = _render.console()
    if status.finished:
        out.print(
            f"request {request_id} already finished ({status}); nothing to cancel"
        )
        return
    request.cancel()
    out.print(f"cancelled request {request_id}")


@cli.group(cls=_Group)
def db() -> None:
    """Create, migrate and inspect the store."""


def _count_requests(store: Store) -> dict[str, int]:
    counts: dict[str, int] = {}
    seen: set[str] = set()
    before: float | None = None
    while True:
        page = store.list_requests(limit=500, before_ms=before)
        fresh = [r for r in page if r.id not in seen]
        for record in fresh:
            seen.add(record.id)
            counts[record.status] = counts.get(record.status, 0) + 1
        if len(page) < 500 or not fresh:
            return counts
        # Include the boundary millisecond again: requests created in it may span pages.
        before = math.nextafter(page[-1].created_at_ms, math.inf)


@db.command()
@_store_option
def status(store_url: str | None) -> None:
    """Show the store's URL, schema version and number of requests."""
    with _opened(store_url) as store:
        counts = _count_requests(store)
        url = store.url
    detail = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    out = _render.console()
    out.print(f"store           {url}", markup=False)
    out.print(f"schema version  {SCHEMA_VERSION}")
    out.print(
        f"requests        {sum(counts.values())}" + (f" ({detail})" if detail else "")
    )


def _is_new_sqlite_store(url: str) -> bool | None:
    from cairn.store import sqlite

    try:
        path, _options = sqlite.parse_url(url)
    except errors.StoreError:
        return None
    return not path.exists() or path.stat().st_size == 0


@db.command()
@_store_option
def migrate(store_url: str | None) -> None:
    """Create the store, or bring its schema up to this Cairn's version."""
    url = store_url or default_url()
    new = _is_new_sqlite_store(url)
    with _opened(url) as store:
        url = store.url
    out = _render.console()
    if new:
        out.print(
            f"created store {url} at schema version {SCHEMA_VERSION}", markup=False
        )
    else:
        out.print(
            f"store {url} is at schema version {SCHEMA_VERSION} (up to date)",
            markup=False,
        )
