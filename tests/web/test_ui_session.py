"""Signing in to the admin pages, in Chromium against a real server on every store kind.

Spec 08 §2: ``POST /ui/login`` with ``pk`` and ``token``; an unknown key flashes ``This app does
not exists``, a bad token ``invalid public key / token``; success sets the ``pk`` and ``token``
cookies and answers 303 to ``/ui/accounts``. Ours besides: sign-in with an admin's email and
password, a sealed session (never the root token) in HttpOnly SameSite=Strict cookies, CSRF on
every form, idle and absolute expiry, sign out.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import httpx

from sbserver.http.ui.session import ABSOLUTE_SECONDS, open_session, seal_session
from tests.compat.support import DEV_ROOT_ALIAS, LiveServer, unique_email
from tests.web.ui_support import (
    DEV_EMAIL,
    DEV_PASSWORD,
    UI_APP_SECRET,
    chromium,
    csrf_of,
    new_page,
    shot,
    shots,
    sign_in_with_password,
    sign_in_with_token,
    signed_in,
    ui_server_fixture,
)

__all__ = ["chromium"]  # a fixture

ui_server = ui_server_fixture({"SB_UI_IDLE_MINUTES": "20"})
SECRET = UI_APP_SECRET.encode()


def _cookies(page: Any) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in page.context.cookies()}


def _login_error(page: Any) -> str:
    text: str = page.inner_text("#login-error").strip()
    return text


def _flash(page: Any) -> str:
    text: str = page.inner_text(".flash").strip()
    return text


def test_sign_in_with_the_root_token(chromium: Any, ui_server: LiveServer) -> None:
    page = new_page(chromium, ui_server)
    response = sign_in_with_token(page, ui_server.pk, DEV_ROOT_ALIAS)
    assert response.status == 200 and page.url == f"{ui_server.url}/ui/accounts"
    redirect = response.request.redirected_from
    assert redirect is not None and redirect.method == "POST" and redirect.url.endswith("/ui/login")
    assert redirect.response().status == 303
    assert page.title() == "Accounts · sbserver"
    assert DEV_EMAIL in page.inner_text("table")

    cookies = _cookies(page)
    assert {"pk", "token"} <= set(cookies), cookies
    for name in ("pk", "token"):
        assert cookies[name]["httpOnly"] is True, cookies[name]
        assert cookies[name]["sameSite"] == "Strict", cookies[name]
        assert cookies[name]["path"] == "/", cookies[name]
        assert cookies[name]["secure"] is False  # plain http here; over https the cookie is Secure
        assert 0 < cookies[name]["expires"] - time.time() <= ABSOLUTE_SECONDS + 5
    assert cookies["pk"]["value"] == ui_server.pk
    token = cookies["token"]["value"]
    assert DEV_ROOT_ALIAS not in token and "|" not in token, "the cookie holds a sealed session, not the root token"
    session = open_session(SECRET, token)
    assert session is not None and session.pk == ui_server.pk
    assert page.evaluate("document.cookie") == "", "scripts cannot read the session"
    shots(page, "accounts")


def test_sign_in_with_an_admins_email_and_password(chromium: Any, ui_server: LiveServer) -> None:
    page = new_page(chromium, ui_server)
    page.goto("/")
    shots(page, "sign-in")
    response = sign_in_with_password(page, ui_server.pk, DEV_EMAIL, DEV_PASSWORD)
    assert response.status == 200 and page.url == f"{ui_server.url}/ui/accounts"
    assert DEV_EMAIL in page.inner_text(".who")
    page.click("nav >> text=Dashboard")
    assert page.url == f"{ui_server.url}/ui" and page.inner_text("h1") == "Dashboard"
    assert page.locator("nav a[aria-current=page]").inner_text() == "Dashboard"


def test_sign_in_refusals_say_why(chromium: Any, ui_server: LiveServer) -> None:
    page = new_page(chromium, ui_server)

    response = sign_in_with_token(page, "no-such-app", DEV_ROOT_ALIAS)
    assert response.status == 400 and response.url.endswith("/ui/login")
    assert _login_error(page) == "This app does not exists"
    assert page.locator("#login-pk").input_value() == "no-such-app", "the form keeps the key"

    for bad in ("not-a-root-token", "a|b|c", "00000000-0000-0000-0000-000000000000|x|y"):
        response = sign_in_with_token(page, ui_server.pk, bad)
        assert response.status == 400, bad
        assert _login_error(page) == "invalid public key / token", bad
    shot(page, "sign-in-refused")

    response = sign_in_with_password(page, ui_server.pk, DEV_EMAIL, "wrong-password")
    assert response.status == 401 and _login_error(page) == "invalid email/password"
    assert page.locator("#admin-email").input_value() == DEV_EMAIL
    response = sign_in_with_password(page, "no-such-app", DEV_EMAIL, DEV_PASSWORD)
    assert response.status == 400 and _login_error(page) == "This app does not exists"

    # a user of the app who is not an administrator (role 50) is refused, password right or not
    email = unique_email("ui-member")
    r = ui_server.request("POST", "/register", json={"email": email, "password": "member-pw-1"})
    assert r.status_code == 200, r.text
    response = sign_in_with_password(page, ui_server.pk, email, "member-pw-1")
    assert response.status == 403 and _login_error(page) == "this user is not an administrator of this app"

    assert "token" not in _cookies(page), "no refusal leaves a session behind"
    assert page.goto("/ui/accounts").url == f"{ui_server.url}/"


def test_pages_need_a_session(ui_server: LiveServer) -> None:
    for path in ("/ui", "/ui/accounts", "/ui/logins", "/ui/my-account/", "/ui/users/x"):
        r = httpx.get(ui_server.url + path, follow_redirects=False)
        assert (r.status_code, r.headers.get("location")) == (303, "/"), path
    # a forged or foreign cookie is no session, and neither is a root token put in the cookie
    for value in ("x", "enc:v1:AAAA", "a|b|c", "A" * 200):
        r = httpx.get(
            ui_server.url + "/ui/accounts", cookies={"pk": ui_server.pk, "token": value}, follow_redirects=False
        )
        assert r.status_code == 303, value
    # a sign-in form posted from another site is refused
    r = httpx.post(
        ui_server.url + "/ui/login",
        data={"pk": ui_server.pk, "token": DEV_ROOT_ALIAS},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 403 and "set-cookie" not in r.headers


def test_forms_without_the_csrf_token_are_refused(chromium: Any, ui_server: LiveServer) -> None:
    page = signed_in(chromium, ui_server)
    csrf = csrf_of(page)
    before = ui_server.request("GET", "/account/oauth", token=DEV_ROOT_ALIAS).json()
    for data in ({}, {"csrf": ""}, {"csrf": csrf[:-1] + ("A" if csrf[-1] != "A" else "B")}, {"csrf": "x" * 500}):
        form = {"provider": "github", "apikey": "csrf-test-id", "apisecret": "csrf-test-secret", **data}
        r = page.request.post(f"{ui_server.url}/ui/enable-login", form=form, max_redirects=0)
        assert r.status == 403, (data, r.text())
        assert "CSRF check failed" in r.text() and r.headers["content-type"].startswith("text/html")
        r = page.request.post(f"{ui_server.url}/ui/logout", form=data, max_redirects=0)
        assert r.status == 403, data
    assert ui_server.request("GET", "/account/oauth", token=DEV_ROOT_ALIAS).json() == before, "nothing changed"
    assert page.goto("/ui/accounts").url.endswith("/ui/accounts"), "still signed in"


def test_idle_and_absolute_expiry(chromium: Any, ui_server: LiveServer) -> None:
    page = signed_in(chromium, ui_server)
    session = open_session(SECRET, _cookies(page)["token"]["value"])
    assert session is not None
    now = time.time()

    def with_session(s: Any) -> Any:
        page.context.add_cookies([{"name": "token", "value": seal_session(SECRET, s), "url": ui_server.url}])
        return page.goto("/ui/accounts")

    # 19 minutes idle (SB_UI_IDLE_MINUTES=20): still in, and the page renews last-seen
    assert with_session(dataclasses.replace(session, seen=now - 19 * 60)).url.endswith("/ui/accounts")
    renewed = open_session(SECRET, _cookies(page)["token"]["value"])
    assert renewed is not None and renewed.seen > now - 60 and renewed.csrf == session.csrf

    # 21 minutes idle: out, with the reason
    response = with_session(dataclasses.replace(session, seen=now - 21 * 60))
    assert page.url == f"{ui_server.url}/" and response.status == 200
    assert _flash(page) == "Your session has expired: please sign in again."
    assert "token" not in _cookies(page)

    # active all along but signed in 49 hours ago: out
    response = with_session(dataclasses.replace(session, issued=now - 49 * 3600, seen=now - 60))
    assert page.url == f"{ui_server.url}/" and "expired" in _flash(page)

    # a session sealed under another APP_SECRET is no session
    page.context.add_cookies(
        [{"name": "token", "value": seal_session(b"another-secret-0123456789abcdef!", session), "url": ui_server.url}]
    )
    assert page.goto("/ui/accounts").url == f"{ui_server.url}/"


def test_sign_out(chromium: Any, ui_server: LiveServer) -> None:
    page = signed_in(chromium, ui_server, how="password")
    old = _cookies(page)["token"]["value"]
    with page.expect_navigation():
        page.click("form[action='/ui/logout'] button")
    assert page.url == f"{ui_server.url}/"
    assert _flash(page) == "You are signed out."
    assert "token" not in _cookies(page) and "pk" not in _cookies(page)
    assert page.goto("/ui/accounts").url == f"{ui_server.url}/"
    # the flash is shown once
    page.goto("/")
    assert page.locator(".flash").count() == 0
    # the old cookie, kept by someone, no longer opens anything
    r = httpx.get(ui_server.url + "/ui/accounts", cookies={"pk": ui_server.pk, "token": old}, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/")


def test_keyboard_reaches_the_sign_in_form_and_the_nav(chromium: Any, ui_server: LiveServer) -> None:
    page = new_page(chromium, ui_server)
    page.goto("/")
    for field in ("#admin-pk", "#admin-email", "#admin-password", "#login-pk", "#login-token", "#email"):
        label = page.locator(f"label[for={field[1:]}]")
        assert label.count() == 1 and (label.text_content() or "").strip(), field
    page.focus("#admin-pk")
    page.keyboard.type(ui_server.pk)
    page.keyboard.press("Tab")
    page.keyboard.type(DEV_EMAIL)
    page.keyboard.press("Tab")
    page.keyboard.type(DEV_PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/ui/accounts")
    # every input of an admin page has a label
    page.goto("/ui/logins")
    for field in page.locator("main input:not([type=hidden]), main select, main textarea").all():
        ident = field.get_attribute("id")
        assert ident and page.locator(f"label[for={ident}]").count() == 1, ident
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"


def test_a_password_change_ends_the_session_and_apps_stay_apart(chromium: Any, ui_server: LiveServer) -> None:
    email = unique_email("ui-owner")
    app = ui_server.new_app(email)
    page = new_page(chromium, ui_server)
    sign_in_with_password(page, app["pk"], email, app["pw"])
    assert page.url == f"{ui_server.url}/ui/accounts"
    assert email.lower() in page.inner_text("table") and DEV_EMAIL not in page.inner_text("table")
    assert page.inner_text(".who code") == app["pk"]

    r = ui_server.request("POST", "/login", pk=app["pk"], json={"email": email, "password": app["pw"]})
    session_token = r.json()
    r = ui_server.request(
        "POST",
        "/user/changepw",
        pk=app["pk"],
        token=session_token,
        json={"email": email, "oldPassword": app["pw"], "newPassword": "a-new-password-1"},
    )
    assert r.status_code == 200, r.text
    page.goto("/ui/accounts")
    assert page.url == f"{ui_server.url}/"
    assert "Your session has ended" in _flash(page)
    sign_in_with_password(page, app["pk"], email, "a-new-password-1")
    assert page.url == f"{ui_server.url}/ui/accounts"
