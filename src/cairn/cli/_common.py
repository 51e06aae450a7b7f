"""Pieces every ``cairn`` command shares: the store option, opening it, running live."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from cairn import worker
from cairn.cli import _live, _render
from cairn.store import RequestRecord, Store, default_url, open_store

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_STORE = "sqlite:///.cairn/cairn.db"
INTERRUPTED_EXIT = 130  # 128 + SIGINT, as a shell reports Ctrl-C
TERMINATED_EXIT = 143  # 128 + SIGTERM


class Group(click.Group):
    """Lists commands in declaration order."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


class Interrupted(click.ClickException):
    """Ctrl-C while a request ran here."""

    exit_code = INTERRUPTED_EXIT


class Terminated(Interrupted):
    """SIGTERM while a request ran here."""

    exit_code = TERMINATED_EXIT


class _Terminated(BaseException):
    """SIGTERM, raised where the process was, to unwind as Ctrl-C does."""


def _terminate(_signum: int, _frame: object) -> None:
    raise _Terminated


def store_option(command: F) -> F:
    """The ``--store`` option every command takes."""
    return click.option(
        "--store",
        "store_url",
        metavar="URL",
        envvar="CAIRN_STORE",
        show_envvar=True,
        help=(
            "Store URL: sqlite:///relative.db, sqlite:////absolute.db or "
            f"postgresql://…  [default: {DEFAULT_STORE}]"
        ),
    )(command)


def resolve_url(store_url: str | None) -> str:
    """The command's ``--store``, else the root's, else ``CAIRN_STORE`` / the default."""
    ctx = click.get_current_context()
    root = ctx.find_root()
    given = click.core.ParameterSource.COMMANDLINE
    root_url = root.params.get("store_url")
    if store_url and ctx.get_parameter_source("store_url") is given:
        return store_url
    if root_url and root.get_parameter_source("store_url") is given:
        return str(root_url)
    return store_url or str(root_url or "") or default_url()


@contextmanager
def opened(url: str) -> Iterator[Store]:
    """The store at ``url`` (see ``resolve_url``), closed afterwards."""
    store = open_store(url)
    try:
        yield store
    finally:
        store.close()


def run_live(request_id: str, store_url: str) -> RequestRecord:
    """Run a submitted request here, with the live progress display."""
    err = _render.console(stderr=True)
    # Stopped, the engine hands its calls back and the request stays resumable:
    # by a replay, or by any worker that serves its functions.
    resume = (
        f"request {request_id} did not finish; resume it with "
        f"'cairn requests replay {request_id}'"
    )
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with _live.LiveProgress(request_id, store_url, err) as live:
            return worker.run_here(request_id, store_url, on_tick=live.tick)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: {resume}") from None
    except _Terminated:
        raise Terminated(f"terminated: {resume}") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
