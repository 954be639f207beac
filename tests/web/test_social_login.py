"""Social login end to end: the real ``@staticbackend/js`` browser bundle in headless Chromium.

A page on its own origin (a small static server) loads the client's browser build
(``dist/backend.js``, the global ``sb``) and calls ``socialLogin("google")`` on a real server
process (every store kind) whose google provider points at the test authorization server
(tests/oauth_provider.py). The popup shows the provider's consent page, the test clicks allow,
the callback page closes the popup, and the client's polling of ``/oauth/get-user`` resolves
with a session token that works on ``/me``. Denying consent leaves the popup on a 400 reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from tests.compat.support import DEV_ROOT_ALIAS, LiveServer, tail
from tests.conftest import STORE_KINDS
from tests.oauth_provider import OAuthProvider, serve
from tests.web.test_pages import CHROMIUM, CHROMIUM_ARGS, _database, _env, _free_port, _ready, _stop

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


@pytest.fixture(scope="module", params=STORE_KINDS)
def oauth_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server process that may reach 127.0.0.1 (the test provider) through its outbound guard."""
    kind: str = request.param
    pg_url = request.getfixturevalue("pg_url") if kind == "pg" else ""
    database_url = _database(pg_url, "oauth", create=True) if pg_url else ""
    workdir = tmp_path_factory.mktemp(f"oauth-{kind}")
    log_path = workdir / "server.log"
    env = {**_env(kind, database_url), "SB_FETCH_ALLOW": "127.0.0.1"}
    for _ in range(3):
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "sbserver", "server", "--port", str(port), "--data-dir", str(workdir / "data")]
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        if _ready(proc, url):
            break
        _stop(proc)
        if "already in use" not in tail(log_path, 20).lower():
            pytest.fail(f"the {kind} server did not start:\n{tail(log_path)}", pytrace=False)
    else:
        pytest.fail(f"no free port for the {kind} server:\n{tail(log_path)}", pytrace=False)
    try:
        yield LiveServer(url=url, kind=kind, log_path=log_path)
    finally:
        _stop(proc)
        if pg_url:
            _database(pg_url, "oauth", create=False)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        message = f"{CHROMIUM} is missing: run `make test-deps` (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


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
