"""The call tree's rows and timeline, read from a real SQLite store a page at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.server import _errors
from cairn.server._dashboard import _rows, _timeline, _tree
from cairn.store import CallKey, RequestRecord, RunSpan, Store, open_store
from tests.contract.test_store import T0, WORKER, child, failure, new_request, success


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(f"sqlite:///{tmp_path / 'tree.db'}")


def _request(store: Store, items: int = 250, children: int = 2) -> dict[str, CallKey]:
    """app -> fetch, ``children - 2`` more calls, a map of ``items`` (every 80th
    fails), publish."""
    root = new_request(store)
    assert store.claim_call(WORKER, 0, T0) is not None
    fetch = child(root, "fetch", 1, dispatched=False)
    store.commit_success(success(fetch, started_at_ms=T0 + 1, finished_at_ms=T0 + 2))
    for seq in range(2, children):
        extra = child(root, "step", seq, dispatched=False)
        store.commit_success(
            success(extra, started_at_ms=T0 + 2, finished_at_ms=T0 + 3)
        )
    keys = [
        child(root, "square", i, kind="map_item", group_id="g") for i in range(items)
    ]
    for index, key in enumerate(keys):
        if index % 80 == 1:
            store.record_failure(
                failure(key, final=True, started_at_ms=T0 + 5, finished_at_ms=T0 + 6)
            )
        else:
            store.commit_success(
                success(key, started_at_ms=T0 + 5, finished_at_ms=T0 + 6)
            )
    publish = child(root, "publish", 9999, dispatched=False)
    store.commit_success(success(publish, started_at_ms=T0 + 8, finished_at_ms=T0 + 9))
    return {"root": root, "fetch": fetch, "publish": publish}


def _walk(store: Store, state: _tree.ViewState | None = None) -> list[_rows.Row]:
    record = store.get_request("req-1")
    assert record is not None
    return _tree.Walk(store, record, [], state or _tree.ViewState()).rows()


def _labels(rows: list[_rows.Row]) -> list[str]:
    return [row.label if not isinstance(row, _rows.MoreRow) else "+" for row in rows]


def test_a_map_is_one_row_until_unfolded_a_page_at_a_time(store: Store) -> None:
    keys = _request(store)
    rows = _walk(store)
    assert _labels(rows) == ["app", "fetch", "square.map", "publish"]
    group = rows[2]
    assert isinstance(group, _rows.GroupRow)
    assert (group.total, group.problems, group.ran, group.served) == (250, 4, 250, 0)
    assert group.counts == (("failed", 4), ("succeeded", 246))
    assert group.status == "failed" and group.mode == ""
    # Paths name the ancestry (the group included) for folding.
    assert rows[1].path == f"{keys['root'].id}/{keys['fetch'].id}"
    assert group.path == f"{keys['root'].id}/g"
    opened = _walk(store, _tree.ViewState(groups={"g": ("all", 100)}))
    assert _labels(opened)[:4] == ["app", "fetch", "square.map", "square[0]"]
    items = [
        r for r in opened if isinstance(r, _rows.CallRow) and r.call_kind == "map_item"
    ]
    assert len(items) == 100
    assert items[-1].path == f"{keys['root'].id}/g/{items[-1].id}"
    more = next(r for r in opened if isinstance(r, _rows.MoreRow))
    assert (more.group, more.shown, more.remaining) == ("g", 100, 150)
    assert _labels(opened)[-1] == "publish"
    failed = _walk(store, _tree.ViewState(groups={"g": ("problems", 100)}))
    assert [r.label for r in failed if isinstance(r, _rows.CallRow)][2:6] == [
        "square[1]",
        "square[81]",
        "square[161]",
        "square[241]",
    ]


def test_a_long_list_of_children_is_cut_and_extended(store: Store) -> None:
    keys = _request(store, items=1, children=_tree.PARENT_PAGE + 50)
    rows = _walk(store)
    more = rows[-1]
    assert isinstance(more, _rows.MoreRow)
    assert (more.parent, more.shown) == (keys["root"].id, _tree.PARENT_PAGE)
    assert more.remaining == 51  # 49 more steps, the map, publish
    longer = _walk(store, _tree.ViewState(parents={keys["root"].id: 600}))
    assert not any(isinstance(r, _rows.MoreRow) for r in longer)
    assert _labels(longer)[-2:] == ["square.map", "publish"]


def test_flat_views_of_the_latest_run_and_of_failures(store: Store) -> None:
    _request(store, items=10)
    failed = _walk(store, _tree.ViewState(view="problems"))
    assert _labels(failed) == ["square[1]"]
    ran = _walk(store, _tree.ViewState(view="ran", shown=3))
    assert _labels(ran) == ["fetch", "square[0]", "square[1]", "+"]


def test_attempts_of_every_run_become_bars(store: Store) -> None:
    root = new_request(store)
    flaky = child(root, "flaky", 1, dispatched=False)
    store.record_failure(
        failure(flaky, final=False, started_at_ms=T0 + 10, finished_at_ms=T0 + 20)
    )
    store.commit_success(
        success(flaky, attempt=2, started_at_ms=T0 + 30, finished_at_ms=T0 + 40)
    )
    rows = _walk(store)
    row = rows[1]
    assert isinstance(row, _rows.CallRow)
    assert row.attempts == "2 (1 failed)"
    assert [(s.start_ms, s.end_ms, s.outcome) for s in row.segments] == [
        (T0 + 10, T0 + 20, "failure"),
        (T0 + 30, T0 + 40, "success"),
    ]


def _record(run: int, started: float, finished: float | None) -> RequestRecord:
    from cairn.types import RequestStatus

    return RequestRecord(
        id="r",
        application="app",
        code_ref=None,
        status=RequestStatus.SUCCEEDED if finished else RequestStatus.RUNNING,
        failure_reason=None,
        error=None,
        input=b"{}",
        output=None,
        headers={},
        run=run,
        strict_replay=False,
        progress=None,
        created_at_ms=0.0,
        started_at_ms=started,
        finished_at_ms=finished,
    )


def test_the_timeline_lays_every_run_side_by_side() -> None:
    runs = [
        RunSpan(run=1, started_at_ms=0.0, finished_at_ms=4_000.0, first_seq=1),
        RunSpan(run=2, started_at_ms=3_600_000.0, finished_at_ms=None, first_seq=9),
    ]
    line = _timeline.timeline(_record(2, 3_600_000.0, 3_600_500.0), runs, 9e9)
    first, second = line.lanes
    # The hour between the runs is left out; the short run keeps a visible lane.
    assert first.left == 0 and second.left == pytest.approx(first.width + 1.0)
    assert second.width >= 10 and first.width > second.width
    assert first.duration_s == 4.0 and second.duration_s == 0.5
    left, width = line.place(1_000.0, 3_000.0, 1)
    assert left == pytest.approx(first.width / 4, abs=0.01)
    assert width == pytest.approx(first.width / 2, abs=0.01)
    later_left, _ = line.place(3_600_000.0, 3_600_250.0, 2)
    assert later_left == pytest.approx(second.left, abs=0.01)
    running = _timeline.timeline(_record(1, 0.0, None), [], 2_000.0)
    assert running.lanes[0].end_ms == 2_000.0 and running.lanes[0].running


@pytest.mark.parametrize(
    "params",
    [
        {"view": ["all"]},
        {"n": ["0"]},
        {"n": ["99999999"]},
        {"g": ["everything.10.g"]},
        {"g": ["all.ten.g"]},
        {"g": ["all.10."]},
        {"p": ["-3.x"]},
        {"d": [""]},
        {"log": ["-1"]},
    ],
)
def test_bad_view_states_are_400s(params: dict[str, list[str]]) -> None:
    with pytest.raises(_errors.ApiError) as raised:
        _tree.parse_state(params)
    assert raised.value.status == 400 and raised.value.message


def test_a_view_state_from_its_parameters() -> None:
    state = _tree.parse_state(
        {
            "g": ["problems.200.g.1"],
            "p": ["600.a.b"],
            "d": ["x", "x", "y"],
            "log": ["7"],
        }
    )
    assert state.groups == {"g.1": ("problems", 200)}
    assert state.parents == {"a.b": 600}
    assert state.details == ("x", "y")
    assert state.log_before == 7
