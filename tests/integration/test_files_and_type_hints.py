"""Hints JSON cannot describe, run for real: ``File`` in and out of an application,
``HttpBody`` inputs, and classes pydantic has no schema for (TENSORLAKE-API §9)."""

from __future__ import annotations

import pytest

import cairn
from cairn import File, HttpBody, application, function
from cairn.types import RequestStatus


class Thumbnail:
    """A plain class: pydantic cannot describe it as JSON."""

    def __init__(self, width: int) -> None:
        self.width = width


def test_a_file_parameter_and_a_file_return_are_raw_bytes(run):
    @function()
    def invert(data: bytes) -> bytes:
        return bytes(255 - b for b in data)

    @application()
    @function()
    def inverted_image(image: File) -> File:
        return File(invert(image.content), image.content_type)

    request = run(inverted_image, File(b"\x00\x10\xff", "image/x-raw"))
    output = request.output()
    assert isinstance(output, File)
    assert output.content == b"\xff\xef\x00"
    assert output.content_type == "image/x-raw"


def test_an_http_body_parameter_gets_the_body_and_its_content_type(run):
    @application()
    @function()
    def body_summary(body: HttpBody, suffix: str = "!") -> str:
        return f"{body.content_type} {body.json()['word']}{suffix}"

    request = run(body_summary, HttpBody(b'{"word": "cairn"}', "application/json"))
    assert request.output() == "application/json cairn!"


def test_an_application_returning_a_plain_class_fails_when_it_returns(run):
    # Its import is fine; the value cannot become the JSON output.
    @application()
    @function()
    def returns_thumbnail(width: int) -> Thumbnail:
        return Thumbnail(width)

    request = run(returns_thumbnail, 3)
    assert request.status() is RequestStatus.FAILED
    with pytest.raises(cairn.RequestFailed) as error:
        request.output()
    assert error.value.reason == "function_error"


def test_a_file_parameter_given_something_else_is_refused_before_the_request(
    run, store
):
    @application()
    @function()
    def wants_file(doc: File) -> int:
        return len(doc.content)

    with pytest.raises(cairn.SerializationError, match="'doc'"):
        run(wants_file, "not a file")
    assert store.list_requests() == []
