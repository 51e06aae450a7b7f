"""``File`` over HTTP, as Tensorlake: a File parameter is the request's body (or a
multipart part) with its content type; a File output is the response's body."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import cairn
from tests.server.support import Server, launch, sse_events

FILE_APPS = Path(__file__).with_name("file_apps.py")


@pytest.fixture(scope="module")
def file_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = launch(tmp_path_factory.mktemp("file-server"), apps=FILE_APPS)
    yield started
    started.stop()


def _succeeded(
    client: httpx.Client, app: str, response: httpx.Response
) -> tuple[str, dict[str, Any]]:
    """The request ``response`` started, once it has succeeded: its id and its
    RequestFinished event."""
    assert response.status_code == 200, response.text
    request_id: str = response.json()["request_id"]
    events = sse_events(client, f"/applications/{app}/requests/{request_id}/progress")
    finished = next(e["RequestFinished"] for _, e in events if "RequestFinished" in e)
    assert finished["outcome"] == "success"
    return request_id, finished


def test_the_body_is_the_file_and_the_output_is_the_response_body(
    file_server: Server,
) -> None:
    with file_server.client() as client:
        response = client.post(
            "/applications/srvfile_reversed",
            content=b"\x01\x02\x03",
            headers={
                "Content-Type": "application/x-bytes",
                "Accept": "application/json",
            },
        )
        request_id, finished = _succeeded(client, "srvfile_reversed", response)
        # The event points at the output and names its type: no JSON body.
        assert finished["output"]["content_encoding"] == "application/x-bytes; reversed"
        assert "body" not in finished["output"]
        path = f"/applications/srvfile_reversed/requests/{request_id}/output"
        output = client.get(path)
        assert output.status_code == 200
        assert output.content == b"\x03\x02\x01"
        assert output.headers["content-type"] == "application/x-bytes; reversed"
        head = client.head(path)
        assert head.headers["content-length"] == "3"


def test_a_multipart_part_is_a_file_with_its_own_content_type(
    file_server: Server,
) -> None:
    with file_server.client() as client:
        response = client.post(
            "/applications/srvfile_describe",
            files=[
                ("0", ("0", json.dumps("scan").encode(), "application/json")),
                ("doc", ("doc.pdf", b"%PDF-1.7 ...", "application/pdf")),
            ],
        )
        request_id, _ = _succeeded(client, "srvfile_describe", response)
        output = client.get(
            f"/applications/srvfile_describe/requests/{request_id}/output"
        )
        assert output.json() == "scan: 12 bytes of application/pdf"


def test_run_remote_application_sends_and_gets_files(file_server: Server) -> None:
    request = cairn.run_remote_application(
        "srvfile_reversed",
        cairn.File(b"abc", "text/plain"),
        cairn_server=file_server.url,
    )
    output = request.output()
    assert isinstance(output, cairn.File)
    assert output.content == b"cba"
    assert output.content_type == "text/plain; reversed"
    described = cairn.run_remote_application(
        "srvfile_describe",
        "note",
        doc=cairn.File(b"hello", "text/plain"),
        cairn_server=file_server.url,
    )
    assert described.output() == "note: 5 bytes of text/plain"
