"""Store URLs: in messages never with a password, and the options both stores take."""

from __future__ import annotations

import urllib.parse

from cairn import errors


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def timeout_option(value: str, url: str, meaning: str) -> float:
    """A store URL's ``timeout=SECONDS``: a number in (0, 86400), else an error
    saying what the seconds are (``meaning``) in that store."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 86400:
        raise errors.StoreError(
            f"bad timeout={value!r} in store URL {redact(url)!r}: {meaning}, "
            "a number in (0, 86400)"
        )
    return seconds
