"""The journal of waits: which Futures a timing-dependent wait saw done.

``Future.wait(..., return_when=FIRST_COMPLETED)`` or a wait with a timeout returns
a split that depends on timing. It is recorded as a row of the waiting call (kind
``wait``, function ``Future.wait``) at the call's next position, committed like a
checkpoint; a replay reads it back where the code waits again and returns the
same split, so deterministic code takes the same path.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from cairn import _serialization
from cairn.store import CallSuccess

from . import frames

FUNCTION = "Future.wait"


class Entry:
    """One timing-dependent wait of the running call."""

    def __init__(
        self,
        frame: frames.Frame,
        futures: Sequence[Any],
        mode: enum.Enum,
        timeout: float | None,
    ) -> None:
        self.frame = frame
        limit = "no timeout" if timeout is None else "timeout"
        self.key = frame.child_key(
            ["FutureWait", mode.name, limit],
            [str(f._call_id) for f in futures],
            FUNCTION,
            "wait",
        )

    def recorded(self) -> tuple[list[int], list[int]] | None:
        """``(done, timed_out)`` positions the recorded run saw, or None."""
        store = frames.process().store
        self.frame.check_strict(self.key, store)
        row = self.frame.recorded_child(self.key, store)
        if row is None or row.output is None:
            return None
        outcome = _serialization.loads(row.output, "a journaled wait")
        return list(outcome["done"]), list(outcome["timed_out"])

    def record(self, done: list[int], timed_out: list[int]) -> None:
        """Commit what this wait saw."""
        runtime = frames.process()
        now = runtime.clock.now_ms()
        runtime.store.commit_success(
            CallSuccess(
                key=self.key,
                run=self.frame.run.run,
                attempt=1,
                run_attempts=1,
                args=None,
                output=_serialization.dumps(
                    {"done": done, "timed_out": timed_out}, "a wait's outcome"
                ),
                state_writes=None,
                started_at_ms=now,
                finished_at_ms=now,
            )
        )
