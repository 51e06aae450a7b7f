"""The dashboard's reads (``store/_browse.py``): a request's calls a page at a time,
map groups tallied by SQL, counts, runs and progress messages, the same on every
store."""

from __future__ import annotations

import dataclasses

from cairn.store import CallKey, RequestQuery, Store
from cairn.types import CallStatus, RequestStatus
from tests.contract.test_store import (
    T0,
    WORKER,
    child,
    event,
    failed_app,
    failure,
    new_request,
    submission,
    success,
)


def _tree(store: Store) -> dict[str, CallKey]:
    """app -> fetch (-> nested), a map of 5 items (items 1 and 3 fail), publish."""
    root = new_request(store)
    assert store.claim_call(WORKER, 0, T0) is not None
    fetch = child(root, "fetch", 1, dispatched=False)
    nested = child(fetch, "nested", 1, dispatched=False)
    store.commit_success(success(nested, started_at_ms=T0 + 2, finished_at_ms=T0 + 3))
    store.commit_success(success(fetch, started_at_ms=T0 + 1, finished_at_ms=T0 + 4))
    items = [child(root, "square", i, kind="map_item", group_id="g") for i in range(5)]
    for index, item in enumerate(items):
        at = T0 + 10 + index
        if index in (1, 3):
            store.record_failure(
                failure(item, final=True, started_at_ms=at, finished_at_ms=at + 1)
            )
        else:
            store.commit_success(success(item, started_at_ms=at, finished_at_ms=at + 1))
    publish = child(root, "publish", 2, dispatched=False)
    store.record_failure(
        failure(publish, final=False, started_at_ms=T0 + 20, finished_at_ms=T0 + 21)
    )
    store.record_failure(
        failure(
            publish,
            final=True,
            attempt=2,
            started_at_ms=T0 + 22,
            finished_at_ms=T0 + 23,
        )
    )
    return {
        "root": root,
        "fetch": fetch,
        "nested": nested,
        "publish": publish,
        "item1": items[1],
    }


def test_entries_fold_a_maps_items_into_their_group_in_start_order(contract_store):
    ids = _tree(contract_store)
    assert contract_store.list_entries("req-1", None, 0, 10) == [
        (ids["root"].id, False)
    ]
    entries = contract_store.list_entries("req-1", ids["root"].id, 0, 10)
    assert entries == [
        (ids["fetch"].id, False),
        ("g", True),
        (ids["publish"].id, False),
    ]
    assert contract_store.list_entries("req-1", ids["root"].id, 1, 1) == [("g", True)]
    assert contract_store.count_entries("req-1", ids["root"].id) == 3
    assert contract_store.count_entries("req-1", None) == 1
    assert contract_store.count_entries("req-1", ids["nested"].id) == 0


def test_calls_by_id_say_whether_they_have_children(contract_store):
    ids = _tree(contract_store)
    found = {
        entry.record.id: entry.has_children
        for entry in contract_store.get_calls(
            [ids["fetch"].id, ids["nested"].id, "nope"]
        )
    }
    assert found == {ids["fetch"].id: True, ids["nested"].id: False}
    assert contract_store.get_calls([]) == []


def test_groups_are_tallied_and_paged_by_sql(contract_store):
    ids = _tree(contract_store)
    (tally,) = contract_store.tally_groups(["g"], 1)
    assert tally.id == "g"
    assert tally.function == "square"
    assert tally.items == 5
    assert tally.counts == {CallStatus.SUCCEEDED: 3, CallStatus.FAILED: 2}
    assert (tally.ran, tally.served) == (5, 0)
    assert tally.spans == {1: (T0 + 10, T0 + 15)}
    items = contract_store.list_group_items("g", 1, 2)
    assert [entry.record.seq for entry in items] == [1, 2]
    problems = contract_store.list_group_items("g", 0, 10, problems=True)
    assert [entry.record.seq for entry in problems] == [1, 3]
    assert problems[0].record.id == ids["item1"].id


def test_attempts_counts_and_filtered_calls(contract_store):
    ids = _tree(contract_store)
    attempts = contract_store.list_attempts_of([ids["publish"].id, ids["fetch"].id])
    assert [(a.call_id, a.attempt, a.run) for a in attempts] == [
        (ids["publish"].id, 1, 1),
        (ids["publish"].id, 2, 1),
    ]
    counts = contract_store.count_calls("req-1", 1)
    # app (running), fetch, nested, 5 items, publish: all but the app ended in run 1.
    assert (counts.total, counts.ran, counts.served, counts.problems) == (9, 8, 0, 3)
    ran = contract_store.list_calls_where("req-1", 1, ran=True, limit=3)
    assert [entry.record.function for entry in ran] == ["fetch", "nested", "square"]
    # A replay runs again the app, the 2 failed items and publish; from publish
    # (started last), the same.
    assert contract_store.count_rerun("req-1", None) == 4
    assert contract_store.count_rerun("req-1", T0 + 20) == 4
    assert contract_store.count_rerun("req-1", T0 + 10) == 7  # items 0, 2, 4 too
    failed = contract_store.list_calls_where("req-1", 1, problems=True)
    assert {entry.record.function for entry in failed} == {"square", "publish"}
    assert len(failed) == 3


def test_a_replay_serves_and_counts_in_its_own_run(contract_store):
    root = _tree(contract_store)["root"]
    contract_store.record_failure(
        failure(root, final=True, finished_at_ms=T0 + 30, request_outcome=failed_app())
    )
    contract_store.start_replay("req-1", from_call=None, strict=False, now_ms=T0 + 40)
    counts = contract_store.count_calls("req-1", 2)
    assert (counts.ran, counts.served) == (0, 0)
    (tally,) = contract_store.tally_groups(["g"], 2)
    assert (tally.ran, tally.served) == (0, 0)
    assert tally.counts == {CallStatus.SUCCEEDED: 3, CallStatus.STALE: 2}


def test_runs_come_from_their_events(contract_store):
    new_request(contract_store)
    contract_store.append_events(
        "req-1",
        [
            event("RequestStarted", T0 + 1, run=1),
            event("FunctionRunCompleted", T0 + 2),
            event("RequestStarted", T0 + 3, run=1),  # re-run after a timeout
            event("RequestFinished", T0 + 5, outcome={"failure": "cancelled"}),
            event("RequestStarted", T0 + 9, run=2),
        ],
    )
    runs = contract_store.list_runs("req-1")
    assert [(r.run, r.started_at_ms, r.finished_at_ms, r.first_seq) for r in runs] == [
        (1, T0 + 1, T0 + 5, 1),
        (2, T0 + 9, None, 5),
    ]
    assert [r.outcome for r in runs] == ["cancelled", None]


def test_progress_is_paged_newest_first_and_by_call(contract_store):
    new_request(contract_store)
    contract_store.append_events(
        "req-1",
        [
            event(
                "RequestProgressUpdated",
                T0 + i,
                function_run_id="a" if i % 2 else "b",
                step=i,
            )
            for i in range(1, 8)
        ]
        + [event("FunctionRunCompleted", T0 + 9)],
    )
    newest = contract_store.list_progress("req-1", limit=3)
    assert [e.seq for e in newest] == [7, 6, 5]
    older = contract_store.list_progress("req-1", before_seq=5, limit=3)
    assert [e.seq for e in older] == [4, 3, 2]
    assert [e.payload["step"] for e in older] == [4, 3, 2]
    of_a = contract_store.list_progress("req-1", call_id="a", limit=10)
    assert [e.seq for e in of_a] == [7, 5, 3, 1]


def _requests(store: Store) -> list[str]:
    """Five requests a second apart: two of another application, one failed, one
    with an input of non-ASCII text."""
    made = []
    for index in range(5):
        request_id = f"r{index}-{'abc' if index < 2 else 'xyz'}"
        new_request(
            store,
            request_id,
            application="other" if index >= 3 else "app",
            created_at_ms=T0 + index * 1000,
        )
        made.append(request_id)
    return made


def test_searches_by_id_prefix_input_time_and_order(contract_store):
    made = _requests(contract_store)
    assert contract_store.claim_call(WORKER, 0, T0 + 9000) is not None  # r0 runs
    search = contract_store.search_requests

    def ids(found):
        return [record.id for record in found]

    assert ids(search(RequestQuery())) == made[::-1]
    assert ids(search(RequestQuery(), order="oldest", limit=2)) == made[:2]
    assert ids(search(RequestQuery(), order="oldest", offset=3)) == made[3:]
    assert ids(search(RequestQuery(text="r1-"))) == ["r1-abc"]
    assert ids(search(RequestQuery(application="other"))) == ["r4-xyz", "r3-xyz"]
    window = RequestQuery(created_from_ms=T0 + 1000, created_to_ms=T0 + 3000)
    assert ids(search(window)) == ["r2-xyz", "r1-abc"]
    assert contract_store.count_requests_matching(window) == 2
    running = RequestQuery(statuses=(RequestStatus.RUNNING, RequestStatus.PENDING))
    assert contract_store.count_requests_matching(running) == 5
    assert ids(search(RequestQuery(status=RequestStatus.RUNNING))) == ["r0-abc"]
    # Input content (every input here is the same JSON).
    assert contract_store.count_requests_matching(RequestQuery(text='"args"')) == 5
    assert contract_store.count_requests_matching(RequestQuery(text="nowhere")) == 0
    # A bulk action's pages: oldest first, after a cursor.
    first = contract_store.request_ids_matching(RequestQuery(), after=None, limit=2)
    assert [row[0] for row in first] == made[:2]
    after = (first[-1][2], first[-1][0])
    rest = contract_store.request_ids_matching(RequestQuery(), after=after, limit=10)
    assert [row[0] for row in rest] == made[2:]
    assert rest[0][1] == "app" and rest[-1][1] == "other"


def test_search_finds_text_in_non_ascii_input(contract_store):
    request, root, args = submission("café")
    stored = b'{"args": ["caf\\u00e9 au lait"], "kwargs": {}}'  # as JSON escapes it
    contract_store.create_request(
        dataclasses.replace(request, input=stored), root, args
    )
    found = contract_store.search_requests(RequestQuery(text="café au"))
    assert [record.id for record in found] == ["café"]
    assert contract_store.search_requests(RequestQuery(text="caf"))[0].id == "café"


def test_the_code_version_of_each_attempt(contract_store):
    root = new_request(contract_store)
    flaky = child(root, "flaky", 1, dispatched=False)
    contract_store.record_failure(failure(flaky, final=False, code_version="v1"))
    contract_store.commit_success(success(flaky, attempt=2, code_version="v2"))
    (failed,) = contract_store.list_attempts_of([flaky.id])
    assert failed.code_version == "v1"
    versions = contract_store.code_versions([flaky.id, root.id, "nope"])
    assert versions == {flaky.id: "v2", root.id: None}
