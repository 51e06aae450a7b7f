"""The request page's "Streamed output" pane: what the request's calls streamed
(``ctx.stream.write``) up to the page's event, rendered with the page; the page's
one progress stream appends what comes after (dashboard.js)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from cairn.store import Store

# The newest chunks rendered with the page; the API's .../stream has them all.
SHOWN_CHUNKS = 2000


@dataclass
class Pane:
    """What the pane shows when the page loads."""

    pieces: list[tuple[int | None, str]] = field(default_factory=list)
    """``(run, text)``: a run number where a new run's chunks begin."""
    count: int = 0
    last_seq: int = 0
    last_run: int | None = None
    more: bool = False
    """Older chunks exist than those shown."""


def text_of(payload: dict[str, Any]) -> str:
    """A chunk as the pane shows it (as dashboard.js does)."""
    if "text" in payload:
        return str(payload["text"])
    if "json" in payload:
        return json.dumps(payload["json"]) + "\n"
    size = len(base64.b64decode(payload.get("bytes_base64", "")))
    return f"[{size} bytes]\n"


def read(store: Store, request_id: str, until_seq: int) -> Pane:
    """The pane of a request whose page shows the events up to ``until_seq``."""
    events = store.list_stream_chunks(request_id, until_seq, SHOWN_CHUNKS + 1)
    pane = Pane(more=len(events) > SHOWN_CHUNKS)
    run = None
    for event in reversed(events[:SHOWN_CHUNKS]):
        chunk_run = event.payload.get("run")
        pane.pieces.append(
            (
                chunk_run if run is not None and chunk_run != run else None,
                text_of(event.payload),
            )
        )
        run = chunk_run
        pane.last_run = chunk_run
        pane.count += 1
        pane.last_seq = event.seq
    return pane
