"""The refund agent example on a real worker: it parks awaiting approval, pays
once when approved (from the CLI), stops when declined (from Python)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

from cairn import _request, _request_ops
from cairn.store import open_store
from cairn.types import CallStatus, RequestStatus

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "refund_agent.py"
CAIRN = str(Path(sys.executable).parent / "cairn")

_spec = importlib.util.spec_from_file_location("refund_agent", EXAMPLE)
assert _spec is not None and _spec.loader is not None
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)


def _until(check, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_the_refund_agent_waits_parked_then_pays_once_or_stops(
    store_url: str, tmp_path: Path
):
    env = {**os.environ, "CAIRN_STORE": store_url, "CAIRN_CONCURRENCY": "2"}
    worker = subprocess.Popen(
        [CAIRN, "worker", str(EXAMPLE)],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    store = open_store(store_url)
    try:

        def invoke(order_id: str) -> str:
            return _request.submit(
                example.refund_agent, (order_id,), {}, store_url=store_url
            )

        approved, declined = invoke("A-1001"), invoke("A-1002")

        def waiting(request_id: str) -> bool:
            record = store.get_request(request_id)
            assert record is not None
            text = _request_ops.waiting_for(store, record) or ""
            calls = store.list_calls(request_id)
            return "waiting: signal 'approval'" in text and all(
                c.status is not CallStatus.RUNNING for c in calls
            )

        _until(lambda: waiting(approved) and waiting(declined))
        signal = subprocess.run(
            [
                CAIRN,
                "requests",
                "signal",
                approved,
                "approval",
                "--value",
                '{"approved": true, "by": "dana"}',
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        assert signal.returncode == 0, signal.stderr
        _request_ops.signal(
            store, declined, "approval", {"approved": False, "by": "bo"}
        )
        for request_id in (approved, declined):
            _until(lambda rid=request_id: store.get_request(rid).status.finished)
        paid = store.get_request(approved)
        assert paid is not None and paid.status is RequestStatus.SUCCEEDED
        assert b'"status":"paid"' in (paid.output or b"")
        stopped = store.get_request(declined)
        assert stopped is not None and b'"status":"declined"' in (stopped.output or b"")
        payments = (tmp_path / "refund_payments.jsonl").read_text().splitlines()
        assert len(payments) == 1 and '"by": "dana"' in payments[0]
    finally:
        store.close()
        worker.kill()
        worker.wait()
