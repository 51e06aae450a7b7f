"""Durable call ids: Tensorlake's hash chain over start order, not over values."""

from __future__ import annotations

import hashlib

from cairn import _ids, application, function


def _tensorlake_chain(parts: list[str]) -> str:
    """TENSORLAKE-API §7.2, written out independently of Cairn."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, byteorder="big", signed=False))
        digest.update(data)
        digest.update(b"|")
    return digest.hexdigest()


def test_chain_matches_tensorlake_encoding():
    parts = ["req-1", "req-1", "FunctionCall", "search"]
    expected = hashlib.sha256(
        b"\x00\x00\x00\x00\x00\x00\x00\x05req-1|"
        b"\x00\x00\x00\x00\x00\x00\x00\x05req-1|"
        b"\x00\x00\x00\x00\x00\x00\x00\x0cFunctionCall|"
        b"\x00\x00\x00\x00\x00\x00\x00\x06search|"
    ).hexdigest()
    assert _ids.chain(parts) == expected
    assert _ids.chain(parts) == _tensorlake_chain(parts)


def test_chain_counts_utf8_bytes_not_characters():
    parts = ["père", "函数", ""]
    assert _ids.chain(parts) == _tensorlake_chain(parts)
    expected = hashlib.sha256(
        (5).to_bytes(8, "big")
        + "père".encode()
        + b"|"
        + (6).to_bytes(8, "big")
        + "函数".encode()
        + b"|"
        + (0).to_bytes(8, "big")
        + b"|"
    ).hexdigest()
    assert _ids.chain(parts) == expected


def test_chain_of_nothing_is_the_empty_hash():
    assert _ids.chain([]) == hashlib.sha256(b"").hexdigest()


def test_length_prefix_keeps_boundaries_apart():
    # Without the length prefix "ab|" + "c|" could collide with "a" + "b|c" etc.
    assert _ids.chain(["ab", "c"]) != _ids.chain(["a", "bc"])
    assert _ids.chain(["a|", "b"]) != _ids.chain(["a", "|b"])


def test_child_id_is_chain_of_parent_previous_metadata_and_dependencies():
    got = _ids.child_id("P", "prev", ["FunctionCall", "f"], ["d1", "d2"])
    assert got == _tensorlake_chain(["P", "prev", "FunctionCall", "f", "d1", "d2"])
    assert len(got) == 64
    int(got, 16)


def test_child_id_depends_on_every_input():
    base = _ids.child_id("P", "prev", ["FunctionCall", "f"], ["d1"])
    assert base != _ids.child_id("Q", "prev", ["FunctionCall", "f"], ["d1"])
    assert base != _ids.child_id("P", "other", ["FunctionCall", "f"], ["d1"])
    assert base != _ids.child_id("P", "prev", ["FunctionCall", "g"], ["d1"])
    assert base != _ids.child_id("P", "prev", ["MAP_OPERATION:f"], ["d1"])
    assert base != _ids.child_id("P", "prev", ["FunctionCall", "f"], ["d2"])
    assert base != _ids.child_id("P", "prev", ["FunctionCall", "f"], [])
    assert base != _ids.child_id("P", "prev", ["FunctionCall", "f"], ["d1", "d1"])
    assert base == _ids.child_id("P", "prev", ["FunctionCall", "f"], ["d1"])


def test_item_ids_differ_by_operation_label_and_position():
    ids = {
        _ids.item_id(op, label, position)
        for op in ("op1", "op2")
        for label in ("map", "reduce")
        for position in range(3)
    }
    assert len(ids) == 12
    assert _ids.item_id("op1", "map", 0) == _ids.item_id("op1", "map", 0)


def test_new_request_ids_are_unique_and_url_safe():
    ids = {_ids.new_request_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(i.isalnum() for i in ids)


def _expected_chain(request_id: str, names: list[str]) -> list[str]:
    """Ids of sequential blocking calls made by the application call."""
    ids = []
    previous = request_id
    for name in names:
        previous = _ids.child_id(request_id, previous, ["FunctionCall", name], [])
        ids.append(previous)
    return ids


def test_ids_of_a_run_follow_the_chain_and_ignore_argument_values(run):
    @function()
    def ids_fetch(url: str) -> str:
        return url.upper()

    @function()
    def ids_count(text: str) -> int:
        return len(text)

    @application()
    @function()
    def ids_pipeline(url: str) -> int:
        return ids_count(ids_fetch(url)) + ids_count(url)

    first = run(ids_pipeline, "https://a.example")
    second = run(ids_pipeline, "https://b.example/a/much/longer/url")
    assert first.output() == 2 * len("https://a.example")
    assert first.id != second.id

    names = [ids_fetch.name, ids_count.name, ids_count.name]
    for request in (first, second):
        calls = [c for c in request.calls() if c.kind != "app"]
        assert [c.id for c in calls] == _expected_chain(request.id, names)
        assert [c.function for c in calls] == names
        assert [c.seq for c in calls] == [0, 1, 2]
        assert {c.parent_id for c in calls} == {request.id}
        app_call = next(c for c in request.calls() if c.kind == "app")
        # The application call's id is the request id.
        assert app_call.id == request.id


def test_future_argument_ids_are_part_of_the_child_id(run):
    @function()
    def ids_source(n: int) -> int:
        return n + 1

    @function()
    def ids_sink(value: int) -> int:
        return value * 10

    @application()
    @function()
    def ids_with_dependency(n: int) -> int:
        return ids_sink(ids_source.future(n))

    for value in (4, 5):
        request = run(ids_with_dependency, value)
        assert request.output() == (value + 1) * 10
        source_id = _ids.child_id(
            request.id, request.id, ["FunctionCall", ids_source.name], []
        )
        # The Future's id is both the previous id and a dependency id of the sink.
        sink_id = _ids.child_id(
            request.id, source_id, ["FunctionCall", ids_sink.name], [source_id]
        )
        by_function = {c.function: c for c in request.calls()}
        assert by_function[ids_source.name].id == source_id
        assert by_function[ids_sink.name].id == sink_id
        assert by_function[ids_source.name].parent_id == request.id


def test_nested_calls_chain_from_their_own_parent(run):
    @function()
    def ids_leaf(x: int) -> int:
        return x

    @function()
    def ids_middle(x: int) -> int:
        return ids_leaf(x) + ids_leaf(x + 1)

    @application()
    @function()
    def ids_nested(x: int) -> int:
        return ids_middle(x)

    request = run(ids_nested, 1)
    assert request.output() == 3
    (middle_id,) = _expected_chain(request.id, [ids_middle.name])
    leaf_ids = []
    previous = middle_id
    for _ in range(2):
        previous = _ids.child_id(
            middle_id, previous, ["FunctionCall", ids_leaf.name], []
        )
        leaf_ids.append(previous)
    leaves = [c for c in request.calls() if c.function == ids_leaf.name]
    assert sorted(c.id for c in leaves) == sorted(leaf_ids)
    assert {c.parent_id for c in leaves} == {middle_id}
