"""Free TCP ports for servers the tests start in other processes.

A port the kernel hands out for ``bind(0)`` comes from the ephemeral range,
which every outgoing connection on the machine also draws from: between the
probe's close and the server's bind, a client socket (or a parallel test's own
probe) may take it, and the test then talks to the wrong process. So ports come
from below that range, where no outgoing connection lands, in a block per
pytest-xdist worker, where no parallel test looks.
"""

from __future__ import annotations

import itertools
import os
import re
import socket

_BLOCK = 1000
_LOWEST = 10_000


def _ephemeral_lowest() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _block() -> range:
    """This process's ports: the first block for pytest's own (which starts the
    test PostgreSQL server), the next ones for its xdist workers (``gw0``, ...)."""
    worker = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    index = int(worker.group(1)) + 1 if worker else 0
    start = _LOWEST + index * _BLOCK
    if start + _BLOCK > _ephemeral_lowest():
        return range(0)  # no room below the ephemeral range: the kernel chooses
    return range(start, start + _BLOCK)


_candidates = itertools.cycle(_block() or [0])


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now, of this worker's block
    (each call the next one), outside the ephemeral range."""
    for _ in range(_BLOCK):
        port = next(_candidates)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken (by a server of an earlier test still closing)
            return int(probe.getsockname()[1])
    raise RuntimeError(f"no free port in {_block()}")
