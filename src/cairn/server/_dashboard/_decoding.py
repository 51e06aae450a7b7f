"""Values rendered for the pages away from the event loop, within a time budget.

``_values`` bounds the text a value becomes; this module bounds where and how long
the work runs. JSON (application inputs and outputs) is parsed and formatted in a
worker thread: parsing is linear in a size that is capped. Pickles are decoded in
a child process started for the page part (~30 ms), killed when it takes longer
than ``BUDGET_S``: even with stand-in classes, unpickling can take memory or time
without bound (a 12-byte pickle can ask for a memo of 2^32 entries; a dict key
that shares its halves 60 levels deep takes years to hash) inside C code that
holds the GIL, so no thread could be stopped and the whole server would stall.
A value that did not decode in time is shown as too large (download it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool

from . import _values

logger = logging.getLogger(__name__)

# How long a page waits for its pickles to decode (the child is killed after).
BUDGET_S = 0.75
# Decoding children at once per server; more pages wait for a turn.
PROCESSES = 2
# Waiting for a turn is bounded too, so that pickles cannot hold pages up for long.
_TURN_S = 5.0

Job = tuple[str, bytes | None, Sequence[str]]


class Values:
    """Renders the values the pages show: ``await values.json(data)``, ..."""

    def __init__(self, *, budget_s: float = BUDGET_S, processes: int = PROCESSES):
        self._budget_s = budget_s
        self._processes = processes
        self._turns: asyncio.Semaphore | None = None

    async def json(self, data: bytes | None) -> _values.Shown:
        """An application's input or output (JSON), formatted."""
        return await run_in_threadpool(_values.json_value, data)

    async def arguments(
        self, data: bytes | None, names: Sequence[str]
    ) -> _values.Arguments:
        """A call's arguments: JSON for an application call, else a pickle."""
        if data is None or not _values.is_pickle(data):
            return await run_in_threadpool(_values.arguments, data, names)
        (found,) = await self._decode([("arguments", data, names)])
        return found

    async def call(
        self, args: bytes | None, output: bytes | None, names: Sequence[str]
    ) -> tuple[_values.Arguments, _values.Shown]:
        """A function call's pickled arguments and output, decoded by one child."""
        found_args, found_output = await self._decode(
            [("arguments", args, names), ("value", output, ())]
        )
        assert isinstance(found_output, _values.Shown)
        return found_args, found_output

    async def _decode(self, jobs: list[Job]) -> list[_values.Arguments]:
        if self._turns is None:  # created on the loop that uses it
            self._turns = asyncio.Semaphore(self._processes)
        try:
            async with asyncio.timeout(_TURN_S):
                await self._turns.acquire()
        except TimeoutError:
            return [_undecoded(job) for job in jobs]
        try:
            found = await self._child(jobs)
        finally:
            self._turns.release()
        return found if found is not None else [_undecoded(job) for job in jobs]

    async def _child(self, jobs: list[Job]) -> list[_values.Arguments] | None:
        header = {
            "jobs": [
                {
                    "kind": kind,
                    "size": -1 if data is None else len(data),
                    "names": list(names),
                }
                for kind, data, names in jobs
            ]
        }
        message = json.dumps(header).encode() + b"\n"
        message += b"".join(data for _, data, _ in jobs if data is not None)
        try:
            # -I -S: the standard library only, no site hooks, no environment.
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-S",
                _values.__file__,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as error:
            logger.warning("cannot start a process to decode values: %s", error)
            return None
        try:
            async with asyncio.timeout(self._budget_s):
                out, _ = await child.communicate(message)
        except TimeoutError:
            return None
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        try:
            answer: Any = json.loads(out)
            found = [_values.from_wire(item) for item in answer]
        except (ValueError, KeyError, TypeError):
            return None  # it ran out of memory, or was ended by its alarm
        return found if len(found) == len(jobs) else None


def _undecoded(job: Job) -> _values.Arguments:
    kind, data, _ = job
    if data is None:  # nothing to decode: what the child would have said
        return (
            _values.arguments(None)
            if kind == "arguments"
            else _values.pickled_value(None)
        )
    return _values.undecoded(data, "arguments" if kind == "arguments" else "value")
