"""The call tree a request page shows, read from the store a page at a time.

What the page shows is its ``ViewState``: the maps it unfolded (all items or only
those that failed, and how many), the lists it extended with "Show more", the
calls it opened, the view (the tree, or the flat list of the calls that ran in the
latest run, or of those that failed). The page's script sends it with each
update, and the server renders exactly that, so that one request brings a page
up to date however much of the tree it unfolded.

Rows come out in document order, each knowing its depth and its ancestry
(``path``: ids from the root, a map item's group included) so that the page can
fold a subtree. A parent's children come a page (``PAGE``) at a time, a map's
items folded into one group row counted by SQL, and only the attempts of the
calls shown are read: a request of 10,000 calls costs a handful of queries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cairn.store import (
    AttemptRecord,
    CallEntry,
    GroupTally,
    RequestRecord,
    RunSpan,
    Store,
)

from .. import _errors
from . import _rows

# Items of a group and calls of a flat view per page.
PAGE = 100
# Entries of a parent per page (a map's items are one entry).
PARENT_PAGE = 300
# Rows one page renders at most, however much was unfolded.
ROW_CAP = 3000
# What a page may ask for at once.
_MAX_SHOWN = 5000
_MAX_GROUPS = 100
_MAX_PARENTS = 100
_MAX_DETAILS = 20
_MAX_ID_CHARS = 512
_VIEWS = ("tree", "ran", "problems")
_MODES = ("all", "problems")
_COUNT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True, kw_only=True)
class ViewState:
    """What a request page shows (sent by its script with each update)."""

    view: str = "tree"
    """``tree``, ``ran`` (the calls that ran in the latest run) or ``problems``."""
    shown: int = PAGE
    """Calls of a flat view shown."""
    groups: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    """Unfolded maps: group id -> (``all`` or ``problems``, items shown)."""
    parents: Mapping[str, int] = field(default_factory=dict)
    """Entries shown of a parent's children, past the first page."""
    details: tuple[str, ...] = ()
    """Calls opened."""
    log_before: int | None = None
    """The progress log's page: messages before this sequence number (None: newest)."""


def _id(value: str, what: str) -> str:
    if not value or len(value) > _MAX_ID_CHARS or "\x00" in value:
        raise _errors.bad_request("bad_view", f"{what} must be a call id")
    return value


def _count(value: str, what: str) -> int:
    if not _COUNT.fullmatch(value) or not 1 <= int(value) <= _MAX_SHOWN:
        raise _errors.bad_request(
            "bad_view", f"{what} must be a count from 1 to {_MAX_SHOWN}"
        )
    return int(value)


def parse_state(params: Mapping[str, Sequence[str]]) -> ViewState:
    """A ``ViewState`` from query parameters (``view``, ``n``, ``g``, ``p``, ``d``,
    ``log``); bad ones raise an ``ApiError`` (400) naming the problem.

    ``g=<all|problems>.<count>.<group id>`` unfolds a map, ``p=<count>.<parent
    id>`` shows more of a parent's children, ``d=<call id>`` opens a call.
    """
    view = (params.get("view") or ["tree"])[0] or "tree"
    if view not in _VIEWS:
        raise _errors.bad_request(
            "bad_view", f"view must be one of {', '.join(_VIEWS)}"
        )
    shown = _count(params["n"][0], "n") if params.get("n") else PAGE
    groups: dict[str, tuple[str, int]] = {}
    for value in params.get("g", [])[:_MAX_GROUPS]:
        mode, _, rest = value.partition(".")
        count, _, group_id = rest.partition(".")
        if mode not in _MODES:
            raise _errors.bad_request(
                "bad_view", "g must be <all|problems>.<count>.<id>"
            )
        groups[_id(group_id, "a group")] = (mode, _count(count, "a group's count"))
    parents: dict[str, int] = {}
    for value in params.get("p", [])[:_MAX_PARENTS]:
        count, _, parent_id = value.partition(".")
        parents[_id(parent_id, "a parent")] = _count(count, "a parent's count")
    details = tuple(
        dict.fromkeys(_id(value, "d") for value in params.get("d", [])[:_MAX_DETAILS])
    )
    log_before = None
    if params.get("log") and params["log"][0]:
        raw = params["log"][0]
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
            raise _errors.bad_request(
                "bad_view", "log must be an event sequence number"
            )
        log_before = int(raw)
    return ViewState(
        view=view,
        shown=shown,
        groups=groups,
        parents=parents,
        details=details,
        log_before=log_before,
    )


@dataclass(frozen=True)
class _Pending:
    """A call row waiting for the attempts of every call shown (one query)."""

    entry: CallEntry
    path: str


class Walk:
    """The rows of one request for one ``ViewState``, read with a store."""

    def __init__(
        self,
        store: Store,
        request: RequestRecord,
        runs: Sequence[RunSpan],
        state: ViewState,
    ) -> None:
        self.store = store
        self.request = request
        self.runs = runs
        self.state = state
        self._out: list[_rows.Row | _Pending] = []

    def rows(self) -> list[_rows.Row]:
        """The rows of the page, in document order."""
        self._out = []
        if self.state.view == "tree":
            self._children(None, "")
        else:
            self._flat()
        return self._finish()

    # -- the tree ------------------------------------------------------------------

    def _full(self) -> bool:
        return len(self._out) >= ROW_CAP

    def _children(self, parent_id: str | None, base: str) -> None:
        request_id = self.request.id
        limit = max(self.state.parents.get(parent_id or "", PARENT_PAGE), PARENT_PAGE)
        entries = self.store.list_entries(request_id, parent_id, 0, limit + 1)
        more = len(entries) > limit
        entries = entries[:limit]
        calls = {
            entry.record.id: entry
            for entry in self.store.get_calls(
                [k for k, folded in entries if not folded]
            )
        }
        tallies = {
            tally.id: tally
            for tally in self.store.tally_groups(
                [k for k, folded in entries if folded], self.request.run
            )
        }
        for key, folded in entries:
            if self._full():
                return
            path = f"{base}/{key}" if base else key
            if folded:
                tally = tallies.get(key)
                if tally is not None:
                    self._group(tally, path)
            elif key in calls:
                self._call(calls[key], path)
        if more and not self._full():
            total = self.store.count_entries(request_id, parent_id)
            self._out.append(
                _rows.MoreRow(
                    key=f"{base}/+" if base else "+",
                    path=f"{base}/+" if base else "+",
                    depth=base.count("/") + 1 if base else 0,
                    parent=parent_id or "",
                    group="",
                    shown=limit,
                    remaining=max(total - limit, 0),
                )
            )

    def _call(self, entry: CallEntry, path: str) -> None:
        self._out.append(_Pending(entry, path))
        if entry.has_children:
            self._children(entry.record.id, path)

    def _group(self, tally: GroupTally, path: str) -> None:
        mode, count = self.state.groups.get(tally.id, ("", PAGE))
        row = _rows.group_row(tally, path=path, mode=mode, run=self.request.run)
        self._out.append(row)
        if not mode:
            return
        problems = mode == "problems"
        items = self.store.list_group_items(tally.id, 0, count, problems=problems)
        for entry in items:
            if self._full():
                return
            self._call(entry, f"{path}/{entry.record.id}")
        total = row.problems if problems else row.total
        if total > count and not self._full():
            self._out.append(
                _rows.MoreRow(
                    key=f"{path}/+",
                    path=f"{path}/+",
                    depth=path.count("/") + 1,
                    parent="",
                    group=tally.id,
                    shown=count,
                    remaining=total - count,
                )
            )

    # -- flat views ------------------------------------------------------------------

    def _flat(self) -> None:
        shown = self.state.shown
        entries = self.store.list_calls_where(
            self.request.id,
            self.request.run,
            ran=self.state.view == "ran",
            problems=self.state.view == "problems",
            limit=min(shown, ROW_CAP) + 1,
        )
        for entry in entries[:shown]:
            self._out.append(_Pending(entry, entry.record.id))
        if len(entries) > shown:
            self._out.append(
                _rows.MoreRow(
                    key="+",
                    path="+",
                    depth=0,
                    parent="",
                    group="",
                    shown=shown,
                    remaining=-1,  # unknown: at least one more
                )
            )

    # -- rows -----------------------------------------------------------------------

    def _finish(self) -> list[_rows.Row]:
        wanted = [
            item.entry.record.id
            for item in self._out
            if isinstance(item, _Pending) and _rows.needs_attempts(item.entry.record)
        ]
        failed: dict[str, list[AttemptRecord]] = {}
        for attempt in self.store.list_attempts_of(wanted):
            failed.setdefault(attempt.call_id, []).append(attempt)
        rows: list[_rows.Row] = []
        for item in self._out:
            if not isinstance(item, _Pending):
                rows.append(item)
                continue
            record = item.entry.record
            found = _rows.attempts(record, failed.get(record.id, []))
            rows.append(
                _rows.call_row(
                    record,
                    found,
                    request=self.request,
                    runs=self.runs,
                    path=item.path,
                    has_children=item.entry.has_children,
                )
            )
        return rows


def path_of(store: Store, call_id: str) -> str:
    """The ancestry of a call, as the tree's rows name it (ids from the root, a map
    item's group included)."""
    parts: list[str] = []
    seen: set[str] = set()
    current = store.get_call(call_id)
    while current is not None and current.id not in seen:
        seen.add(current.id)
        parts.append(current.id)
        if current.kind == "map_item" and current.group_id is not None:
            parts.append(current.group_id)
        current = store.get_call(current.parent_id) if current.parent_id else None
    return "/".join(reversed(parts))
