"""The requests page's filters: application, status, a search text (a request id's
prefix or a piece of its input), a time range, an order.

Every filter is a query parameter, so a filtered page is a link; a bad one gets a
message naming it (400), never a 500. Times are ISO 8601 (``2025-01-31T12:00``,
UTC unless a zone is given) or a recent window (``last=24h``).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from cairn.store import RequestQuery
from cairn.types import RequestStatus

from .. import _errors

# The recent windows the form offers (and any N plus m, h or d).
WINDOWS = {
    "1h": "last hour",
    "24h": "last 24 hours",
    "7d": "last 7 days",
    "30d": "last 30 days",
}
ORDERS = {
    "newest": "newest first",
    "oldest": "oldest first",
    "longest": "longest first",
}
_WINDOW = re.compile(r"([0-9]{1,4})([mhd])")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
_MAX_TEXT = 200
_MAX_PAGE = 10_000


@dataclass(frozen=True, kw_only=True)
class Filters:
    """What the requests page is asked to show."""

    application: str = ""
    status: str = ""
    text: str = ""
    last: str = ""
    start: str = ""
    end: str = ""
    order: str = "newest"
    page: int = 0
    created_from_ms: float | None = None
    created_to_ms: float | None = None

    @property
    def searching(self) -> bool:
        """Whether the page needs a search (else the list pages by cursor)."""
        return bool(
            self.text
            or self.created_from_ms is not None
            or self.created_to_ms is not None
        ) or (self.order != "newest")

    @property
    def any(self) -> bool:
        """Whether anything narrows the requests (bulk actions apply to them)."""
        return bool(
            self.application
            or self.status
            or self.text
            or self.created_from_ms is not None
            or self.created_to_ms is not None
        )

    def query(
        self,
        statuses: tuple[RequestStatus, ...] | None = None,
        before_ms: float | None = None,
    ) -> RequestQuery:
        """The store's query for these filters (and, for a bulk action, its
        statuses and the instant it was asked at)."""
        end = self.created_to_ms
        if before_ms is not None:
            end = before_ms if end is None else min(end, before_ms)
        return RequestQuery(
            application=self.application or None,
            status=RequestStatus(self.status) if self.status else None,
            statuses=statuses,
            text=self.text or None,
            created_from_ms=self.created_from_ms,
            created_to_ms=end,
        )

    def link(self, **changes: object) -> str:
        """``/ui?...`` with these filters, some changed."""
        values = {
            "application": self.application,
            "status": self.status,
            "q": self.text,
            "last": self.last,
            "from": self.start,
            "to": self.end,
            "sort": "" if self.order == "newest" else self.order,
            "page": str(self.page) if self.page else "",
        }
        values.update({key: str(value) for key, value in changes.items()})
        return "/ui?" + urlencode({k: v for k, v in values.items() if v})

    def describe(self) -> str:
        """The filters in words, for a confirmation: ``of dash_add, failed, …``."""
        parts = []
        if self.application:
            parts.append(f"of {self.application}")
        if self.status:
            parts.append(self.status.replace("_", " "))
        if self.text:
            parts.append(f"matching {self.text!r}")
        if self.last:
            parts.append(
                f"created in the {WINDOWS.get(self.last, 'last ' + self.last)}"
            )
        if self.start:
            parts.append(f"created from {self.start}")
        if self.end:
            parts.append(f"created before {self.end}")
        return ", ".join(parts)


def _time(raw: str, name: str) -> float:
    try:
        moment = datetime.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise _errors.bad_request(
            "bad_time",
            f"{name} must be a time like 2025-01-31T12:00 (UTC) or "
            f"2025-01-31T12:00+02:00, got {raw[:40]!r}",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp() * 1000


def parse(params: Mapping[str, str], now_ms: float) -> Filters:
    """The filters of a query (raises ``ApiError`` 400 naming a bad one)."""
    status = params.get("status") or ""
    if status and status not in {s.value for s in RequestStatus}:
        raise _errors.bad_request(
            "bad_status",
            f"status must be one of {', '.join(s.value for s in RequestStatus)}",
        )
    text = (params.get("q") or "").strip()
    if len(text) > _MAX_TEXT or "\x00" in text:
        raise _errors.bad_request(
            "bad_search", f"the search text must be at most {_MAX_TEXT} characters"
        )
    order = params.get("sort") or "newest"
    if order not in ORDERS:
        raise _errors.bad_request(
            "bad_sort", f"sort must be one of {', '.join(ORDERS)}"
        )
    raw_page = params.get("page") or "0"
    if not (raw_page.isascii() and raw_page.isdigit() and int(raw_page) <= _MAX_PAGE):
        raise _errors.bad_request(
            "bad_page", f"page must be a number from 0 to {_MAX_PAGE:,}"
        )
    last = params.get("last") or ""
    start_ms: float | None = None
    if last:
        window = _WINDOW.fullmatch(last)
        if window is None or int(window[1]) == 0:
            raise _errors.bad_request(
                "bad_time", "last must be a window like 15m, 24h or 7d"
            )
        start_ms = now_ms - int(window[1]) * _UNIT_MS[window[2]]
    start, end = params.get("from") or "", params.get("to") or ""
    if start:
        start_ms = max(_time(start, "from"), start_ms or -float("inf"))
    end_ms = _time(end, "to") if end else None
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise _errors.bad_request("bad_time", "the time range ends before it starts")
    return Filters(
        application=params.get("application") or "",
        status=status,
        text=text,
        last=last,
        start=start,
        end=end,
        order=order,
        page=int(raw_page),
        created_from_ms=start_ms,
        created_to_ms=end_ms,
    )
