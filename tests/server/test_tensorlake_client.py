"""The real ``tensorlake`` package's client, pointed at ``cairn serve``.

It runs in a subprocess: tensorlake reads ``TENSORLAKE_API_URL`` when imported.
Its ``run_remote_application`` GETs the application manifest, POSTs the arguments
(a JSON body for one positional argument, multipart otherwise); ``output()`` waits
on the SSE progress stream for ``RequestFinished``, GETs the request metadata and
then the output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.server.support import Server

SCRIPT = textwrap.dedent(
    """
    import json
    from tensorlake.applications import (
        RequestError, RequestFailed, run_remote_application,
    )

    results = {}
    request = run_remote_application("srv_greet", "tensorlake")
    results["id"] = request.id
    results["greet"] = request.output()
    results["add"] = run_remote_application("srv_add", 2, b=5).output()
    results["add_positional"] = run_remote_application("srv_add", 2, 3).output()
    results["nothing"] = run_remote_application("srv_nothing").output()
    results["shift"] = run_remote_application("srv_shift", {"x": 1}, by=2).output()
    results["squares"] = run_remote_application("srv_squares", 3).output()
    try:
        run_remote_application("srv_refuse", "no way").output()
    except RequestError as error:
        results["refuse"] = ["RequestError", str(error)]
    try:
        run_remote_application("srv_boom").output()
    except RequestFailed as error:
        results["boom"] = [type(error).__name__, str(error)]
    print(json.dumps(results))
    """
)


def test_tensorlake_run_remote_application_and_output(server: Server) -> None:
    env = {
        **os.environ,
        "TENSORLAKE_API_URL": server.url,
        "INDEXIFY_NAMESPACE": "default",
    }
    env.pop("TENSORLAKE_API_KEY", None)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        cwd=server.dir,
    )
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout.strip().splitlines()[-1])
    assert results["greet"] == "hello tensorlake"
    assert results["add"] == 7
    assert results["add_positional"] == 5
    assert results["nothing"] == "nothing"
    # The model is the app's own class: announced as Any, so it comes back a dict.
    assert results["shift"] == {"x": 3, "y": 2}
    assert results["squares"] == [0, 1, 4]
    assert results["refuse"] == ["RequestError", "no way"]
    assert results["boom"] == ["RequestFailed", "function_error"]
    with server.client() as http:
        metadata = http.get(f"/applications/srv_greet/requests/{results['id']}").json()
    assert metadata["outcome"] == "success"
