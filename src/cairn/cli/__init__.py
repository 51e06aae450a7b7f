"""The ``cairn`` command."""

from __future__ import annotations


def main() -> None:
    """Entry point."""
    from cairn.cli._commands import cli

    cli()
