"""The PostgreSQL server the tests use, found or started once per session.

In order: ``CAIRN_TEST_POSTGRES_URL`` (it must work: a broken setting fails, it is
not silently replaced), else ``postgresql://postgres@127.0.0.1:5432/test``, else a
throwaway server made with ``initdb``/``pg_ctl`` when the binaries are installed
(``CAIRN_TEST_POSTGRES_START=1`` goes straight to this). When none works, every
PostgreSQL test fails with a message saying why: they are never skipped.

Each test gets its own database, cloned from a template migrated once per session
and dropped after the test (``WITH (FORCE)``: executors may still be connected).
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.ports import free_port

ENV_URL = "CAIRN_TEST_POSTGRES_URL"
ENV_START = "CAIRN_TEST_POSTGRES_START"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


class ServerUnavailable(Exception):
    """No PostgreSQL server could be found or started."""


@dataclass
class Server:
    """A PostgreSQL server on which the tests may create databases."""

    url: str
    how: str
    template: str | None = None

    def database_url(self, name: str) -> str:
        """The server's URL with another database name."""
        parts = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))

    def create_database(self, *, migrated: bool = True) -> str:
        """A new, empty database (with Cairn's schema when ``migrated``): its URL."""
        name = f"cairn_test_{secrets.token_hex(6)}"
        template = self._template() if migrated else "template1"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.database_url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by ``create_database`` (its sessions are ended)."""
        name = urllib.parse.urlsplit(url).path.lstrip("/")
        assert name.startswith(("cairn_test_", "cairn_tmpl_")), name
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _template(self) -> str:
        if self.template is None:
            from cairn.store import open_store

            name = f"cairn_tmpl_{secrets.token_hex(6)}"
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            atexit.register(self.drop_database, self.database_url(name))
            open_store(self.database_url(name)).close()
            self.template = name
        return self.template


_server: Server | None = None
_failure: str | None = None


def server() -> Server:
    """The session's server; fails the calling test when there is none."""
    global _server, _failure
    if _server is None and _failure is None:
        try:
            _server = _find_or_start()
        except ServerUnavailable as error:
            _failure = str(error)
    if _server is None:
        pytest.fail(f"no PostgreSQL server for the tests: {_failure}", pytrace=False)
    return _server


def _find_or_start() -> Server:
    configured = os.environ.get(ENV_URL)
    if configured:
        problem = _try(configured)
        if problem:
            raise ServerUnavailable(f"{ENV_URL}={_redact(configured)} fails: {problem}")
        return Server(configured, f"from {ENV_URL}")
    problems = []
    if not os.environ.get(ENV_START):
        problem = _try(DEFAULT_URL)
        if not problem:
            return Server(DEFAULT_URL, "the local server")
        problems.append(f"{DEFAULT_URL}: {problem}")
    try:
        return _start_throwaway()
    except ServerUnavailable as error:
        problems.append(str(error))
    raise ServerUnavailable(
        "; ".join(problems)
        + f". Set {ENV_URL} to a server where the tests may create databases, "
        "or install PostgreSQL (initdb, pg_ctl) so that the tests start one."
    )


def _try(url: str) -> str | None:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return " ".join(str(error).split())
    return None


def _redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.netloc.rsplit('@', 1)[1]}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _binaries() -> Path | None:
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
    )
    for folder in reversed(versions):
        if (Path(folder) / "pg_ctl").exists() and (Path(folder) / "initdb").exists():
            return Path(folder)
    return None


def _start_throwaway() -> Server:
    """initdb + pg_ctl start in a temporary directory (as ``postgres`` when root)."""
    cluster = Cluster.create()
    atexit.register(cluster.stop)
    cluster.start(free_port())
    problem = _try(cluster.url)
    if problem:
        raise ServerUnavailable(
            f"started a server in {cluster.root} but cannot use it: {problem}"
        )
    return Server(cluster.url, f"a throwaway server in {cluster.root}")


@dataclass
class Cluster:
    """A throwaway cluster: ``initdb`` in a temporary directory, ``pg_ctl`` start/stop.

    Commands run as ``postgres`` when we are root (initdb refuses root), behind
    ``prefix`` when given (``ip netns exec NAME`` starts the server in a network
    namespace; the user is then switched inside it, with ``runuser``).
    """

    root: Path
    binaries: Path
    user: str | None
    prefix: tuple[str, ...] = ()
    url: str = ""
    options: str = ""

    @classmethod
    def create(cls, prefix: tuple[str, ...] = ()) -> Cluster:
        """initdb a new cluster (trust auth, superuser ``postgres``); not started."""
        binaries = _binaries()
        if binaries is None:
            raise ServerUnavailable(
                "no initdb/pg_ctl found (PATH, /usr/lib/postgresql)"
            )
        user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise ServerUnavailable(
                    "initdb refuses to run as root and there is no 'postgres' user"
                ) from None
            user = "postgres"
        root = Path(tempfile.mkdtemp(prefix="cairn-pg-"))
        (root / "sock").mkdir()
        if user is not None:
            shutil.chown(root, user)
            shutil.chown(root / "sock", user)
        cluster = cls(root, binaries, user, prefix)
        cluster._run(
            "initdb",
            "-D",
            str(root / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        return cluster

    def trust(self, network: str) -> None:
        """Let clients of ``network`` (CIDR) in without a password."""
        with open(self.root / "data" / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {network} trust\n")

    def start(
        self,
        port: int,
        address: str = "127.0.0.1",
        *,
        durable: bool = False,
        settings: tuple[str, ...] = (),
    ) -> None:
        """Start the server, listening on ``address`` alone; sets ``url``.

        Not ``durable``, a commit is acknowledged before its WAL is written: fast,
        and fine for a server nobody crashes. ``durable`` acknowledges a commit
        only once the kernel has its WAL, so it survives the server's crash (an
        immediate shutdown), though not the machine's (no fsync).
        """
        commit = "on" if durable else "off"
        self.options = (
            f"-p {port} -k {self.root / 'sock'} -c listen_addresses={address} "
            f"-c fsync=off -c synchronous_commit={commit} -c full_page_writes=off"
        ) + "".join(f" -c {setting}" for setting in settings)
        self._start()
        self.url = f"postgresql://postgres@{address}:{port}/postgres"

    def restart(self, mode: str) -> None:
        """Stop the server (``pg_ctl -m immediate``: as if it crashed; ``fast``:
        ending every session) and start it again."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", mode, "-w", "stop")
        self._start()

    def _start(self) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.root / "data"),
            "-o",
            self.options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        """Stop the server at once and delete its files."""
        command = [str(self.binaries / "pg_ctl"), "-D", str(self.root / "data")]
        subprocess.run(
            self._as_user([*command, "-m", "immediate", "stop"]),
            user=None if self.prefix else self.user,
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)

    def _as_user(self, args: list[str]) -> list[str]:
        if not self.prefix:
            return args
        switch = ["runuser", "-u", self.user, "--"] if self.user else []
        return [*self.prefix, *switch, *args]

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(
            self._as_user([str(self.binaries / program), *args]),
            user=None if self.prefix else self.user,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise ServerUnavailable(
                f"{program} failed: {(result.stderr or result.stdout)[-500:]}"
            )
