"""DBOS Transact under the benchmark's worker (runs in ``bench/.venv-dbos``).

Configuration, per run, on a fresh system database:

- SQLite: ``system_database_url=sqlite:///PATH``. DBOS itself sets no journal mode
  and no ``synchronous`` (it sets ``isolation_level=IMMEDIATE``, ``busy_timeout``
  and ``foreign_keys`` on each connection), so out of the box it runs SQLite's
  defaults: rollback journal (``journal_mode=DELETE``) with ``synchronous=FULL``.
  For the settings compared with Cairn, a SQLAlchemy ``connect`` listener on every
  engine puts each new connection in WAL mode at the same ``synchronous`` as the
  Cairn store (``setting["journal"]`` / ``setting["synchronous"]``); the setting
  ``dbos-default`` leaves DBOS untouched. The effective values are read back from
  DBOS's own connection pool and reported with every result.
- PostgreSQL: ``postgresql+psycopg://...``; durability is the server's
  (``synchronous_commit``, read back the same way).
- Workflows are called directly (``bench_sequential(n)`` in the calling thread, the
  cheapest idiomatic path), under ``SetWorkflowID`` so a replay can name them.
- ``map``: a queue of steps (``DBOS.enqueue_workflow(queue, step, item)`` for each
  item, then ``get_result`` on each handle), the fan-out of DBOS's queue tutorial;
  the queue is registered with default flow control, polling every
  ``QUEUE_POLL_S`` instead of DBOS's default 1 s.
- replay: ``DBOS.fork_workflow(id, n + 1)``: a new workflow that re-runs the
  function with the outputs of steps 1..n copied, so every step is served from its
  checkpoint (the counter of executed step bodies is checked to stay put). It
  is forked onto a queue polled every ``QUEUE_POLL_S`` and its result polled as
  often, so that the figure is not a poll interval.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from importlib.metadata import version
from typing import Any

import dbos_apps
import sqlalchemy as sa
from dbos import DBOS, SetWorkflowID
from sqlalchemy import event

QUEUE_POLL_S = dbos_apps.POLL_S
_PRAGMAS: dict[str, str] = {}


@event.listens_for(sa.engine.Engine, "connect")
def _set_durability(dbapi_connection: Any, _record: Any) -> None:
    """Give every new SQLite connection the journal mode and ``synchronous`` asked."""
    if not _PRAGMAS or not isinstance(dbapi_connection, sqlite3.Connection):
        return
    journal = _PRAGMAS.get("journal")
    if journal:
        mode = dbapi_connection.execute(f"PRAGMA journal_mode = {journal}").fetchone()
        if str(mode[0]).lower() != journal.lower():
            raise RuntimeError(f"cannot set journal_mode={journal} (got {mode[0]})")
    synchronous = _PRAGMAS.get("synchronous")
    if synchronous:
        dbapi_connection.execute(f"PRAGMA synchronous = {synchronous}")


def _engine() -> sa.Engine:
    from dbos._dbos import _get_dbos_instance  # read-only check of the settings

    return _get_dbos_instance()._sys_db.engine  # type: ignore[no-any-return]


def _wait_for_queue_threads(names: list[str], timeout_s: float = 5.0) -> None:
    """DBOS starts a queue's worker thread up to 1 s after registration."""
    deadline = time.monotonic() + timeout_s
    wanted = {f"queue-worker-{name}" for name in names}
    while time.monotonic() < deadline:
        alive = {t.name for t in threading.enumerate()}
        if wanted <= alive:
            return
        time.sleep(0.02)
    raise RuntimeError(f"DBOS queue threads {sorted(wanted)} did not start")


class DbosSystem:
    name = "dbos"

    def __init__(self) -> None:
        self.last_id: str | None = None
        self._counter = 0
        self._launched = False
        self.effective: dict[str, Any] = {}

    def info(self) -> dict[str, Any]:
        return {"dbos": version("dbos"), "sqlalchemy": version("sqlalchemy")}

    def open(self, setting: dict[str, Any], store: str, queues: bool = False) -> None:
        """Construct and launch DBOS on a fresh system database (or a copy)."""
        _PRAGMAS.clear()
        if setting["backend"] == "sqlite":
            url = f"sqlite:///{store}"
            if setting.get("journal"):
                _PRAGMAS["journal"] = setting["journal"]
            if setting.get("synchronous"):
                _PRAGMAS["synchronous"] = setting["synchronous"]
        else:
            url = store.replace("postgresql://", "postgresql+psycopg://", 1)
        DBOS(
            config={
                "name": "cairn-bench",
                "system_database_url": url,
                "log_level": "WARNING",
                "application_version": "cairn-bench",
                "executor_id": "bench",
            }
        )
        DBOS.launch()
        self._launched = True
        if queues:
            DBOS.register_queue(dbos_apps.MAP_QUEUE, polling_interval_sec=QUEUE_POLL_S)
            DBOS.register_queue(dbos_apps.FORK_QUEUE, polling_interval_sec=QUEUE_POLL_S)
            _wait_for_queue_threads([dbos_apps.MAP_QUEUE, dbos_apps.FORK_QUEUE])
        self.effective = self._effective(setting)

    def _effective(self, setting: dict[str, Any]) -> dict[str, Any]:
        with _engine().connect() as conn:
            if setting["backend"] == "sqlite":
                journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
                sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
                names = {0: "off", 1: "normal", 2: "full", 3: "extra"}
                return {"journal_mode": journal, "synchronous": names.get(sync, sync)}
            value = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
            return {"synchronous_commit": value}

    def warm(self) -> None:
        self.request(1)

    def request(self, n: int) -> Any:
        self._counter += 1
        workflow_id = f"bench-{n}-{self._counter}-{time.monotonic_ns()}"
        with SetWorkflowID(workflow_id):
            output = dbos_apps.bench_sequential(n)
        self.last_id = workflow_id
        return output

    def map(self, n: int) -> Any:
        self._counter += 1
        workflow_id = f"bench-map-{n}-{self._counter}-{time.monotonic_ns()}"
        with SetWorkflowID(workflow_id):
            output = dbos_apps.bench_map(n)
        self.last_id = workflow_id
        return output

    def before_replay(self) -> None:
        self._executed_before = dbos_apps.EXECUTED[0]

    def replay(self, request_id: str, n: int) -> Any:
        handle = DBOS.fork_workflow(request_id, n + 1, queue_name=dbos_apps.FORK_QUEUE)
        output = handle.get_result(polling_interval_sec=QUEUE_POLL_S)
        self.last_id = handle.get_workflow_id()
        return output

    def verify_replay(self, n: int) -> dict[str, Any]:
        ran = dbos_apps.EXECUTED[0] - self._executed_before
        steps = DBOS.list_workflow_steps(self.last_id or "")
        served = len([s for s in steps if s["function_name"].endswith("bench_noop")])
        if ran or served != n:
            raise RuntimeError(
                f"fork of {n} steps: {served} steps recorded, {ran} step bodies ran"
            )
        return {"served_from_checkpoint": served, "ran_again": ran}

    def verify_map(self, n: int) -> dict[str, Any]:
        children = DBOS.list_workflows(
            parent_workflow_id=self.last_id, load_input=False, load_output=False
        )
        done = [w for w in children if w.status == "SUCCESS"]
        if len(done) != n:
            raise RuntimeError(f"map of {n} items: {len(done)} child workflows done")
        return {"items_recorded": len(done)}

    def close(self) -> None:
        if self._launched:
            DBOS.destroy(destroy_registry=False)
            self._launched = False
        _PRAGMAS.clear()
