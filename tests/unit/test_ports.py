"""The tests' own free ports (tests/ports.py): outside the ephemeral range that
client sockets draw from, and apart for each xdist worker."""

from __future__ import annotations

import socket

from tests import ports


def test_ports_are_below_the_ephemeral_range_and_each_call_gets_another():
    taken = [ports.free_port() for _ in range(5)]
    assert len(set(taken)) == 5
    assert all(0 < port < ports._ephemeral_lowest() for port in taken)
    for port in taken:  # free: a server can bind it
        with socket.create_server(("127.0.0.1", port)):
            pass


def test_each_xdist_worker_has_a_block_of_its_own(monkeypatch):
    blocks = []
    for worker in ("", "gw0", "gw1", "gw7"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        blocks.append(set(ports._block()))
    assert all(blocks)
    assert sum(len(block) for block in blocks) == len(set().union(*blocks))
