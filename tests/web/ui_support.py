"""What the admin page tests share: a real server per store kind, Chromium, signing in, screenshots.

- ``ui_server(extra_env)`` makes a module-scoped fixture: ``python -m sbserver server`` on every
  store kind (``running_server`` of tests/compat), in dev mode (the dev app, its admin
  ``admin@dev.com`` / ``devpw1234`` and the root alias exist), with a known ``APP_SECRET``
  (``UI_APP_SECRET``: tests may seal a session cookie themselves) and its own PostgreSQL database.
  Use it as ``ui_server = ui_server_fixture()`` at the top of a test module.
- ``chromium``: Debian's ``/usr/bin/chromium`` through Playwright, per test (see test_pages.py for
  why); skips locally when missing, fails in CI.
- ``signed_in(browser, server)``: a page signed in through the real form on ``/``.
- ``shot(page, name)``: a full-page screenshot under ``test-output/ui/<name>.png``;
  ``shots(page, name)`` takes it at 1280 and at 390 px wide.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import _fresh_database, running_server
from tests.compat.support import DEV_ROOT_ALIAS, LiveServer
from tests.conftest import STORE_KINDS
from tests.web.test_pages import CHROMIUM, CHROMIUM_ARGS, _database

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output" / "ui"
UI_APP_SECRET = "ui-suite-app-secret-0123456789abcd"  # 32 bytes
DEV_EMAIL = "admin@dev.com"
DEV_PASSWORD = "devpw1234"
WIDE, NARROW = 1280, 390


def ui_server_fixture(extra_env: dict[str, str] | None = None) -> Callable[..., Iterator[LiveServer]]:
    """A module-scoped fixture: one server process per store kind for the module's tests."""

    @pytest.fixture(scope="module", params=STORE_KINDS)
    def ui_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
        kind: str = request.param
        module = request.module.__name__.rsplit(".", 1)[-1]
        pg_url = request.getfixturevalue("pg_url") if kind == "pg" else ""
        database_url = _fresh_database(pg_url, module) if pg_url else ""
        env = {"APP_SECRET": UI_APP_SECRET, **(extra_env or {})}
        try:
            with running_server(kind, tmp_path_factory.mktemp(f"{module}-{kind}"), database_url, env) as server:
                yield server
        finally:
            if pg_url:
                _database(pg_url, module, create=False)

    return ui_server


@pytest.fixture
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium, launched for one test."""
    if not CHROMIUM.is_file():
        message = f"{CHROMIUM} is missing: run `make test-deps` (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Any, server: LiveServer, width: int = WIDE) -> Any:
    """A page in a fresh context (no cookies) of ``browser``, relative URLs going to ``server``."""
    context = browser.new_context(base_url=server.url, viewport={"width": width, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    return tab


def sign_in_with_token(page: Any, pk: str, token: str) -> Any:
    """Fill and send the root-token form of ``/``; the response of the navigation."""
    page.goto("/")
    page.click("#token-login >> xpath=.. >> summary")
    page.fill("#login-pk", pk)
    page.fill("#login-token", token)
    with page.expect_navigation() as nav:
        page.click("#token-login button[type=submit]")
    return nav.value


def sign_in_with_password(page: Any, pk: str, email: str, password: str) -> Any:
    """Fill and send the admin email/password form of ``/``; the response of the navigation."""
    page.goto("/")
    page.fill("#admin-pk", pk)
    page.fill("#admin-email", email)
    page.fill("#admin-password", password)
    with page.expect_navigation() as nav:
        page.click("#admin-login button[type=submit]")
    return nav.value


def signed_in(browser: Any, server: LiveServer, how: str = "token", width: int = WIDE) -> Any:
    """A page signed in to the dev app as its admin (``how``: ``token`` with the dev root alias,
    or ``password`` with admin@dev.com), on ``/ui/accounts``."""
    page = new_page(browser, server, width)
    if how == "token":
        sign_in_with_token(page, server.pk, DEV_ROOT_ALIAS)
    else:
        sign_in_with_password(page, server.pk, DEV_EMAIL, DEV_PASSWORD)
    assert page.url == f"{server.url}/ui/accounts", page.content()
    return page


def csrf_of(page: Any) -> str:
    """The session's CSRF token, read from the sign-out form every admin page carries."""
    value: str = page.locator("form[action='/ui/logout'] input[name=csrf]").get_attribute("value")
    assert re.fullmatch(r"[A-Za-z0-9_-]{20,}", value), value
    return value


def shot(page: Any, name: str) -> Path:
    """A full-page screenshot at ``test-output/ui/<name>.png``."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000, path
    return path


def shots(page: Any, name: str) -> None:
    """The page at 1280 and at 390 px wide (``<name>-1280.png``, ``<name>-390.png``), then back.

    At both widths nothing may stick out sideways: the page is never wider than the window."""
    before = page.viewport_size
    for width in (WIDE, NARROW):
        page.set_viewport_size({"width": width, "height": 900})
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name} at {width} px is {overflow} px wider than the window"
        shot(page, f"{name}-{width}")
    page.set_viewport_size(before)
