"""The dashboard with ``CAIRN_API_KEY``: a login form, a session cookie, CSRF."""

from __future__ import annotations

import time

import httpx

from cairn.server._dashboard import _session
from tests.dashboard.support import KEY
from tests.server.support import Server


def _origin(server: Server) -> dict[str, str]:
    return {"Origin": server.url}


def _login(client: httpx.Client, server: Server, key: str) -> httpx.Response:
    return client.post(
        "/ui/login",
        data={"api_key": key, "next": "/ui/requests/abc"},
        headers=_origin(server),
    )


def test_pages_ask_for_the_key_and_the_cookie_carries_the_session(
    dash_secured: Server,
) -> None:
    with httpx.Client(base_url=dash_secured.url, timeout=30) as browser:
        for path in ("/", "/ui", "/ui/requests/abc?x=1", "/ui/stream"):
            answer = browser.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/ui/login?next=")
        # The API still answers 401 JSON; the login form and static files are open.
        assert browser.get("/applications").status_code == 401
        assert browser.post("/applications/dash_add", json=1).status_code == 401
        form = browser.get("/ui/login?next=%2Fui%2Frequests%2Fabc")
        assert form.status_code == 200 and 'type="password"' in form.text
        assert 'value="/ui/requests/abc"' in form.text
        assert browser.get("/ui/static/dashboard.css").status_code == 200

        wrong = _login(browser, dash_secured, "not-the-key")
        assert wrong.status_code == 401
        assert "wrong API key" in wrong.text
        assert _session.COOKIE not in wrong.headers.get("set-cookie", "")

        right = _login(browser, dash_secured, KEY)
        assert right.status_code == 303
        assert right.headers["location"] == "/ui/requests/abc"
        cookie = right.headers["set-cookie"]
        assert cookie.startswith(f"{_session.COOKIE}=")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert KEY not in cookie and KEY not in right.headers["location"]

        page = browser.get("/ui")
        assert page.status_code == 200 and "Log out" in page.text
        assert KEY not in page.text
        assert browser.get("/ui/requests/abc").status_code == 404  # past auth
        assert browser.get("/applications").status_code == 200

        # Unsafe methods on the cookie alone must come from the dashboard's pages.
        same_site = {"Origin": dash_secured.url, "Content-Type": "application/json"}
        ok = browser.post("/applications/dash_add", content=b"1", headers=same_site)
        assert ok.status_code == 200, ok.text
        fetch = {"Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}
        assert browser.post("/applications/dash_add", content=b"1", headers=fetch)
        for headers, code in (
            ({}, "forbidden"),
            ({"Origin": "http://evil.example"}, "cross_origin"),
            (
                {"Sec-Fetch-Site": "cross-site", "Origin": dash_secured.url},
                "cross_origin",
            ),
            ({"Sec-Fetch-Site": "same-site"}, "cross_origin"),
        ):
            refused = browser.post(
                "/applications/dash_add", content=b"1", headers=headers
            )
            assert refused.status_code == 403, headers
            assert refused.json()["error"]["code"] == code

        out = browser.post("/ui/logout", headers=_origin(dash_secured))
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
        assert (
            "Max-Age=0" in out.headers["set-cookie"]
            or "expires" in out.headers["set-cookie"].lower()
        )
        assert browser.get("/ui").status_code == 303


def test_forged_expired_and_cross_site_logins_are_refused(dash_secured: Server) -> None:
    key = KEY.encode()
    forged = [
        _session.token(b"another key"),
        _session.token(key, now_s=time.time() - _session.SESSION_S - 60),
        _session.token(key)[:-2] + "00",
        "v1.abc.def",
        "",
    ]
    for value in forged:
        with httpx.Client(
            base_url=dash_secured.url, timeout=30, cookies={_session.COOKIE: value}
        ) as browser:
            assert browser.get("/ui").status_code == 303, value
    with httpx.Client(
        base_url=dash_secured.url,
        timeout=30,
        cookies={_session.COOKIE: _session.token(key)},
    ) as browser:
        assert browser.get("/ui").status_code == 200
    with httpx.Client(base_url=dash_secured.url, timeout=30) as browser:
        cross = browser.post(
            "/ui/login",
            data={"api_key": KEY},
            headers={"Origin": "http://evil.example"},
        )
        assert cross.status_code == 403
        # The bearer key still works for every dashboard route.
        bearer = {"Authorization": f"Bearer {KEY}"}
        assert browser.get("/ui", headers=bearer).status_code == 200
        # A "next" that leaves the dashboard is ignored.
        away = browser.post(
            "/ui/login",
            data={"api_key": KEY, "next": "//evil.example/x"},
            headers={"Origin": dash_secured.url},
        )
        assert away.headers["location"] == "/ui"


def test_session_tokens() -> None:
    key = b"k"
    now = 1_800_000_000.0
    value = _session.token(key, now_s=now)
    assert _session.valid(key, value, now_s=now + 10)
    assert not _session.valid(b"other", value, now_s=now)
    assert not _session.valid(key, value, now_s=now + _session.SESSION_S + 1)
    assert not _session.valid(key, value, now_s=now - 3600)
    assert not _session.valid(key, value.replace("v1.", "v2."), now_s=now)
    assert (
        _session.cookie_value([(b"cookie", f"a=1; {_session.COOKIE}={value}".encode())])
        == value
    )
    assert _session.cookie_value([(b"cookie", b"a=1")]) is None
