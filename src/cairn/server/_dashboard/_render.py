"""Jinja templates with autoescaping, and the headers every dashboard page carries.

Every string a user's code produced (errors, outputs, progress messages, names)
reaches a page through a template that escapes it; the pages also forbid inline
scripts (Content-Security-Policy), so that text which got through unescaped
still could not run.
"""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path
from typing import Any

import jinja2
from starlette.responses import HTMLResponse

from cairn import _text

HERE = Path(__file__).parent
STATIC = HERE / "static"

HEADERS = {
    # Inline style attributes (bar widths) are allowed; scripts only from files.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _asset_version() -> str:
    """A hash of the static files, so browsers fetch them anew after an upgrade."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def _percent(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") + "%"


def _thousands(value: int) -> str:
    return f"{value:,}"


def _utc(ms: float | None, with_ms: bool = False) -> str:
    """``2025-01-02 03:04:05 UTC`` (with milliseconds if asked); ``-`` if unknown."""
    if ms is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if with_ms:
        text += f".{moment.microsecond // 1000:03d}"
    return f"{text} UTC"


def _iso(ms: float | None) -> str:
    """RFC 3339 in UTC with milliseconds (a ``<time datetime>``)."""
    if ms is None:
        return ""
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Templates:
    """The dashboard's templates, loaded once per app."""

    def __init__(self, *, namespace: str, auth: bool) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            duration=_text.duration,
            percent=_percent,
            thousands=_thousands,
            utc=_utc,
            iso=_iso,
        )
        self.env.globals.update(
            namespace=namespace,
            auth=auth,
            api=f"/v1/namespaces/{namespace}",
            asset_version=_asset_version(),
        )

    def text(self, name: str, **context: Any) -> str:
        """A template rendered to text."""
        return self.env.get_template(name).render(**context)

    def page(
        self,
        name: str,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """A page or fragment as an HTML response with the dashboard's headers."""
        return HTMLResponse(
            self.text(name, **context),
            status_code=status_code,
            headers={**HEADERS, **(headers or {})},
        )

    def error(
        self, status: int, title: str, message: str, hint: str = ""
    ) -> HTMLResponse:
        """An error page."""
        return self.page(
            "error.html", status_code=status, title=title, message=message, hint=hint
        )
