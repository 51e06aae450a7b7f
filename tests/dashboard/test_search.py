"""The requests page's search, time range and order, and bulk actions, over HTTP
and on a store: every bad parameter is a 4xx naming it (never a 500), a bulk
action over 10,000 requests is refused with a message, and one over many runs a
page of requests per call."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from cairn.server import _errors
from cairn.server._dashboard import _bulk, _search
from cairn.store import RequestQuery, open_store
from cairn.types import RequestStatus
from tests.contract.test_store import T0, new_request
from tests.dashboard.support import finished, rows_of
from tests.server.support import invoke_kwargs


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"q": "x" * 201}, "at most 200 characters"),
        ({"sort": "fastest"}, "sort must be one of newest, oldest, longest"),
        ({"page": "-1"}, "page must be a number"),
        ({"page": "99999999"}, "page must be a number"),
        ({"last": "yesterday"}, "last must be a window"),
        ({"last": "0h"}, "last must be a window"),
        ({"from": "last tuesday"}, "from must be a time like"),
        ({"to": "2025-13-01"}, "to must be a time like"),
        ({"from": "2025-02-01", "to": "2025-01-01"}, "ends before it starts"),
        ({"status": "done"}, "status must be one of"),
    ],
)
def test_bad_filters_are_400s_naming_them(
    http: httpx.Client, params: dict[str, str], problem: str
) -> None:
    page = http.get("/ui", params=params)
    assert page.status_code == 400 and problem in page.text
    as_json = http.get("/ui", params=params, headers={"Accept": "application/json"})
    assert as_json.status_code == 400
    assert problem in as_json.json()["error"]["message"]


def test_times_are_utc_unless_a_zone_is_given() -> None:
    now = 1_800_000_000_000.0
    filters = _search.parse(
        {"from": "2025-01-01T00:00", "to": "2025-01-01T03:00+02:00"}, now
    )
    assert filters.created_from_ms == 1_735_689_600_000.0  # midnight, UTC
    assert filters.created_to_ms == 1_735_693_200_000.0  # 1 a.m., UTC
    window = _search.parse({"last": "90m"}, now)
    assert window.created_from_ms == now - 90 * 60_000
    assert not _search.parse({}, now).any


def test_search_finds_by_id_prefix_and_input_and_sorts(http: httpx.Client) -> None:
    made = [invoke_kwargs(http, "dash_add", a=700_000 + i, b=i) for i in range(3)]
    for request_id in made:
        finished(http, request_id)
    by_input = http.get("/ui", params={"q": "700001"}).text
    assert rows_of(by_input) == [made[1]]
    by_id = http.get("/ui", params={"q": made[2][:10]}).text
    assert made[2] in rows_of(by_id)
    oldest = rows_of(http.get("/ui", params={"q": "70000", "sort": "oldest"}).text)
    assert oldest[:3] == made
    in_range = http.get("/ui", params={"q": "70000", "last": "1h"}).text
    assert set(made) <= set(rows_of(in_range))
    future = http.get("/ui", params={"q": "70000", "from": "2999-01-01T00:00"}).text
    assert rows_of(future) == [] and "match these filters" in future
    # Pages of a search: by offset.
    first = http.get("/ui", params={"q": "70000", "sort": "oldest", "limit": 2}).text
    assert rows_of(first) == made[:2] and "page=1" in first
    second = http.get(
        "/ui", params={"q": "70000", "sort": "oldest", "limit": 2, "page": 1}
    ).text
    assert rows_of(second) == made[2:3]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "the body must be JSON"),
        (b"[]", "a JSON object"),
        (
            json.dumps({"action": "delete", "as_of_ms": 1}),
            "action must be replay or cancel",
        ),
        (json.dumps({"action": "replay", "as_of_ms": "now"}), "as_of_ms must be"),
        (json.dumps({"action": "replay", "as_of_ms": 1, "query": 5}), "query must be"),
        (
            json.dumps({"action": "replay", "as_of_ms": 1, "query": "?sort=x"}),
            "sort must be one of",
        ),
        (
            json.dumps(
                {
                    "action": "replay",
                    "as_of_ms": 1,
                    "query": "?status=failed",
                    "after": [1],
                }
            ),
            "after must be",
        ),
        (
            json.dumps({"action": "cancel", "as_of_ms": 1, "query": ""}),
            "needs a filter",
        ),
    ],
)
def test_bad_bulk_actions_are_400s(
    http: httpx.Client, body: bytes | str, problem: str
) -> None:
    answer = http.post(
        "/ui/bulk", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    assert problem in answer.json()["error"]["message"]


def test_a_bulk_action_runs_a_page_per_call_and_refuses_too_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'bulk.db'}")
    for index in range(12):
        new_request(store, f"req-{index:02d}", created_at_ms=T0 + index)
    monkeypatch.setattr(_bulk, "PAGE", 5)
    filters = _search.parse({"status": "pending"}, T0 + 100)
    calls, after, done = 0, None, 0
    while True:
        answer = _bulk._do(store, "cancel", filters, T0 + 100, after)
        calls += 1
        done += answer["done"]
        if calls == 1:
            assert answer["total"] == 12
        if answer["after"] is None:
            break
        after = tuple(answer["after"])
    assert (calls, done) == (3, 12)
    cancelled = RequestQuery(status=RequestStatus.CANCELLED)
    assert store.count_requests_matching(cancelled) == 12
    # Only what existed when the user confirmed, and no more than the maximum.
    monkeypatch.setattr(_bulk, "MAX_REQUESTS", 10)
    late = _search.parse({"status": "cancelled"}, T0 + 5.5)
    with pytest.raises(_errors.ApiError) as refused:
        _bulk._do(
            store,
            "replay",
            filters=_search.parse({"status": "cancelled"}, T0 + 100),
            as_of_ms=T0 + 100,
            after=None,
        )
    assert refused.value.status == 400
    assert "finds 12 requests; a bulk action takes at most 10" in refused.value.message
    small = _bulk._do(store, "replay", late, T0 + 5.5, None)
    assert small["total"] == 6  # created before T0 + 5.5
    assert [s["reason"] for s in small["skipped"]] == ["not served here"] * 5
    store.close()
