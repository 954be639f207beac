"""The functions pages of the admin UI (spec 08 §2, ``/ui/fn``) in real Chromium, on every store.

The founding tutorial's ``new_msg`` (examples/chat/fn.js, trigger ``chan_out``) is added in the
editor and triggered by a client's message through ``/publish``: its run shows up in the history
with its output lines, and the message is stored in ``msgs_774_``. A ``web`` function runs from
"Run now" with a JSON body and from a client through ``/fn/exec``; saving again makes version 2;
deleting asks first. Refusals: bad code (the editor keeps the typed code), a bad run body, a form
without the CSRF token, another app's function. Screenshots at 1280 and 390 px: test-output/ui/.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.compat.support import DEV_ROOT_ALIAS, LiveServer, unique_email
from tests.web.ui_support import chromium, csrf_of, shots, signed_in, ui_server_fixture

__all__ = ["chromium"]

ui_server = ui_server_fixture()
TUTORIAL_FN = (Path(__file__).resolve().parents[2] / "examples" / "chat" / "fn.js").read_text()
WAIT_S = 20.0


def _info(server: LiveServer, name: str) -> dict[str, Any]:
    r = server.request("GET", f"/fn/info/{name}", token=DEV_ROOT_ALIAS)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _user_token(server: LiveServer) -> str:
    r = server.request("POST", "/register", json={"email": unique_email("uifn"), "password": "password123"})
    assert r.status_code == 200, r.text
    token: str = r.json()
    return token


def _submit(page: Any, selector: str) -> Any:
    with page.expect_navigation() as nav:
        page.click(selector)
    return nav.value


def _create(page: Any, name: str, trigger: str, code: str) -> str:
    """Create a function in the editor; its id (from the editor's address)."""
    page.goto("/ui/fn/new")
    page.fill("input[name=name]", name)
    page.fill("input[name=trigger]", trigger)
    page.fill("#fn-code", code)
    response = _submit(page, "#fn-form button[type=submit]")
    assert response.status == 200, page.content()
    fn_id: str = page.url.split("/ui/fn/", 1)[1].split("?", 1)[0]
    assert fn_id and fn_id != "new"
    return fn_id


def _history_shows(page: Any, text: str) -> Any:
    """Reload the editor until a run whose output holds ``text`` is in the history."""
    deadline = time.monotonic() + WAIT_S
    while True:
        rows = page.locator(".fn-runs tbody tr", has_text=text)
        if rows.count():
            return rows.first
        assert time.monotonic() < deadline, f"no run with {text!r} in the history:\n{page.content()}"
        page.wait_for_timeout(200)
        page.reload()


def test_tutorial_function_runs_for_a_client_message(ui_server: LiveServer, chromium: Any) -> None:
    page = signed_in(chromium, ui_server)
    name = "new_msg"
    fn_id = _create(page, name, "chan_out", TUTORIAL_FN)
    assert page.locator("input[name=name]").get_attribute("readonly") is not None  # read-only once created
    assert page.locator("#fn-version").inner_text() == "version 1"
    assert page.locator("#fn-no-runs").is_visible()
    info = _info(ui_server, name)
    assert (info["id"], info["trigger"], info["code"], info["version"]) == (fn_id, "chan_out", TUTORIAL_FN, 1)

    # the editor: a line per line of code in the gutter, highlighted code under the textarea
    assert page.locator(".code-editor.is-enhanced").count() == 1
    gutter = page.locator(".code-gutter").inner_text().split()
    assert gutter[-1] == str(TUTORIAL_FN.count("\n") + 1)
    assert page.locator(".code-highlight .tok-keyword", has_text="function").count() >= 1
    assert page.locator(".code-highlight .tok-string", has_text='"msgs_774_"').count() == 1
    shots(page, "fn-editor")

    # a client's chat message triggers it; the run shows with its output lines
    token = _user_token(ui_server)
    body = f"hello from the UI test {uuid.uuid4().hex[:6]}"
    msg = {"channel": "lobby", "type": "chan_in", "data": json.dumps({"body": body, "from": "ui"})}
    r = ui_server.request("POST", "/publish", token=token, json=msg)
    assert r.status_code == 200, r.text
    row = _history_shows(page, "success")
    assert row.locator(".badge.ok").inner_text() == "Success"
    row.locator("summary").click()
    output = row.locator(".run-output").inner_text()
    assert "DEBUG: inside ssf" in output and "success" in output
    stored = ui_server.request("POST", "/sudoquery/msgs_774_", token=DEV_ROOT_ALIAS, json=[["body", "==", body]])
    assert stored.status_code == 200 and stored.json()["total"] == 1, stored.text
    shots(page, "fn-history")

    # the list shows it, with its last run
    page.goto("/ui/fn")
    row = page.locator(".fn-table tbody tr", has_text=name)
    assert row.locator("td").nth(1).inner_text() == "1"
    assert row.locator("td").nth(2).inner_text() == "chan_out"
    assert row.locator("td").nth(3).inner_text() != "never"
    shots(page, "fn-list")
    page.context.close()


def test_web_function_run_now_exec_versions_and_delete(ui_server: LiveServer, chromium: Any) -> None:
    page = signed_in(chromium, ui_server)
    name = f"ui_echo_{uuid.uuid4().hex[:6]}"
    code = 'function handle(body, qs, headers) {\n  log("got " + body.n);\n}\n'
    fn_id = _create(page, name, "web", code)

    # Run now with a JSON body: back on the editor with that run opened
    page.fill("textarea[name=body]", '{"n": 7}')
    response = _submit(page, "form[action='/ui/fn/run'] button[type=submit]")
    assert response.status == 200 and "run=" in page.url
    current = page.locator(".fn-runs tr.run-current")
    assert current.locator(".badge").inner_text() == "Success"
    assert current.locator("details").get_attribute("open") is not None
    assert "got 7" in current.locator(".run-output").inner_text()
    shots(page, "fn-run-now")

    # a client runs it through /fn/exec; the run is in the history
    token = _user_token(ui_server)
    r = ui_server.request("POST", f"/fn/exec/{name}", token=token, json={"n": 8})
    assert r.status_code == 200, r.text
    _history_shows(page, "got 8")

    # a run that fails is recorded as Failed, with the reason
    page.fill("textarea[name=body]", "null")
    _submit(page, "form[action='/ui/fn/run'] button[type=submit]")
    failed = page.locator(".fn-runs tr.run-current")
    assert failed.locator(".badge").inner_text() == "Failed"
    assert "null" in failed.locator(".run-output").inner_text()

    # saving again makes version 2 (the name stays as it was)
    page.fill("#fn-code", code.replace("got ", "now "))
    page.locator("input[name=trigger]").focus()
    response = _submit(page, "#fn-form button[type=submit]")
    assert response.status == 200 and page.url.endswith(f"/ui/fn/{fn_id}")
    assert page.locator("#fn-version").inner_text() == "version 2"
    info = _info(ui_server, name)
    assert info["version"] == 2 and "now " in info["code"]
    # Ctrl+S saves too, from the keyboard
    page.locator("#fn-code").focus()
    with page.expect_navigation():
        page.keyboard.press("Control+s")
    assert page.locator("#fn-version").inner_text() == "version 3"
    page.fill("textarea[name=body]", '{"n": 9}')
    _submit(page, "form[action='/ui/fn/run'] button[type=submit]")
    current = page.locator(".fn-runs tr.run-current")
    assert current.locator("td").first.inner_text() == "3" and "now 9" in current.inner_text()

    # refusals: bad code keeps what was typed; a bad run body says why
    broken = "function handle( {"
    page.fill("#fn-code", broken)
    response = _submit(page, "#fn-form button[type=submit]")
    assert response.status == 400
    assert "invalid function code" in page.locator("#fn-error").inner_text()
    assert page.locator("#fn-code").input_value() == broken
    assert _info(ui_server, name)["version"] == 3
    shots(page, "fn-bad-code")
    page.goto(f"/ui/fn/{fn_id}")
    page.fill("textarea[name=body]", "{nope")
    response = _submit(page, "form[action='/ui/fn/run'] button[type=submit]")
    assert response.status == 400 and "invalid run body" in page.locator("#fn-run-error").inner_text()

    # delete asks first, by name
    page.goto("/ui/fn")
    _submit(page, f"a[aria-label='delete {name}']")
    assert page.url.endswith(f"/ui/fn/del/{name}")
    assert _info(ui_server, name)["version"] == 3  # still there while asked
    shots(page, "fn-delete")
    response = _submit(page, "main form button.danger")
    assert response.status == 200 and page.url.endswith("/ui/fn")
    assert ui_server.request("GET", f"/fn/info/{name}", token=DEV_ROOT_ALIAS).status_code == 404
    assert page.locator(".fn-table tbody tr", has_text=name).count() == 0
    page.context.close()


def test_new_function_refusals_csrf_and_other_apps(ui_server: LiveServer, chromium: Any) -> None:
    page = signed_in(chromium, ui_server)
    page.goto("/ui/fn/new")
    shots(page, "fn-new")
    csrf = csrf_of(page)
    name = f"ui_csrf_{uuid.uuid4().hex[:6]}"
    form = {"id": "new", "name": name, "trigger": "web", "code": "function handle() {}"}
    for bad in ({}, {"csrf": "y" * 32}):
        r = page.request.post("/ui/fn/save", form={**form, **bad}, max_redirects=0)
        assert r.status == 403 and "CSRF" in r.text()
    assert ui_server.request("GET", f"/fn/info/{name}", token=DEV_ROOT_ALIAS).status_code == 404
    # a bad name: the editor again, with the reason
    page.fill("input[name=name]", "no spaces allowed")
    page.locator("input[name=name]").evaluate("e => e.removeAttribute('pattern')")
    page.fill("input[name=trigger]", "web")
    response = _submit(page, "#fn-form button[type=submit]")
    assert response.status == 400 and "invalid function name" in page.locator("#fn-error").inner_text()

    # another app's function: unknown here, for every page and form
    other = ui_server.new_app(unique_email("uifn"))
    added = ui_server.request(
        "POST",
        "/fn/add",
        pk=other["pk"],
        token=other["rootToken"],
        json={"name": "theirs", "trigger": "web", "code": "function handle() {}"},
    )
    assert added.status_code == 200, added.text
    theirs = ui_server.request("GET", "/fn/info/theirs", pk=other["pk"], token=other["rootToken"]).json()["id"]
    response = page.goto(f"/ui/fn/{theirs}")
    assert response is not None and response.status == 404
    assert "not found" in page.locator("[role=alert]").inner_text()
    shots(page, "fn-not-found")
    for path, data in [
        ("/ui/fn/save", {"id": theirs, "name": "theirs", "trigger": "web", "code": "function handle() { log(1); }"}),
        ("/ui/fn/run", {"id": theirs, "body": "{}"}),
        ("/ui/fn/del/theirs", {}),
    ]:
        r = page.request.post(path, form={**data, "csrf": csrf}, max_redirects=0)
        assert r.status == 404, (path, r.status)
    info = ui_server.request("GET", "/fn/info/theirs", pk=other["pk"], token=other["rootToken"]).json()
    assert info["version"] == 1 and info["history"] == []
    page.context.close()


def test_signed_out_pages_go_to_sign_in(ui_server: LiveServer) -> None:
    for method, path in [
        ("GET", "/ui/fn"),
        ("GET", "/ui/fn/new"),
        ("GET", "/ui/fn/x"),
        ("POST", "/ui/fn/save"),
        ("POST", "/ui/fn/run"),
        ("GET", "/ui/fn/del/x"),
    ]:
        r = httpx.request(method, ui_server.url + path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/", (method, path)
