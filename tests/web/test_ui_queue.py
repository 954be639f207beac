"""The function queue page of the admin UI (``/ui/queue``) in real Chromium, on every store.

A ``db_created`` function that throws on a given input is triggered by a client's write: its
failed run shows on the page (which refreshes itself by polling its sections) with the error;
the function is fixed through the API and Retry on the page runs it again with the same input,
as the same user: the document it makes is there, and the run is in the function's history.
A function that waits on a fetch to an endpoint the test holds shows as running while it waits,
and, the server holding at most one job (SB_FUNCTION_QUEUE_LIMIT=1), the next event's job shows
as pending until the first ends. Refusals: Retry without the CSRF token, another app's run, a run
whose input was not kept (shown disabled, with the reason). The page works without JavaScript;
its polls do not renew the session. Screenshots at 1280 and 390 px: test-output/ui/queue-*.png.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from sbserver.http.ui.session import open_session, seal_session
from tests.compat.support import DEV_ROOT_ALIAS, LiveServer, unique_email
from tests.web.ui_support import (
    UI_APP_SECRET,
    chromium,
    csrf_of,
    new_page,
    shots,
    sign_in_with_token,
    signed_in,
    ui_server_fixture,
)

__all__ = ["chromium"]

# One job held at a time: a second event's job waits in the store, unclaimed, while the first runs.
ui_server = ui_server_fixture({"SB_FETCH_ALLOW": "127.0.0.1", "SB_FETCH_TIMEOUT": "25", "SB_FUNCTION_QUEUE_LIMIT": "1"})
WAIT_S = 20.0
WAIT_MS = int(WAIT_S * 1000)


def _api(server: LiveServer, method: str, path: str, **kw: Any) -> Any:
    r = server.request(method, path, **{"token": DEV_ROOT_ALIAS, **kw})
    assert r.status_code in (200, 201), (method, path, r.status_code, r.text)
    return r.json() if r.content else None


def _add_fn(server: LiveServer, name: str, trigger: str, code: str, **kw: Any) -> str:
    _api(server, "POST", "/fn/add", json={"name": name, "trigger": trigger, "code": code}, **kw)
    fn_id: str = _api(server, "GET", f"/fn/info/{name}", **kw)["id"]
    return fn_id


def _history(server: LiveServer, name: str, **kw: Any) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = _api(server, "GET", f"/fn/info/{name}", **kw)["history"]
    return runs


def _runs(server: LiveServer, name: str, count: int, **kw: Any) -> list[dict[str, Any]]:
    """The function's history once it holds ``count`` runs (oldest first)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        runs = _history(server, name, **kw)
        if len(runs) >= count:
            return sorted(runs, key=lambda r: str(r["id"]))
        assert time.monotonic() < deadline, f"{name} has {len(runs)} runs, not {count}: {runs}"
        time.sleep(0.1)


def _run_with(server: LiveServer, name: str, text: str, **kw: Any) -> dict[str, Any]:
    """The function's run whose output holds ``text``, once it is in its history."""
    deadline = time.monotonic() + WAIT_S
    while True:
        runs = _history(server, name, **kw)
        found = [r for r in runs if any(text in line for line in r["output"])]
        if found:
            return found[-1]
        assert time.monotonic() < deadline, f"no run of {name} printed {text!r}: {runs}"
        time.sleep(0.1)


def _user(server: LiveServer) -> str:
    r = server.request("POST", "/register", json={"email": unique_email("uiq"), "password": "password123"})
    assert r.status_code == 200, r.text
    token: str = r.json()
    return token


def _failing(col: str, out: str) -> str:
    """A db_created function for ``col``: copies each document's ``n`` into ``out``, but throws
    on a document marked ``bad``."""
    return (
        "function handle(channel, type, doc) {\n"
        f'  if (channel !== "db-{col}") return;\n'
        '  if (doc.bad) { throw new Error("cannot take order " + doc.n); }\n'
        f'  var res = create("{out}", {{n: doc.n, from: doc.id}});\n'
        '  if (!res.ok) { throw new Error("create failed: " + res.content); }\n'
        '  log("copied " + doc.n);\n'
        "}\n"
    )


def _queue_empty(page: Any) -> None:
    """Reload /ui/queue until it shows no job pending or running."""
    deadline = time.monotonic() + WAIT_S
    while True:
        page.goto("/ui/queue")
        if page.locator("#no-pending").count() and page.locator("#no-running").count():
            return
        assert time.monotonic() < deadline, page.locator("#queue-sections").inner_text()
        page.wait_for_timeout(200)


def _submit(page: Any, selector: str) -> Any:
    with page.expect_navigation() as nav:
        page.click(selector)
    return nav.value


def test_failed_run_shows_and_retries_after_the_fix(ui_server: LiveServer, chromium: Any) -> None:
    tag = uuid.uuid4().hex[:6]
    name, col, out = f"q_orders_{tag}", f"qin_{tag}", f"qout_{tag}"
    _add_fn(ui_server, name, "db_created", _failing(col, out))
    page = signed_in(chromium, ui_server)
    page.goto("/ui/fn")
    _submit(page, "#fn-queue-link")  # the functions list links to the queue
    assert page.url.endswith("/ui/queue")
    assert page.locator("#queue-sections[hx-get='/ui/queue/sections']").count() == 1

    # a client's write triggers it; the page shows the failed run without a reload (it polls)
    token = _user(ui_server)
    r = ui_server.request("POST", f"/db/{col}", token=token, json={"n": 7, "bad": True})
    assert r.status_code == 201, r.text
    order = r.json()
    row = page.locator("#queue-failed tbody tr", has_text=name)
    row.wait_for(timeout=WAIT_MS)
    assert "cannot take order 7" in row.locator(".queue-error").inner_text()
    row.locator("summary").click()
    output = row.locator(".run-output").inner_text()
    assert "Function started" in output and "cannot take order 7" in output
    [failed] = _history(ui_server, name)
    assert failed["success"] is False
    assert row.get_attribute("id") == f"failed-{failed['id']}"
    assert row.locator("button[type=submit]", has_text="Retry").is_enabled()
    shots(page, "queue-failed")

    # fixed through the API (it no longer refuses bad orders), then Retry on the page
    fixed = _failing(col, out).replace("if (doc.bad)", "if (doc.bad && false)")
    fn = _api(ui_server, "GET", f"/fn/info/{name}")
    _api(ui_server, "POST", "/fn/update", json={"id": fn["id"], "name": name, "trigger": "db_created", "code": fixed})
    page.goto("/ui/queue")  # the page as it is now (its polls pause while the output is open)
    response = _submit(page, f"#failed-{failed['id']} button[type=submit]")
    assert response.status == 200 and page.url.endswith("/ui/queue")
    assert f"Retrying {name}" in page.locator("#flash").inner_text()
    shots(page, "queue-retried")

    # the run succeeds this time, with the same input and as the same user (the document it
    # makes is an event too: the function's run for it returns at once, and is in the history)
    again = _run_with(ui_server, name, "copied 7")
    assert again["success"] is True and again["version"] == 2, again
    assert [r["id"] for r in _history(ui_server, name) if not r["success"]] == [failed["id"]]
    made = _api(ui_server, "POST", f"/sudoquery/{out}", json=[["n", "==", 7]])
    assert made["total"] == 1, made
    assert made["results"][0]["from"] == order["id"]
    assert made["results"][0]["accountId"] == order["accountId"]  # run as the client, as the event was
    # the editor's history shows both runs
    page.goto(f"/ui/fn/{fn['id']}")
    assert page.locator(f"#run-{again['id']} .badge.ok").inner_text() == "Success"
    assert page.locator(f"#run-{failed['id']} .badge.failed").inner_text() == "Failed"
    page.context.close()


class Holder:
    """A local HTTP endpoint the functions fetch: ``GET /hold/<key>`` answers once the test
    releases that key, so a run lasts exactly as long as the test wants."""

    def __init__(self) -> None:
        self.arrived: dict[str, threading.Event] = {}
        self.released: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        holder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                key = self.path.rsplit("/", 1)[-1]
                holder.event(holder.arrived, key).set()
                holder.event(holder.released, key).wait(30)
                body = f"released {key}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def event(self, table: dict[str, threading.Event], key: str) -> threading.Event:
        with self._lock:
            return table.setdefault(key, threading.Event())

    def wait_arrival(self, key: str) -> None:
        assert self.event(self.arrived, key).wait(WAIT_S), f"no fetch of {key} arrived"

    def release(self, key: str) -> None:
        self.event(self.released, key).set()

    def close(self) -> None:
        for event in list(self.released.values()):
            event.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def holder() -> Iterator[Holder]:
    h = Holder()
    try:
        yield h
    finally:
        h.close()


def test_running_and_pending_jobs_show_while_they_run(ui_server: LiveServer, chromium: Any, holder: Holder) -> None:
    tag = uuid.uuid4().hex[:6]
    name, channel = f"q_slow_{tag}", f"slow-{tag}"
    code = (
        "function handle(channel, type, data) {\n"
        f'  var res = fetch("http://127.0.0.1:{holder.port}/hold/" + data.key);\n'
        '  if (!res.ok) { throw new Error("fetch failed: " + res.content); }\n'
        "  log(res.content.body);\n"
        "}\n"
    )
    fn_id = _add_fn(ui_server, name, channel, code)
    page = signed_in(chromium, ui_server)
    page.goto("/ui/queue")
    assert page.locator("#no-running").is_visible() and page.locator("#no-pending").is_visible()
    token = _user(ui_server)

    def publish(key: str) -> None:
        msg = {"channel": channel, "type": "chan_in", "data": json.dumps({"key": key})}
        r = ui_server.request("POST", "/publish", token=token, json=msg)
        assert r.status_code == 200, r.text

    # the first run waits on its fetch: running; the second event's job waits for room: pending
    publish("a")
    holder.wait_arrival("a")
    publish("b")
    running = page.locator("#queue-running tbody tr", has_text=name)
    pending = page.locator("#queue-pending tbody tr", has_text=name)
    running.wait_for(timeout=WAIT_MS)  # shown by the page's own polling
    pending.wait_for(timeout=WAIT_MS)
    assert running.count() == 1 and pending.count() == 1
    assert page.locator("#running-count").inner_text() == "1"
    assert page.locator("#pending-count").inner_text() == "1"
    assert running.locator("a").get_attribute("href") == f"/ui/fn/{fn_id}"
    assert running.locator("td").nth(4).inner_text() == "1 of 3"
    assert "not claimed yet" in pending.inner_text()
    shots(page, "queue-running")

    # the first ends: the second is claimed and runs
    holder.release("a")
    holder.wait_arrival("b")
    page.locator("#no-pending").wait_for(timeout=WAIT_MS)
    running.wait_for(timeout=WAIT_MS)
    holder.release("b")
    page.locator("#no-running").wait_for(timeout=WAIT_MS)
    runs = _runs(ui_server, name, 2)
    assert [r["success"] for r in runs] == [True, True]
    assert sorted(r["output"][1] for r in runs) == ["released a", "released b"]
    assert page.locator("#queue-failed tbody tr", has_text=name).count() == 0
    page.context.close()


def test_retry_refusals_and_the_page_without_javascript(ui_server: LiveServer, chromium: Any) -> None:
    tag = uuid.uuid4().hex[:6]
    name, col, out = f"q_refused_{tag}", f"qr_{tag}", f"qrout_{tag}"
    _add_fn(ui_server, name, "db_created", _failing(col, out))
    token = _user(ui_server)
    r = ui_server.request("POST", f"/db/{col}", token=token, json={"n": 1, "bad": True})
    assert r.status_code == 201, r.text
    [failed] = _runs(ui_server, name, 1)
    page = signed_in(chromium, ui_server)
    csrf = csrf_of(page)

    # without the CSRF token (or with another): 403, nothing queued
    for bad in ({}, {"csrf": "n" * 32}):
        r = page.request.post("/ui/queue/retry", form={"run": failed["id"], **bad}, max_redirects=0)
        assert r.status == 403 and "CSRF" in r.text(), r.status
    # unknown run: 404
    r = page.request.post("/ui/queue/retry", form={"run": str(uuid.uuid4()), "csrf": csrf}, max_redirects=0)
    assert r.status == 404 and "not found" in r.text()

    # another app's failed run: not found here, and not run again there
    other = ui_server.new_app(unique_email("uiq"))
    theirs = {"pk": other["pk"], "token": other["rootToken"]}
    _add_fn(ui_server, "theirs", "db_created", _failing("theirs_in", "theirs_out"), **theirs)
    _api(ui_server, "POST", "/sudo/theirs_in", json={"n": 2, "bad": True}, **theirs)
    [their_run] = _runs(ui_server, "theirs", 1, **theirs)
    assert their_run["success"] is False
    r = page.request.post("/ui/queue/retry", form={"run": their_run["id"], "csrf": csrf}, max_redirects=0)
    assert r.status == 404 and "not found in this app" in r.text()
    page.goto("/ui/queue")
    assert page.locator(f"#failed-{their_run['id']}").count() == 0
    # their next event's run is their second: the refused retry queued nothing before it
    _api(ui_server, "POST", "/sudo/theirs_in", json={"n": 3, "bad": True}, **theirs)
    _run_with(ui_server, "theirs", "cannot take order 3", **theirs)
    assert len(_history(ui_server, "theirs", **theirs)) == 2

    # a run whose input was not kept (a web call's): Retry is disabled, with the reason
    web = f"q_web_{tag}"
    _add_fn(ui_server, web, "web", 'function handle(body) { throw new Error("web call failed"); }')
    assert ui_server.request("POST", f"/fn/exec/{web}", token=token, json={}).status_code == 500
    [web_run] = _runs(ui_server, web, 1)
    page.goto("/ui/queue")
    row = page.locator(f"#failed-{web_run['id']}")
    assert "web call failed" in row.locator(".queue-error").inner_text()
    assert row.locator("button", has_text="Retry").is_disabled()
    why = row.locator(f"#why-{web_run['id']}").inner_text()
    assert "input was not kept" in why
    r = page.request.post("/ui/queue/retry", form={"run": web_run["id"], "csrf": csrf}, max_redirects=0)
    assert r.status == 400 and "cannot be retried" in r.text()
    shots(page, "queue-not-kept")

    # without JavaScript the page is whole, and its Retry works: the run is the function's second,
    # so neither refused attempt above queued one
    plain_context = chromium.new_context(base_url=ui_server.url, java_script_enabled=False)
    plain = plain_context.new_page()
    plain.set_default_timeout(15_000)
    sign_in_with_token(plain, ui_server.pk, DEV_ROOT_ALIAS)
    plain.goto("/ui/queue")
    assert plain.locator("#queue-pending, #queue-running, #queue-failed").count() == 3
    response = _submit(plain, f"#failed-{failed['id']} button[type=submit]")
    assert response.status == 200 and f"Retrying {name}" in plain.locator("#flash").inner_text()
    again = _runs(ui_server, name, 2)[1]
    assert again["success"] is False and "cannot take order 1" in again["output"][-1]  # not fixed: fails again
    _queue_empty(plain)  # every job of the app has run and recorded its run
    assert len(_history(ui_server, name)) == 2
    plain_context.close()
    page.context.close()


def test_polls_do_not_renew_the_session_and_signed_out_goes_to_sign_in(ui_server: LiveServer, chromium: Any) -> None:
    page = signed_in(chromium, ui_server)
    secret = UI_APP_SECRET.encode()
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    session = open_session(secret, cookies["token"])
    assert session is not None
    stale = seal_session(secret, dataclasses.replace(session, seen=time.time() - 120))
    jar = {"pk": cookies["pk"], "token": stale}
    polled = httpx.get(ui_server.url + "/ui/queue/sections", cookies=jar, headers={"HX-Request": "true"})
    assert polled.status_code == 200 and 'id="queue-sections"' in polled.text
    assert "<html" not in polled.text  # the sections alone
    assert "token=" not in polled.headers.get("set-cookie", ""), "a poll renewed the session"
    opened = httpx.get(ui_server.url + "/ui/queue", cookies=jar)
    assert opened.status_code == 200 and "token=" in opened.headers.get("set-cookie", ""), "a visit renews it"
    page.context.close()

    for method, path in [("GET", "/ui/queue"), ("GET", "/ui/queue/sections"), ("POST", "/ui/queue/retry")]:
        r = httpx.request(method, ui_server.url + path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/", (method, path)
    # a poll of a page whose session ended: htmx is told to load the sign-in page as a whole
    r = httpx.get(ui_server.url + "/ui/queue/sections", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.status_code == 200 and r.headers["HX-Redirect"] == "/"


def test_screens_when_empty(ui_server: LiveServer, chromium: Any) -> None:
    page = new_page(chromium, ui_server, 1280)
    sign_in_with_token(page, ui_server.pk, DEV_ROOT_ALIAS)
    other = ui_server.new_app(unique_email("uiqempty"))
    page.context.clear_cookies()
    sign_in_with_token(page, other["pk"], other["rootToken"])
    page.goto("/ui/queue")
    assert page.locator("#no-pending, #no-running, #no-failed").count() == 3
    shots(page, "queue-empty")
    page.context.close()
