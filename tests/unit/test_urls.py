"""Store URLs never show a password in messages."""

from __future__ import annotations

from cairn.store import redact_url


def test_a_password_is_replaced_and_the_rest_kept():
    url = "postgresql://ada:s3cret@db.internal:5432/cairn?sslmode=require"
    assert (
        redact_url(url) == "postgresql://ada:***@db.internal:5432/cairn?sslmode=require"
    )


def test_urls_without_a_password_are_unchanged():
    for url in ("postgresql://ada@db/cairn", "sqlite:////tmp/x.db", "sqlite:///x.db"):
        assert redact_url(url) == url
