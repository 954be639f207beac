"""The web pages in a real headless Chromium, against a real server process, on every store kind.

Playwright drives Debian's ``/usr/bin/chromium`` (``make test-deps`` installs it); it never
downloads a browser. Without Chromium the tests skip locally and fail in CI. The server runs as
``python -m sbserver server`` on a free port with its own data directory (and its own
PostgreSQL database when ``SB_TEST_PG_URL`` is set), once per pytest-xdist worker and store kind.

Spec: 08-config-and-ui.md (``/``: a form "Create a new app" posting ``email`` to
``/account/init``), 01-model.md section 7.1 (what ``/account/init`` does), and decision 3 of
00-index.md (a taken email is 409 here, 500 upstream).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.support import LiveServer, jwt_claims, tail, unique_email
from tests.conftest import STORE_KINDS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT = 45.0
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SETTLE_MS = 750
ACCENT = "rgb(37, 99, 235)"  # --accent of app.css: proves the stylesheet applied

# Variables of the calling shell that would change which store or settings the server uses.
_INHERITED = ("APP_ENV", "DATA_STORE", "DATABASE_URL", "REDIS_URL", "REDIS_HOST", "REDIS_PASSWORD", "PORT")
_INHERITED_PREFIXES = ("SB_", "ACTIVATE_FLAG", "KEEP_PERM_COL_NAME", "MAIL_PROVIDER", "STRIPE_")


# --- the server ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _database(url: str, suffix: str, *, create: bool) -> str:
    """Drop the database next to the one ``url`` names, then create it empty again if asked."""
    import asyncpg

    base, _, dbname = url.rpartition("/")
    name = f"{dbname.split('?', 1)[0]}_{suffix}"

    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            if create:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(run())
    return f"{base}/{name}"


def _env(kind: str, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED and not k.startswith(_INHERITED_PREFIXES)}
    env.update({"APP_ENV": "dev", "JWT_SECRET": "web-suite-jwt-secret-0123456789abcdef", "PYTHONUNBUFFERED": "1"})
    if kind == "pg":
        env.update({"DATA_STORE": "pg", "DATABASE_URL": database_url})
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _ready(proc: subprocess.Popen[bytes], url: str) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + "/ping", timeout=2).text == "true":
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


@pytest.fixture(scope="session", params=STORE_KINDS)
def web_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real server process on the parametrised store kind, shared by this worker's page tests."""
    kind: str = request.param
    pg_url = request.getfixturevalue("pg_url") if kind == "pg" else ""
    database_url = _database(pg_url, "web", create=True) if pg_url else ""
    workdir = tmp_path_factory.mktemp(f"web-{kind}")
    log_path = workdir / "server.log"
    env = _env(kind, database_url)
    for _ in range(3):  # another process may take the port between the probe and the bind
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
            pytest.fail(f"the {kind} server did not start; last lines of {log_path}:\n{tail(log_path)}", pytrace=False)
    else:
        pytest.fail(f"no free port for the {kind} server:\n{tail(log_path)}", pytrace=False)
    try:
        yield LiveServer(url=url, kind=kind, log_path=log_path)
    finally:
        _stop(proc)
        if pg_url:
            _database(pg_url, "web", create=False)


# --- the browser -----------------------------------------------------------------------------


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's headless Chromium, launched for one test.

    Per test, not per session: sync Playwright keeps an asyncio loop running in this thread
    while it is started, and other fixtures of the worker (``pg_url``, ``live_server``) call
    ``asyncio.run``. A new browser per test also means each test sees what a first visit
    triggers: Chromium reports a failed fetch of the tab icon once per browser process.
    """
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


@dataclass
class Recorder:
    """What a page did besides rendering: console errors, failed requests, every response."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    responses: list[tuple[str, str, int, str]] = field(default_factory=list)  # method, url, status, type

    def responses_to(self, path: str) -> list[tuple[str, str, int, str]]:
        return [r for r in self.responses if r[1].split("?", 1)[0].endswith(path)]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def page(browser: Any, web_server: LiveServer, recorder: Recorder) -> Iterator[Any]:
    """A page of the test's browser, reporting what it logs to ``recorder``."""
    context = browser.new_context(base_url=web_server.url, viewport={"width": 1024, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            recorder.console_errors.append(f"{msg.text} ({msg.location.get('url', '')})")

    tab.on("console", on_console)
    tab.on("pageerror", lambda exc: recorder.page_errors.append(str(exc)))
    tab.on("requestfailed", lambda req: recorder.failed.append(f"{req.method} {req.url}: {req.failure}"))
    tab.on(
        "response",
        lambda r: recorder.responses.append((r.request.method, r.url, r.status, r.headers.get("content-type", ""))),
    )
    try:
        yield tab
    finally:
        context.close()


def submit(page: Any, email: str) -> Any:
    """Fill the form's email, click the button; the response of the navigation it causes."""
    page.fill("#email", email)
    with page.expect_navigation() as nav:
        page.click("#create button[type=submit]")
    return nav.value


def created_credentials(page: Any) -> dict[str, str]:
    return {key: page.inner_text(f"#{key}").strip() for key in ("pk", "email", "password", "root-token")}


def error_text(page: Any) -> str:
    alert = page.locator("p.error[role=alert]")
    assert alert.count() == 1, page.content()
    text: str = alert.inner_text().strip()
    return text


# --- the tests -------------------------------------------------------------------------------


def test_index_shows_the_create_app_form(page: Any, recorder: Recorder) -> None:
    response = page.goto("/")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    assert page.title() == "Create an app · sbserver"

    form = page.locator("#create form")  # the other forms of the page sign in (tests/web/test_ui_session.py)
    assert form.count() == 1
    assert form.get_attribute("method") == "post"
    assert form.get_attribute("action") == "/account/init"
    field_ = page.locator("#create form input#email")
    assert field_.get_attribute("name") == "email"
    assert field_.get_attribute("type") == "email"
    assert field_.get_attribute("required") is not None
    assert field_.input_value() == ""
    assert page.inner_text("label[for=email]").strip() == "Your email"
    button = page.locator("#create form button[type=submit]")
    assert button.inner_text().strip() == "Create my app"
    assert page.locator("p.error").count() == 0

    css = recorder.responses_to("/static/css/app.css")
    assert [(m, s) for m, _, s, _ in css] == [("GET", 200)], recorder.responses
    assert css[0][3].startswith("text/css"), css
    assert button.evaluate("b => getComputedStyle(b).backgroundColor") == ACCENT


def test_form_creates_an_app_whose_credentials_work(page: Any, web_server: LiveServer, tmp_path: Path) -> None:
    email = unique_email("Web-Form")
    page.goto("/")
    response = submit(page, email)
    assert (response.request.method, response.status) == ("POST", 200)
    assert response.url == f"{web_server.url}/account/init"
    assert page.title() == "Your app is ready · sbserver"
    assert page.inner_text("h1").strip() == "Your app is ready"

    creds = created_credentials(page)
    pk, password, root_token = creds["pk"], creds["password"], creds["root-token"]
    assert creds["email"] == email.lower()
    assert re.fullmatch(r"[A-Za-z0-9]{6,}", pk) and pk != web_server.pk, creds
    # 6 characters starting with "a" (spec 01 section 7.1, step 7)
    assert len(password) == 6 and password.startswith("a"), creds
    parts = root_token.split("|")
    assert len(parts) == 3 and all(parts), creds
    assert re.fullmatch(UUID, parts[0]) and re.fullmatch(UUID, parts[1]), creds
    assert pk in page.inner_text("pre")

    shot = tmp_path / "created.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR", data[:32]
    width, height = struct.unpack(">II", data[16:24])
    assert width > 0 and height > 0 and len(data) > 1000, (width, height, len(data))

    # the public key opens the app to its users
    user = unique_email("web-user")
    r = web_server.request("POST", "/register", pk=pk, json={"email": user, "password": "web-pw-123456"})
    assert r.status_code == 200, r.text
    session = r.json()
    jwt_claims(session)
    me = web_server.request("GET", "/me", pk=pk, token=session)
    assert me.status_code == 200 and me.json()["email"] == user and me.json()["role"] == 50, me.text

    # the root token is the app's: /sudolistall answers its collections
    r = web_server.request("GET", "/sudolistall", pk=pk, token=root_token)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    collections = r.json()
    assert isinstance(collections, list) and collections == sorted(collections), collections
    assert web_server.request("GET", "/sudolistall", pk=pk, token=root_token + "x").status_code >= 400
    assert web_server.request("GET", "/sudolistall", pk=web_server.pk, token=root_token).status_code >= 400

    # the admin password signs the admin in: a role-100 user with the tenant's email
    r = web_server.request("POST", "/login", pk=pk, json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    me = web_server.request("GET", "/me", pk=pk, token=r.json())
    assert (me.json()["email"], me.json()["role"]) == (email.lower(), 100), me.text


def test_invalid_email_shows_the_error_with_400(page: Any, recorder: Recorder) -> None:
    page.goto("/")
    # the browser's own check stops what is not an address at all: nothing is sent
    page.fill("#email", "not-an-address")
    assert page.locator("#email").evaluate("e => e.checkValidity()") is False
    page.click("#create button[type=submit]")
    page.wait_for_timeout(300)
    assert recorder.responses_to("/account/init") == []
    assert page.title() == "Create an app · sbserver"

    # "a@b" is an address for the browser but not for the server (no dot): 400 `invalid email`
    response = submit(page, "a@b")
    assert (response.request.method, response.status) == ("POST", 400)
    assert response.headers["content-type"].startswith("text/html")
    assert error_text(page) == "invalid email"
    assert page.title() == "Create an app · sbserver"
    assert page.locator("#email").input_value() == "a@b", "the form keeps what was typed"
    assert page.locator("form[action='/account/init']").count() == 1


def test_same_email_twice_is_refused(page: Any) -> None:
    email = unique_email("web-twice")
    page.goto("/")
    assert submit(page, email).status == 200
    assert created_credentials(page)["email"] == email.lower()

    for again in (email, email.upper()):  # emails are compared lower-cased
        page.goto("/")
        response = submit(page, again)
        # decision 3: a taken email is a conflict, 409 (upstream answers 500)
        assert (response.request.method, response.status) == ("POST", 409), again
        assert error_text(page) == "Please use a different/valid email."
        assert page.title() == "Create an app · sbserver"
        assert page.locator("#pk").count() == 0, "no credentials on a refusal"


def test_pages_log_no_console_errors(page: Any, recorder: Recorder) -> None:
    """The create page, the created page and an error page: no console error, nothing failed.

    Each page is given time to settle: Chromium fetches what it needs after the load event
    (the tab icon among them) and reports failures to the console. The one console error a
    4xx page must log is Chromium's report of its own status.
    """

    def settle() -> None:
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(SETTLE_MS)

    assert page.goto("/").status == 200
    settle()
    assert submit(page, unique_email("web-console")).status == 200
    settle()
    page.goto("/")
    settle()
    assert submit(page, "a@b").status == 400
    settle()

    own_status = "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    errors = [e for e in recorder.console_errors if not (e.startswith(own_status) and e.endswith("/account/init)"))]
    assert errors == [], f"console errors: {errors}\nresponses: {recorder.responses}"
    assert recorder.page_errors == []
    assert recorder.failed == []
    css = recorder.responses_to("/static/css/app.css")
    assert len(css) == 4 and all(status == 200 for _, _, status, _ in css), css
