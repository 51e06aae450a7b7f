"""Applications with ``File`` inputs and outputs (``cairn serve`` serves this file in
``test_files.py``). Names start with ``srvfile_``: decorated names are one namespace."""

from __future__ import annotations

from cairn import File, HttpBody, application, function


@function()
def srvfile_reverse(data: bytes) -> bytes:
    return data[::-1]


@application()
@function()
def srvfile_reversed(doc: File) -> File:
    return File(srvfile_reverse(doc.content), f"{doc.content_type}; reversed")


@application()
@function()
def srvfile_describe(label: str, doc: File, body: HttpBody | None = None) -> str:
    return f"{label}: {len(doc.content)} bytes of {doc.content_type}"
