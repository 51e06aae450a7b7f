"""The ``cairn`` command: click groups named after nouns, rich output.

Commands parse their arguments, call the engine or the store, and format; every
failure ends as one ``error: ...`` line on stderr (see ``_Cli.main``).
"""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.logging import RichHandler

import cairn
from cairn import _limits, _request, errors, observability, worker
from cairn.cli import (
    _common,
    _db,
    _loading,
    _render,
    _requests,
    _schedules,
    _serve,
    _worker,
)
from cairn.types import RequestStatus


class _Cli(_common.Group):
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
            _fail("interrupted", _common.INTERRUPTED_EXIT)
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


def _fail(message: str, code: int) -> None:
    line = " ".join(message.split())
    click.echo(f"error: {line}", err=True)
    sys.exit(code)


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
    "--log-format",
    type=click.Choice(["text", "json"], case_sensitive=False),
    default="text",
    show_default=True,
    envvar="CAIRN_LOG_FORMAT",
    show_envvar=True,
    help="Log lines as text or as JSON objects; inside a function call each "
    "carries its request id, call id, function and attempt.",
)
@click.option(
    "--debug",
    is_flag=True,
    envvar="CAIRN_DEBUG",
    show_envvar=True,
    help="Show the traceback of an unexpected error.",
)
@_common.store_option
@click.version_option(cairn.__version__, "-V", "--version", prog_name="cairn")
@click.pass_context
def cli(
    ctx: click.Context,
    log_level: str,
    log_format: str,
    debug: bool,
    store_url: str | None,
) -> None:
    """Cairn: durable execution for Python agents and data pipelines.

    --store may be given here or to each command (which wins).
    """
    if isinstance(ctx.command, _Cli):
        ctx.command.debug = debug
    handler = RichHandler(
        console=_render.console(stderr=True), show_path=False, show_time=False
    )
    observability.configure_logging(log_level, log_format.lower(), handler)


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
@click.option(
    "--priority",
    type=int,
    default=0,
    show_default=True,
    help="Where workers share the store, calls of higher-priority requests are "
    "claimed first.",
)
@_common.store_option
def run(
    target: str, input_json: str | None, priority: int, store_url: str | None
) -> None:
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
    url = _common.resolve_url(store_url)
    try:
        priority = _limits.priority(priority, "--priority")
    except errors.SDKUsageError as error:
        raise click.BadParameter(error.message, param_hint="'--priority'") from None
    try:
        request_id = _request.submit(
            spec.name,
            args,
            kwargs,
            store_url=url,
            owner=worker.local_owner(url),
            priority=priority,
        )
    except (errors.SDKUsageError, errors.SerializationError) as error:
        raise click.BadParameter(error.message, param_hint="'--input'") from None
    record = _common.run_live(request_id, url)
    _render.print_result(_render.console(), record)
    sys.exit(0 if record.status is RequestStatus.SUCCEEDED else 1)


cli.add_command(_requests.requests)
cli.add_command(_schedules.schedules)
cli.add_command(_db.db)
cli.add_command(_worker.worker)
cli.add_command(_serve.serve)
