"""A small network of "hosts": Linux network namespaces on one bridge.

The root namespace (where pytest runs) holds a bridge with the subnet's first
address; each host is a namespace with a veth pair on that bridge, its own ``lo``,
one address, and — for the processes started in it — its own hostname (a UTS
namespace). Cairn tells a worker on another machine from a worker of its own by
hostname, so without one two namespaces would still look like one host to it.

Names carry the test run's pid (interface names stay under 16 characters) and the
subnet is ``10.213.X.0/24`` with X picked from the pid and not in use, so runs do
not collide; ``close()`` removes everything, also after a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field


class Unavailable(Exception):
    """This machine cannot make network namespaces for us."""


def _ip(*args: str) -> None:
    result = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise Unavailable(f"ip {' '.join(args)}: {result.stderr.strip()}")


def _free_subnet(seed: int) -> str:
    """``10.213.X`` for an X no address or route of the root namespace uses."""
    in_use = subprocess.run(
        ["ip", "-4", "-o", "route", "show", "table", "all"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    for step in range(250):
        prefix = f"10.213.{(seed + step) % 250 + 1}"
        if f"{prefix}." not in in_use:
            return prefix
    raise Unavailable("no free 10.213.X.0/24 subnet")


@dataclass
class Host:
    """A namespace on the bridge, with an address and a hostname of its own."""

    namespace: str
    address: str
    hostname: str

    def command(self, *args: str) -> list[str]:
        """``args`` run in this host's namespace, under its hostname."""
        return [
            *("ip", "netns", "exec", self.namespace),
            *("unshare", "--uts", "--"),
            *("sh", "-c", 'hostname "$0" && exec "$@"', self.hostname, *args),
        ]

    def can_connect(self, address: str, port: int) -> bool:
        """Whether a TCP connection from this host to ``address:port`` opens."""
        probe = (
            "import socket, sys\n"
            "try:\n"
            f"    socket.create_connection(({address!r}, {port}), timeout=2).close()\n"
            "except OSError:\n"
            "    sys.exit(1)\n"
        )
        done = subprocess.run(
            self.command(sys.executable, "-c", probe), capture_output=True, timeout=30
        )
        return done.returncode == 0


@dataclass
class Network:
    """A bridge in the root namespace and the hosts attached to it."""

    tag: str = field(default_factory=lambda: str(os.getpid()))
    prefix: str = ""
    bridge: str = ""
    hosts: dict[str, Host] = field(default_factory=dict)
    _links: list[str] = field(default_factory=list)

    @classmethod
    def create(cls) -> Network:
        """The bridge, up, with the subnet's ``.1`` in the root namespace."""
        network = cls()
        network.prefix = _free_subnet(os.getpid())
        network.bridge = f"cbr{network.tag}"
        try:
            _ip("link", "add", network.bridge, "type", "bridge")
            network._links.append(network.bridge)
            _ip("addr", "add", f"{network.prefix}.1/24", "dev", network.bridge)
            _ip("link", "set", network.bridge, "up")
        except Unavailable:
            network.close()
            raise
        return network

    @property
    def cidr(self) -> str:
        """The subnet, e.g. ``10.213.7.0/24``."""
        return f"{self.prefix}.0/24"

    def add_host(self, role: str) -> Host:
        """A namespace ``cairn-ROLE-PID`` at the next address of the subnet."""
        host = Host(
            namespace=f"cairn-{role}-{self.tag}",
            address=f"{self.prefix}.{10 + len(self.hosts)}",
            hostname=f"{role}-{self.tag}",
        )
        index = len(self.hosts)
        outside, inside = f"cv{index}{self.tag}", f"cp{index}{self.tag}"
        self.hosts[role] = host
        _ip("netns", "add", host.namespace)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        self._links.append(outside)
        _ip("link", "set", inside, "netns", host.namespace)
        _ip("link", "set", outside, "master", self.bridge, "up")
        within = ("-n", host.namespace)
        _ip(*within, "link", "set", "lo", "up")
        _ip(*within, "link", "set", inside, "name", "eth0")
        _ip(*within, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip(*within, "link", "set", "eth0", "up")
        return host

    def close(self) -> None:
        """Delete the namespaces and links (processes in them must be gone)."""
        for host in self.hosts.values():
            subprocess.run(
                ["ip", "netns", "del", host.namespace], capture_output=True, check=False
            )
        for link in reversed(self._links):
            subprocess.run(
                ["ip", "link", "del", link], capture_output=True, check=False
            )
        self.hosts.clear()
        self._links.clear()


def unavailable() -> str | None:
    """Why this process cannot make namespaces, or None when it can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "making network namespaces needs root"
    for tool, package in (("ip", "iproute2"), ("unshare", "util-linux")):
        if shutil.which(tool) is None:
            return f"no {tool!r} command (install {package})"
    probe = f"cairn-probe-{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except Unavailable as error:
        return str(error)
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    uts = subprocess.run(
        ["unshare", "--uts", "--", "true"], capture_output=True, text=True, check=False
    )
    if uts.returncode != 0:
        return f"unshare --uts: {uts.stderr.strip()}"
    return None


def loopback_listener() -> socket.socket:
    """A TCP socket listening on 127.0.0.1 of the root namespace (close it after)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener
