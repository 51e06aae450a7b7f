"""The machinery of ``run.py``: worker processes, fresh stores, interleaved rounds.

Nothing here imports an engine. Workers are started with the interpreter of their
engine (the project's for Cairn and the floor, ``bench/.venv-dbos`` for DBOS) and
spoken to over pipes (see ``worker.py``).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
WORKER = BENCH / "worker.py"


class WorkerDied(Exception):
    """A worker process stopped answering (crashed, timed out)."""


# -- worker processes -------------------------------------------------------------------
class WorkerProcess:
    """One ``worker.py serve SYSTEM`` process and its line protocol."""

    def __init__(self, system: str, python: str, cwd: str, log_dir: str) -> None:
        self.system = system
        self.log_path = os.path.join(
            log_dir, f"{system}-{uuid.uuid4().hex[:8]}.stderr.log"
        )
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [python, str(WORKER), "serve", system],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=cwd,
            start_new_session=True,  # its own group: a timeout kills it and its executors
        )
        self._buffer = b""
        line = self._read_line(120.0)
        if not line.startswith("READY "):
            self.stop()
            raise WorkerDied(f"{system} worker did not start: {line!r}")
        self.info: dict[str, Any] = json.loads(line[len("READY ") :])

    def _read_line(self, timeout_s: float) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WorkerDied(
                        f"{self.system} worker gave no answer in {timeout_s:g}s"
                    )
                if not selector.select(left):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise WorkerDied(
                        f"{self.system} worker exited (code {self.proc.poll()}); "
                        f"see {self.log_path}:\n{self.log_tail()}"
                    )
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def log_tail(self, lines: int = 12) -> str:
        self._log.flush()
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def call(self, command: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(command) + "\n").encode())
            self.proc.stdin.flush()
        except OSError as error:
            raise WorkerDied(f"{self.system} worker is gone: {error}") from None
        line = self._read_line(timeout_s)
        if not line.startswith("RESULT "):
            raise WorkerDied(f"{self.system} worker said {line[:200]!r}")
        result: dict[str, Any] = json.loads(line[len("RESULT ") :])
        return result

    def stop(self) -> None:
        """Ask it to quit; kill its process group if it does not."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(b'{"op": "quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self._log.close()

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group this harness started
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()


# -- stores -------------------------------------------------------------------------------
class PgServer:
    """The PostgreSQL server: throwaway databases, one per job, dropped after."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.psycopg = psycopg
        self.url = url
        self.prefix = f"cairn_bench_{uuid.uuid4().hex[:8]}_"
        self.count = 0
        self.made: set[str] = set()

    def _admin(self) -> Any:
        return self.psycopg.connect(self.url, autocommit=True, connect_timeout=5)

    def database_url(self, name: str) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))

    def settings(self) -> dict[str, str]:
        names = (
            "server_version",
            "synchronous_commit",
            "fsync",
            "wal_sync_method",
            "full_page_writes",
            "shared_buffers",
        )
        with self._admin() as conn:
            return {n: str(conn.execute(f"SHOW {n}").fetchone()[0]) for n in names}

    def create(self, template: str | None = None) -> str:
        self.count += 1
        name = f"{self.prefix}{self.count}"
        source = self.name_of(template) if template else "template0"
        for attempt in range(50):
            try:
                with self._admin() as conn:
                    conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
                break
            except self.psycopg.errors.ObjectInUse:
                # The template still has sessions (executors just killed): end them.
                with self._admin() as conn:
                    conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()",
                        (source,),
                    )
                time.sleep(0.05 * (attempt + 1))
        else:
            raise RuntimeError(f"cannot copy database {source}")
        self.made.add(name)
        return self.database_url(name)

    @staticmethod
    def name_of(url: str) -> str:
        return urllib.parse.urlsplit(url).path.lstrip("/")

    def drop(self, url: str) -> None:
        name = self.name_of(url)
        if name not in self.made:
            return
        try:
            with self._admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self.made.discard(name)
        except self.psycopg.Error as error:
            print(f"cannot drop database {name}: {error}", file=sys.stderr)

    def drop_all(self) -> None:
        for name in sorted(self.made):
            self.drop(self.database_url(name))


class Stores:
    """Fresh store locations: a new SQLite file in its own directory, or a new
    PostgreSQL database. Removed after the job, except templates kept for replay."""

    def __init__(self, root: str, pg: PgServer | None) -> None:
        self.root = root
        self.pg = pg

    def new(self, backend: str) -> str:
        if backend == "sqlite":
            directory = tempfile.mkdtemp(prefix="store-", dir=self.root)
            return os.path.join(directory, "store.db")
        assert self.pg is not None
        return self.pg.create()

    def copy(self, backend: str, template: str) -> str:
        if backend == "sqlite":
            target = self.new("sqlite")
            src = sqlite3.connect(template)
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)  # a consistent copy, the WAL included
            finally:
                dst.close()
                src.close()
            return target
        assert self.pg is not None
        return self.pg.create(template=template)

    def remove(self, backend: str, location: str) -> None:
        if backend == "sqlite":
            directory = os.path.dirname(location)
            for name in os.listdir(directory):
                os.remove(os.path.join(directory, name))
            os.rmdir(directory)
        elif self.pg is not None:
            self.pg.drop(location)


# -- jobs and blocks --------------------------------------------------------------------
@dataclass
class Block:
    """One workload at one durability setting: ``rounds`` rounds, each running every
    lane once, in an order that rotates from round to round (A B C, B C A, ...).
    A lane is a system, or for the ``workers`` workload a system with a number of
    worker processes."""

    workload: str  # seq, three, map, replay, cold, workers
    setting: dict[str, Any]
    systems: list[str]
    n: int = 0
    rounds: int = 3
    cap_s: float = 0.0  # no new round once the block has run this long (0: none)
    fresh: bool = False  # a new worker process for every job
    keep_template: bool = False  # seq: keep round 1's stores for the replay block
    requests: int = 0  # three: warm requests per run
    workers: tuple[int, ...] = ()  # workers: worker processes of each lane
    note: str = ""

    def lanes(self) -> list[tuple[str, int]]:
        return [(s, w) for s in self.systems for w in self.workers or (0,)]

    @property
    def key(self) -> str:
        size = f" {self.n:,}" if self.n else ""
        return f"{self.workload}{size} @ {self.setting['name']}"


@dataclass
class Job:
    block: Block
    system: str
    round: int
    workers: int = 0  # the workers workload: worker processes of this job
    result: dict[str, Any] | None = None
    error: str | None = None
    detail: str = ""
    wall_s: float = 0.0
    load: float = 0.0

    @property
    def lane(self) -> str:
        return lane_name(self.system, self.workers)


def lane_name(system: str, workers: int) -> str:
    """``cairn``, or ``cairn-4w`` for Cairn on 4 worker processes."""
    return f"{system}-{workers}w" if workers else system


@dataclass
class Runner:
    """Runs blocks, keeps every job, and the replay templates between blocks."""

    pythons: dict[str, str]
    tmp: str
    stores: Stores
    log_dir: str
    total_hint: int = 0
    jobs: list[Job] = field(default_factory=list)
    templates: dict[tuple[str, str, int], tuple[str, str]] = field(default_factory=dict)
    _workers: dict[str, WorkerProcess] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    # -- workers ----------------------------------------------------------------------------
    def worker(self, system: str) -> WorkerProcess:
        current = self._workers.get(system)
        if current is None or current.proc.poll() is not None:
            current = WorkerProcess(
                system, self.pythons[system], self.tmp, self.log_dir
            )
            self._workers[system] = current
        return current

    def retire(self, system: str) -> None:
        current = self._workers.pop(system, None)
        if current is not None:
            current.stop()

    def kill(self, system: str) -> None:
        """Stop a worker that failed, without waiting for it."""
        current = self._workers.pop(system, None)
        if current is not None:
            current.kill()
            current._log.close()

    def close(self) -> None:
        for system in list(self._workers):
            self.retire(system)

    def versions(self) -> dict[str, Any]:
        info: dict[str, Any] = {}
        for system in self.pythons:
            try:
                info[system] = self.worker(system).info
            except WorkerDied as error:
                info[system] = {"error": str(error)}
            self.retire(system)
        return info

    # -- blocks -------------------------------------------------------------------------------
    def run_block(self, block: Block) -> None:
        began = time.perf_counter()
        for index in range(block.rounds):
            if index and block.cap_s and time.perf_counter() - began > block.cap_s:
                print(
                    f"   {block.key}: {index} of {block.rounds} rounds "
                    f"(time cap {block.cap_s:g}s)",
                    file=sys.stderr,
                )
                break
            lanes = block.lanes()
            shift = index % len(lanes)
            for system, workers in lanes[shift:] + lanes[:shift]:
                self.run_job(Job(block, system, index, workers))

    def run_job(self, job: Job) -> Job:
        block = job.block
        backend = block.setting["backend"]
        self.jobs.append(job)
        done = len(self.jobs)
        elapsed = time.perf_counter() - self.started
        print(
            f"[{done:3d}{'/' + str(self.total_hint) if self.total_hint else ''} "
            f"{elapsed:5.0f}s] {block.key:<34} {job.lane:<8} round {job.round + 1}"
            " ...",
            end="",
            file=sys.stderr,
            flush=True,
        )
        job.load = os.getloadavg()[0]
        started = time.perf_counter()
        location = None
        try:
            if block.workload == "cold":
                location = self.stores.new(backend)
                job.result = self._cold(job, location)
            else:
                location = self._store_for(job)
                job.result = self._call(job, location)
                if not job.result.get("ok"):
                    job.error = job.result.get("error", "failed")
                    job.detail = job.result.get("traceback", "")
        except (WorkerDied, OSError, RuntimeError, ValueError) as error:
            job.error = str(error).splitlines()[0] if str(error) else repr(error)
            job.detail = str(error)
            self.kill(job.system)
        except Exception as error:  # a PostgreSQL error creating a database...
            job.error = f"{type(error).__name__}: {error}"
            self.kill(job.system)
        finally:
            job.wall_s = time.perf_counter() - started
            if block.fresh and block.workload != "cold":
                self.retire(job.system)
            if location is not None:
                self._release(job, location)
        if job.error:
            print(f" FAILED: {job.error}", file=sys.stderr)
            if job.detail:
                tail = job.detail.strip().splitlines()[-6:]
                print("\n".join("      " + line for line in tail), file=sys.stderr)
        else:
            print(f" {job.wall_s:.1f}s", file=sys.stderr)
        return job

    def _store_for(self, job: Job) -> str:
        block = job.block
        backend = block.setting["backend"]
        if block.workload != "replay":
            return self.stores.new(backend)
        template = self.templates.get((block.setting["name"], job.system, block.n))
        if template is None:
            raise RuntimeError(
                f"no stored request of {block.n:,} calls for {job.system} to replay"
            )
        return self.stores.copy(backend, template[0])

    def _release(self, job: Job, location: str) -> None:
        block = job.block
        key = (block.setting["name"], job.system, block.n)
        keep = (
            block.keep_template
            and job.error is None
            and job.result is not None
            and key not in self.templates
        )
        if job.result is not None and backend_is_file(block.setting):
            # What the store holds once closed (the WAL folded in), schema included.
            job.result["store_bytes"] = _file_bytes(location)
            if block.workload == "seq":
                job.result["table_bytes"] = _table_bytes(location)
        if keep:
            assert job.result is not None
            self.templates[key] = (location, job.result["request_id"])
        else:
            self.stores.remove(block.setting["backend"], location)

    def _call(self, job: Job, location: str) -> dict[str, Any]:
        block = job.block
        command: dict[str, Any] = {
            "op": block.workload,
            "setting": block.setting,
            "store": location,
            "n": block.n,
        }
        if block.workload == "three":
            command["requests"] = block.requests
        if block.workload == "map":
            command["verify"] = job.round == 0
        if block.workload == "workers":
            command.update(workers=job.workers, log_dir=self.log_dir)
        if block.workload == "replay":
            key = (block.setting["name"], job.system, block.n)
            command["request_id"] = self.templates[key][1]
        # generous: 60 s plus 20 ms per call or item
        timeout = 60.0 + 0.02 * max(block.n, block.requests * 3)
        return self.worker(job.system).call(command, timeout)

    def _cold(self, job: Job, location: str) -> dict[str, Any]:
        """A fresh process: interpreter start, import, first 1-call request."""
        argv = [
            self.pythons[job.system],
            str(WORKER),
            "cold",
            job.system,
            "--setting",
            json.dumps(job.block.setting),
            "--store",
            location,
        ]
        log_path = os.path.join(self.log_dir, f"cold-{job.system}.stderr.log")
        with open(log_path, "a") as log:
            spawned = time.perf_counter()
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=self.tmp,
                start_new_session=True,
            )
            try:
                stdout, _ = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the group this harness started
                proc.communicate()
                raise WorkerDied("cold start timed out after 120s") from None
        for line in stdout.decode().splitlines():
            if line.startswith("DONE "):
                result: dict[str, Any] = json.loads(line[len("DONE ") :])
                result["ok"] = True
                result["elapsed_s"] = result["done_at"] - spawned
                return result
        raise WorkerDied(
            f"cold start of {job.system} printed no result (exit {proc.returncode}); "
            f"see {log_path}"
        )


def backend_is_file(setting: dict[str, Any]) -> bool:
    return bool(setting["backend"] == "sqlite")


def _table_bytes(path: str) -> dict[str, int]:
    """Bytes of each table of a SQLite file, its indexes included (``dbstat``)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return {}
    try:
        owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master"))
        sizes: dict[str, int] = {}
        for name, size in conn.execute(
            "SELECT name, sum(pgsize) FROM dbstat GROUP BY name"
        ):
            table = owner.get(name, name)
            sizes[table] = sizes.get(table, 0) + int(size)
        return sizes
    except sqlite3.Error:
        return {}  # a SQLite built without dbstat
    finally:
        conn.close()


def _file_bytes(path: str) -> int:
    total = 0
    for suffix in ("", "-wal", "-journal"):
        try:
            total += os.path.getsize(path + suffix)
        except OSError:
            pass
    return total


# -- the machine -----------------------------------------------------------------------------
def fsync_ms(directory: str, count: int = 200) -> dict[str, float]:
    """Latency of write(4 KiB) + fsync on the disk the stores live on (ms)."""
    path = os.path.join(directory, "fsync-probe")
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(count):
            os.write(fd, b"x" * 4096)
            began = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - began) * 1000)
    finally:
        os.close(fd)
        os.remove(path)
    times.sort()
    return {
        "median": times[len(times) // 2],
        "p90": times[int(len(times) * 0.9)],
    }
