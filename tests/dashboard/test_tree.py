"""The call tree's rows and timeline, from records built by hand."""

from __future__ import annotations

from cairn._request import AttemptInfo, CallInfo
from cairn.server._dashboard import _tree
from cairn.store import AttemptRecord, RequestRecord
from cairn.types import CallStatus, RequestStatus

T0 = 1_000_000.0


def _record(status: RequestStatus = RequestStatus.SUCCEEDED) -> RequestRecord:
    return RequestRecord(
        id="req",
        application="app",
        code_ref=None,
        status=status,
        failure_reason=None,
        error=None,
        input=b"{}",
        output=b"null",
        headers={},
        run=2,
        strict_replay=False,
        progress=None,
        created_at_ms=T0,
        started_at_ms=T0,
        finished_at_ms=T0 + 1000,
    )


def _call(
    call_id: str,
    parent: str | None,
    seq: int,
    *,
    kind: str = "call",
    start: float = 0,
    end: float = 10,
    served: bool = False,
) -> CallInfo:
    return CallInfo(
        id=call_id,
        function=f"f_{kind}",
        kind=kind,
        parent_id=parent,
        seq=seq,
        status=CallStatus.SUCCEEDED,
        attempts=[
            AttemptInfo(
                attempt=1,
                run=1 if served else 2,
                outcome="success",
                duration_s=(end - start) / 1000,
                error=None,
                retry_delay_s=None,
            )
        ],
        started_at_ms=T0 + start,
        finished_at_ms=T0 + end,
        served_from_checkpoint=served,
        ran_in_latest_run=not served,
        error=None,
    )


def _attempt(call: CallInfo) -> AttemptRecord:
    assert call.started_at_ms is not None and call.finished_at_ms is not None
    return AttemptRecord(
        call_id=call.id,
        attempt=1,
        run=call.attempts[0].run,
        outcome="success",
        error=None,
        started_at_ms=call.started_at_ms,
        finished_at_ms=call.finished_at_ms,
        retry_delay_s=None,
    )


def _tree_of(calls: list[CallInfo], groups: dict[str, str | None]) -> _tree.Tree:
    return _tree.Tree(_record(), calls, groups, [_attempt(c) for c in calls], T0)


def test_rows_groups_timeline_and_checkpoints() -> None:
    app = _call("req", None, 0, kind="app", end=1000)
    served = _call("a", "req", 0, served=True, start=-5000, end=-4000)
    items = [
        _call(f"m{i}", "req", i, kind="map_item", start=500, end=600) for i in range(3)
    ]
    child = _call("c", "a", 0, start=0, end=250)
    tree = _tree_of([app, served, *items, child], {f"m{i}": "g" for i in range(3)})
    rows = tree.rows()
    assert [(r.kind, r.path, r.depth) for r in rows] == [
        ("call", "req", 0),
        ("call", "req/a", 1),
        ("call", "req/a/c", 2),
        ("group", "req/g", 1),
    ]
    app_row, served_row, child_row, group_row = rows
    assert isinstance(app_row, _tree.CallRow) and app_row.segments[0].width == 100.0
    assert isinstance(served_row, _tree.CallRow)
    assert served_row.marker == "checkpoint" and served_row.segments == []
    assert isinstance(child_row, _tree.CallRow)
    assert (child_row.segments[0].left, child_row.segments[0].width) == (0.0, 25.0)
    assert isinstance(group_row, _tree.GroupRow)
    assert group_row.total == 3 and group_row.counts == [("succeeded", 3)]
    assert (group_row.segments[0].left, group_row.segments[0].width) == (50.0, 10.0)
    item_rows = tree.group_rows("g", 0, only_problems=False)
    assert [r.path for r in item_rows] == ["req/g/m0", "req/g/m1", "req/g/m2"]
    assert tree.group_rows("g", 0, only_problems=True) == []
    assert tree.path("m1") == "req/g/m1"


def test_long_lists_are_cut_with_a_more_row() -> None:
    app = _call("req", None, 0, kind="app", end=1000)
    calls = [_call(f"s{i}", "req", i) for i in range(_tree.PAGE_ROWS + 50)]
    tree = _tree_of([app, *calls], {})
    rows = tree.rows()
    assert len(rows) == _tree.PAGE_ROWS + 1
    more = rows[-1]
    assert isinstance(more, _tree.MoreRow)
    assert (more.parent, more.offset, more.remaining) == ("req", 299, 51)
    rest = tree.child_rows("req", more.offset)
    assert [r.path for r in rest] == [f"req/s{i}" for i in range(299, 350)]
