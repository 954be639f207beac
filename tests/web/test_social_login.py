"""Social login end to end: the real ``@staticbackend/js`` browser bundle in headless Chromium.

A page on its own origin (a small static server) loads the client's browser build
(``dist/backend.js``, the global ``sb``) and calls ``socialLogin("google")`` on a real server
process (every store kind) whose google provider points at the test authorization server
(tests/oauth_provider.py). The popup shows the provider's consent page, the test clicks allow,
the callback page closes the popup, and the client's polling of ``/oauth/get-user`` resolves
with a session token that works on ``/me``. Denying consent leaves the popup on a 400 reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from tests.compat.support import DEV_ROOT_ALIAS, LiveServer
from tests.oauth_provider import OAuthProvider, serve
from tests.web.ui_support import chromium, ui_server_fixture  # noqa: F401 (chromium: a fixture)

BUNDLE = Path(__file__).resolve().parents[1] / "compat" / "js" / "node_modules" / "@staticbackend" / "js" / "dist"
APP_PAGE = """<!doctype html><html><head><title>app</title><script src="/sb.js"></script></head><body>
<button id="login">Sign in with Google</button><pre id="out"></pre>
<script>
const q = new URLSearchParams(location.search);
const backend = new sb.Backend(q.get("pk"), q.get("server"));
document.getElementById("login").onclick = async () => {
  const user = await backend.socialLogin("google");
  document.getElementById("out").textContent = JSON.stringify(user);
  window.signedIn = user;
};
</script></body></html>"""


@pytest.fixture(scope="module")
def provider() -> Iterator[OAuthProvider]:
    with OAuthProvider().running() as running:
        yield running


@pytest.fixture(scope="module")
def app_origin() -> Iterator[str]:
    """The app's own origin: the page and the client's browser bundle."""

    async def page(request: Any) -> Response:
        return HTMLResponse(APP_PAGE)

    async def bundle(request: Any) -> Response:
        return FileResponse(BUNDLE / "backend.js", media_type="text/javascript")

    with serve(Starlette(routes=[Route("/app.html", page), Route("/sb.js", bundle)])) as url:
        yield url


# a server that may reach 127.0.0.1 (the test provider) through its outbound guard
oauth_server = ui_server_fixture({"SB_FETCH_ALLOW": "127.0.0.1"})


@pytest.fixture
def browser(chromium: Any) -> Any:  # noqa: F811 (the fixture imported above)
    return chromium


def configure_google(server: LiveServer, provider: OAuthProvider) -> None:
    client_id, secret = provider.add_client(server.url + "/oauth/callback")
    body = {"clientId": client_id, "clientSecret": secret, **provider.endpoints("google")}
    r = server.request("PUT", "/account/oauth/google", token=DEV_ROOT_ALIAS, json=body)
    assert r.status_code == 200, r.text


def open_login_popup(browser: Any, server: LiveServer, app_origin: str) -> tuple[Any, Any]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{app_origin}/app.html?pk={server.pk}&server={server.url}")
    with context.expect_page() as opened:
        page.click("#login")
    popup = opened.value
    popup.wait_for_load_state()
    return page, popup


def test_social_login_in_chromium(
    browser: Any, oauth_server: LiveServer, provider: OAuthProvider, app_origin: str
) -> None:
    address = f"social-{uuid.uuid4().hex[:10]}@example.com"
    login = "browser-" + address
    provider.add_user(login, address, name="Ada Lovelace", given="Ada", family="Lovelace")
    configure_google(oauth_server, provider)

    page, popup = open_login_popup(browser, oauth_server, app_origin)
    assert popup.url.startswith(provider.url + "/authorize?"), popup.url
    assert popup.title() == "Test provider: consent"
    with popup.expect_event("close"):  # the callback page closes the window
        popup.click(f"[id='allow-{login}']")

    page.wait_for_function("window.signedIn !== undefined", timeout=20_000)
    user = page.evaluate("window.signedIn")
    assert (user["email"], user["first"], user["last"]) == (address, "Ada", "Lovelace"), user
    me = httpx.get(
        oauth_server.url + "/me",
        headers={"SB-PUBLIC-KEY": oauth_server.pk, "Authorization": f"Bearer {user['token']}"},
        timeout=10,
    )
    assert me.status_code == 200 and me.json()["email"] == address, me.text
    assert provider.token_requests[-1]["outcome"] == "ok"
    assert provider.token_requests[-1]["code_verifier"], provider.token_requests[-1]


def test_denied_consent_shows_the_reason(
    browser: Any, oauth_server: LiveServer, provider: OAuthProvider, app_origin: str
) -> None:
    provider.add_user("denier", f"denier-{uuid.uuid4().hex[:8]}@example.com")
    configure_google(oauth_server, provider)
    _, popup = open_login_popup(browser, oauth_server, app_origin)
    with popup.expect_navigation():
        popup.click("#deny")
    assert popup.url.startswith(oauth_server.url + "/oauth/callback?"), popup.url
    assert popup.inner_text("body").strip() == "the sign-in was not completed at google: access_denied"
