"""The accounts pages, the OAuth keys page, my account and the dashboard, in Chromium on every store.

What the pages show is checked against the API: a user registered with ``/register`` appears in
``/ui/accounts`` and its users page; provider keys saved with the form are listed by
``GET /account/oauth`` (never the secret); another app's account id is a 404 page; the dashboard's
counts and its run chart follow what the API did (a function called through ``/fn/exec``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.compat.support import DEV_ROOT_ALIAS, LiveServer, unique_email
from tests.web.ui_support import chromium, csrf_of, shots, signed_in, ui_server_fixture

__all__ = ["chromium"]  # a fixture

ui_server = ui_server_fixture()


def _submit(page: Any, selector: str) -> Any:
    with page.expect_navigation() as nav:
        page.click(selector)
    return nav.value


def _register(server: LiveServer, email: str, pk: str | None = None) -> str:
    r = server.request("POST", "/register", pk=pk, json={"email": email, "password": "ui-accounts-pw"})
    assert r.status_code == 200, r.text
    me = server.request("GET", "/me", pk=pk, token=r.json())
    assert me.status_code == 200, me.text
    account_id: str = me.json()["accountId"]
    return account_id


def test_accounts_list_a_user_registered_through_the_api(chromium: Any, ui_server: LiveServer) -> None:
    email = unique_email("ui-listed")
    account_id = _register(ui_server, email)
    page = signed_in(chromium, ui_server)
    page.goto("/ui/accounts")
    row = page.locator("tbody tr", has_text=email.lower())
    assert row.count() == 1, page.inner_text("table")
    assert account_id in row.inner_text()
    page.click(f"a[href='/ui/users/{account_id}']")
    assert page.url == f"{ui_server.url}/ui/users/{account_id}"
    assert page.inner_text("h1") == "Users of this account"
    cells = page.locator("tbody tr td").all_inner_texts()
    assert email.lower() in cells and "50" in cells, cells
    assert page.locator("nav a[aria-current=page]").inner_text() == "Accounts"
    shots(page, "users")


def test_another_apps_account_is_not_found(chromium: Any, ui_server: LiveServer) -> None:
    other = ui_server.new_app(unique_email("ui-other-tenant"))
    foreign = _register(ui_server, unique_email("ui-foreign"), pk=other["pk"])
    page = signed_in(chromium, ui_server)
    for account_id in (foreign, str(uuid.uuid4()), "x" * 300, "not-an-id"):
        response = page.goto(f"/ui/users/{account_id}")
        assert response.status == 404, account_id
        assert page.inner_text(".reason") == "this app has no account with this id"
        assert "ui-foreign" not in page.content()
    assert page.title() == "Error 404 · sbserver"
    assert "Traceback" not in page.content()
    shots(page, "not-found")
    page.goto("/ui/accounts")
    assert foreign not in page.content()


def test_oauth_keys_saved_in_the_page_are_served_by_the_api(chromium: Any, ui_server: LiveServer) -> None:
    page = signed_in(chromium, ui_server)
    page.click("text=Sign-in providers (OAuth)")
    assert page.url == f"{ui_server.url}/ui/logins"
    shots(page, "logins")
    client_id, secret = f"ui-client-{uuid.uuid4().hex[:8]}", f"ui-secret-{uuid.uuid4().hex}"
    page.select_option("#provider", "google")
    page.fill("#apikey", client_id)
    page.fill("#apisecret", secret)
    response = _submit(page, "form[action='/ui/enable-login'] button[type=submit]")
    assert (response.request.method, response.status) == ("POST", 200)
    assert page.inner_text(".flash") == "OAuth provider successfully added"
    row = page.locator("tbody tr", has_text="google")
    assert client_id in row.inner_text() and "stored (hidden)" in row.inner_text()
    assert secret not in page.content()
    shots(page, "logins-saved")

    r = ui_server.request("GET", "/account/oauth", token=DEV_ROOT_ALIAS)
    assert r.status_code == 200, r.text
    google = [c for c in r.json() if c["provider"] == "google"]
    assert len(google) == 1 and google[0]["clientId"] == client_id and google[0]["hasSecret"] is True, r.json()
    assert secret not in r.text

    # an empty secret keeps the stored one; a missing client id is refused with the reason
    page.fill("#apikey", client_id + "-2")
    _submit(page, "form[action='/ui/enable-login'] button[type=submit]")
    assert page.inner_text(".flash") == "OAuth provider successfully added"
    r = page.request.post(
        f"{ui_server.url}/ui/enable-login",
        form={"csrf": csrf_of(page), "provider": "google", "apikey": "", "apisecret": "x"},
    )
    assert r.status == 400 and "missing clientId" in r.text()
    r = page.request.post(
        f"{ui_server.url}/ui/enable-login",
        form={"csrf": csrf_of(page), "provider": "myspace", "apikey": "a", "apisecret": "b"},
    )
    assert r.status == 400 and "invalid auth provider" in r.text()
    google = [
        c for c in ui_server.request("GET", "/account/oauth", token=DEV_ROOT_ALIAS).json() if c["provider"] == "google"
    ]
    assert google[0]["clientId"] == client_id + "-2" and google[0]["hasSecret"] is True


def test_my_account_shows_the_app_and_says_there_is_no_billing(chromium: Any, ui_server: LiveServer) -> None:
    page = signed_in(chromium, ui_server)
    page.click("nav >> text=My account")
    assert page.url in (f"{ui_server.url}/ui/my-account", f"{ui_server.url}/ui/my-account/")
    text = page.inner_text("main")
    assert ui_server.pk in text and "admin@dev.com" in text and "no billing" in text
    r = page.request.post(f"{ui_server.url}/ui/my-account/", form={"csrf": csrf_of(page)})
    assert r.status == 200 and "Billing is not part of this server" in r.text()
    shots(page, "my-account")


def test_dashboard_counts_and_runs_follow_the_api(chromium: Any, ui_server: LiveServer) -> None:
    page = signed_in(chromium, ui_server)
    page.goto("/ui")

    def count(name: str) -> int:
        return int(page.inner_text(f"#count-{name}"))

    before = {name: count(name) for name in ("documents", "users", "functions")}
    runs_before = int(page.inner_text("#runs-summary strong >> nth=0"))

    _register(ui_server, unique_email("ui-dash"))
    r = ui_server.request("POST", "/sudo/uidash_774_", token=DEV_ROOT_ALIAS, json={"n": 1})
    assert r.status_code == 201, r.text
    name = f"uidash{uuid.uuid4().hex[:8]}"
    code = 'function handle(body) { if (body.fail) { throw new Error("asked to fail"); } log("ok"); }'
    r = ui_server.request("POST", "/fn/add", token=DEV_ROOT_ALIAS, json={"name": name, "trigger": "web", "code": code})
    assert r.status_code == 200, r.text
    for body in ({}, {"fail": True}):
        ui_server.request("POST", f"/fn/sudoexec/{name}", token=DEV_ROOT_ALIAS, json=body)

    # runs are recorded just after they answer: reload until both show (or the deadline)
    deadline = time.monotonic() + 15
    while True:
        page.reload()
        summary = [int(n) for n in page.locator("#runs-summary strong").all_inner_texts()]
        if (summary[0] >= runs_before + 2 and summary[1] >= 1) or time.monotonic() > deadline:
            break
        page.wait_for_timeout(200)
    assert summary[0] >= runs_before + 2 and summary[1] >= 1, summary
    after = {name: count(name) for name in ("documents", "users", "functions")}
    assert after == {k: v + 1 for k, v in before.items()}, (before, after)
    assert page.locator("svg.chart g.bar").count() == 24
    assert page.locator("svg.chart rect.fail").count() >= 1
    shots(page, "dashboard")
