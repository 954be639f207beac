"""The scheduled tasks pages of the admin UI (spec 08 §2, ``/ui/tasks``) in real Chromium, on every store.

A function that stores a document is added through the API; a task calling it is created in the
form, run with "Run now" (its run in the history, its document read back through the API), edited,
refused with a bad cron expression and deleted after confirmation. A task ``@every 1s`` made in
the form runs by itself; disabled, it stops (proven against another task's later runs), enabled
again, it runs again. Refusals: bad interval, unknown function, bad meta, forms without the CSRF
token, another app's task. A server whose scheduler runs elsewhere (PRIMARY_INSTANCE_HOSTNAME)
still stores, lists and runs tasks now. Screenshots at 1280 and 390 px: test-output/ui/task-*.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.conftest import _fresh_database, running_server
from tests.compat.support import DEV_ROOT_ALIAS, LiveServer, unique_email
from tests.conftest import STORE_KINDS
from tests.web.test_pages import _database
from tests.web.ui_support import UI_APP_SECRET, chromium, csrf_of, shots, signed_in, ui_server_fixture

__all__ = ["chromium"]

ui_server = ui_server_fixture()
WAIT_S = 20.0
ZERO_TIME = "0001-01-01T00:00:00Z"
MARKS = "uitask_marks"
# Stores one document per run in ``uitask_marks``: the task's name and ``data.n``.
MARK_FN = """function handle(channel, type, data) {
  var res = create("uitask_marks", {task: channel, n: data ? data.n : 0});
  log("marked " + channel + " " + JSON.stringify(res.ok));
}"""


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def _api(server: LiveServer, method: str, path: str, **kwargs: Any) -> Any:
    r = server.request(method, path, token=DEV_ROOT_ALIAS, **kwargs)
    assert r.status_code == 200, (method, path, r.status_code, r.text)
    return r.json() if r.content else None


def _add_function(server: LiveServer) -> str:
    name = unique("uitask_fn_")
    _api(server, "POST", "/fn/add", json={"name": name, "trigger": "web", "code": MARK_FN})
    return name


def _task_named(server: LiveServer, name: str) -> dict[str, Any] | None:
    found = [t for t in _api(server, "GET", "/task") if t["name"] == name]
    assert len(found) <= 1, found
    return found[0] if found else None


def _runs(server: LiveServer, task_id: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = _api(server, "GET", f"/task/{task_id}/runs")
    return runs


def _marks(server: LiveServer, task: str, n: int | None = None) -> int:
    clauses: list[list[Any]] = [["task", "==", task]]
    if n is not None:
        clauses.append(["n", "==", n])
    r = server.request("POST", f"/sudoquery/{MARKS}", token=DEV_ROOT_ALIAS, json=clauses)
    if r.status_code == 404:  # the collection does not exist yet
        return 0
    assert r.status_code == 200, r.text
    total: int = r.json()["total"]
    return total


def _due(run: dict[str, Any]) -> float:
    return datetime.fromisoformat(run["due"].replace("Z", "+00:00")).timestamp()


def _submit(page: Any, selector: str) -> Any:
    with page.expect_navigation() as nav:
        page.click(selector)
    return nav.value


def _fill(page: Any, name: str, kind: str, value: str, interval: str, meta: str) -> None:
    page.fill("#task-name", name)
    page.select_option("#task-type", kind)
    page.fill("#task-value", value)
    page.fill("#task-interval", interval)
    page.fill("#task-meta", meta)


def _create(page: Any, server: LiveServer, name: str, fn: str, interval: str, n: int) -> str:
    """Create a function task in the form; its id (read back through the API)."""
    page.goto("/ui/tasks/new")
    _fill(page, name, "function", fn, interval, json.dumps({"data": json.dumps({"n": n})}))
    response = _submit(page, "#task-form button[type=submit]")
    assert response.status == 200 and page.url == f"{server.url}/ui/tasks", page.content()
    assert f"Task {name} created" in page.locator("#flash .flash").inner_text()
    task = _task_named(server, name)
    assert task is not None
    task_id: str = task["id"]
    return task_id


def _wait(what: str, check: Any) -> Any:
    """Poll ``check()`` until it returns something true (every 200 ms, up to WAIT_S)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_create_run_now_edit_and_delete(ui_server: LiveServer, chromium: Any) -> None:
    page = signed_in(chromium, ui_server)
    fn = _add_function(ui_server)
    name = unique("nightly-")
    page.goto("/ui/tasks/new")
    assert page.locator("#task-interval").get_attribute("placeholder") == "30 6 * * *"
    assert "-http-response" in page.locator("#task-meta-help").inner_text()
    assert page.locator("#task-type option").all_inner_texts() == ["function", "message", "http"]
    assert page.locator("#scheduler-elsewhere").count() == 0  # this server runs the scheduler
    shots(page, "task-new")

    # created in the form: listed with its next run computed from the cron expression, never run
    task_id = _create(page, ui_server, name, fn, "0 0 1 1 *", 5)
    row = page.locator(".task-table tbody tr", has_text=name)
    cells = row.locator("td").all_inner_texts()
    year = time.gmtime().tm_year + 1
    assert cells == [name, "function", fn, "0 0 1 1 *", "enabled", f"{year}-01-01 00:00:00", "never"], cells
    task = _api(ui_server, "GET", f"/task/{task_id}")
    assert (task["type"], task["value"], task["interval"], task["enabled"]) == ("function", fn, "0 0 1 1 *", True)
    assert json.loads(json.loads(task["meta"])["data"]) == {"n": 5} and task["last"] == ZERO_TIME
    shots(page, "task-list")

    # its page: the form filled in, no runs yet
    _submit(page, f".task-table a:text-is('{name}')")
    assert page.url == f"{ui_server.url}/ui/tasks/{task_id}"
    assert page.locator("#task-name").input_value() == name
    assert page.locator("#task-interval").input_value() == "0 0 1 1 *"
    assert page.locator("#task-no-runs").is_visible()
    assert page.locator("#task-last").inner_text() == "never"
    shots(page, "task-edit")

    # Run now: back on the page with that run opened; the function stored its document
    response = _submit(page, "#task-run")
    assert response.status == 200 and "run=" in page.url
    current = page.locator(".task-runs tr.run-current")
    assert current.locator(".badge").inner_text() == "Success"
    assert current.locator("details").get_attribute("open") is not None
    assert f"marked {name} true" in current.locator(".run-output").inner_text()
    assert _marks(ui_server, name, 5) == 1
    runs = _runs(ui_server, task_id)
    assert [r["outcome"] for r in runs] == ["success"]
    assert _api(ui_server, "GET", f"/task/{task_id}")["last"] != ZERO_TIME
    assert page.locator("#task-last").inner_text() != "never"
    shots(page, "task-run-now")

    # edit: a new interval and data, saved through the service; the next Run now uses them
    page.fill("#task-interval", "15 3 * * 1")
    page.fill("#task-meta", json.dumps({"data": json.dumps({"n": 6})}))
    response = _submit(page, "#task-form button[type=submit]")
    assert response.status == 200 and page.url == f"{ui_server.url}/ui/tasks/{task_id}"
    assert f"Task {name} saved" in page.locator("#flash .flash").inner_text()
    task = _api(ui_server, "GET", f"/task/{task_id}")
    assert task["interval"] == "15 3 * * 1" and json.loads(json.loads(task["meta"])["data"]) == {"n": 6}
    assert page.locator(".task-runs tbody tr").count() == 1
    _submit(page, "#task-run")
    assert page.locator(".task-runs tbody tr").count() == 2
    assert _marks(ui_server, name, 6) == 1

    # a bad cron expression: the form again, with the reason and what was typed; nothing saved
    page.fill("#task-interval", "61 * * * *")
    response = _submit(page, "#task-form button[type=submit]")
    assert response.status == 400
    assert "invalid interval" in page.locator("#task-error").inner_text()
    assert "minute" in page.locator("#task-error").inner_text()
    assert page.locator("#task-interval").input_value() == "61 * * * *"
    assert _api(ui_server, "GET", f"/task/{task_id}")["interval"] == "15 3 * * 1"
    shots(page, "task-bad-cron")

    # delete asks first
    page.goto(f"/ui/tasks/{task_id}")
    _submit(page, "a.danger-link:text-is('Delete')")
    assert page.url == f"{ui_server.url}/ui/tasks/del/{task_id}"
    assert name in page.locator("main").inner_text()
    assert _task_named(ui_server, name) is not None  # still there while asked
    shots(page, "task-delete")
    response = _submit(page, "main form button.danger")
    assert response.status == 200 and page.url == f"{ui_server.url}/ui/tasks"
    assert f"Task {name} deleted" in page.locator("#flash .flash").inner_text()
    assert page.locator(".task-table tbody tr", has_text=name).count() == 0
    assert _task_named(ui_server, name) is None
    assert ui_server.request("GET", f"/task/{task_id}", token=DEV_ROOT_ALIAS).status_code == 404
    page.context.close()


def test_every_second_runs_stops_when_disabled_and_resumes(ui_server: LiveServer, chromium: Any) -> None:
    page = signed_in(chromium, ui_server)
    fn = _add_function(ui_server)
    name = unique("often-")
    task_id = _create(page, ui_server, name, fn, "@every 1s", 1)

    # it runs by itself: the run shows in its history, its document through the API
    page.goto(f"/ui/tasks/{task_id}")

    def ran() -> bool:
        page.reload()
        return page.locator(".task-runs tbody tr .badge.ok").count() > 0

    _wait("the task's first run in its history", ran)
    assert f"marked {name} true" in page.locator(".task-runs .run-output").first.text_content()
    assert _marks(ui_server, name, 1) >= 1
    page.goto("/ui/tasks")
    assert page.locator(".task-table tbody tr", has_text=name).locator(".task-last").inner_text() != "never"

    # disabled: the page and the API say so, Run now is off
    page.goto(f"/ui/tasks/{task_id}")
    response = _submit(page, "#task-toggle")
    off_at = time.time()
    assert response.status == 200 and page.url == f"{ui_server.url}/ui/tasks/{task_id}"
    assert "disabled" in page.locator("#task-state").inner_text()
    assert page.locator("#task-toggle").inner_text() == "Enable"
    assert page.locator("#task-run").is_disabled()
    assert page.locator("#task-next").inner_text() == "—"
    assert _api(ui_server, "GET", f"/task/{task_id}")["enabled"] is False
    shots(page, "task-disabled")
    page.goto("/ui/tasks")
    row = page.locator(".task-table tbody tr", has_text=name)
    assert row.locator(".badge").inner_text() == "disabled" and row.locator(".task-next").inner_text() == "—"

    # the marker: another task, made after the switch, runs twice past it; the disabled one
    # has no run due after it (a run claimed before the switch is due before it)
    marker = _api(
        ui_server,
        "POST",
        "/task",
        json={"name": unique("marker-"), "type": "function", "value": fn, "interval": "@every 1s"},
    )
    _wait(
        "the marker task's runs after the switch",
        lambda: len([r for r in _runs(ui_server, marker["id"]) if _due(r) > off_at + 1]) >= 2,
    )
    late = [r for r in _runs(ui_server, task_id) if _due(r) >= off_at]
    assert late == [], late

    # enabled again: it runs again
    response = _submit(page, f".task-table a:text-is('{name}')")
    _submit(page, "#task-toggle")
    on_at = time.time()
    assert "enabled" in page.locator("#task-state").inner_text()
    assert _api(ui_server, "GET", f"/task/{task_id}")["enabled"] is True
    _wait("a run after enabling", lambda: [r for r in _runs(ui_server, task_id) if _due(r) > on_at])

    for tid in (task_id, marker["id"]):
        _api(ui_server, "DELETE", f"/task/{tid}")
    page.context.close()


def test_refusals_csrf_and_other_apps(ui_server: LiveServer, chromium: Any) -> None:
    page = signed_in(chromium, ui_server)
    fn = _add_function(ui_server)
    name = unique("refused-")
    page.goto("/ui/tasks/new")
    for interval, value, meta, reason in [
        ("not a cron", fn, "", "invalid interval"),
        ("@every 1h", "no_such_fn", "", "unknown function 'no_such_fn'"),
        ("@every 1h", fn, "{nope", "invalid meta"),
    ]:
        _fill(page, name, "function", value, interval, meta)
        response = _submit(page, "#task-form button[type=submit]")
        assert response.status == 400 and page.url == f"{ui_server.url}/ui/tasks/new"
        assert reason in page.locator("#task-error").inner_text()
        typed = [page.locator(f"#task-{k}").input_value() for k in ("name", "value", "interval", "meta")]
        assert typed == [name, value, interval, meta]
        if interval == "not a cron":
            shots(page, "task-refused")
    assert _task_named(ui_server, name) is None

    # forms without this session's CSRF token do nothing
    csrf = csrf_of(page)
    mine = _api(
        ui_server,
        "POST",
        "/task",
        json={"name": unique("kept-"), "type": "function", "value": fn, "interval": "@daily"},
    )
    fields = {"name": name, "type": "function", "value": fn, "interval": "@hourly", "meta": ""}
    posts = [
        ("/ui/tasks/new", fields),
        (f"/ui/tasks/{mine['id']}", fields),
        (f"/ui/tasks/{mine['id']}/enabled", {"enabled": "false"}),
        (f"/ui/tasks/{mine['id']}/run", {}),
        (f"/ui/tasks/del/{mine['id']}", {}),
    ]
    for path, data in posts:
        for bad in ({}, {"csrf": "y" * 32}):
            r = page.request.post(path, form={**data, **bad}, max_redirects=0)
            assert r.status == 403 and "CSRF" in r.text(), (path, r.status)
    assert _task_named(ui_server, name) is None
    assert _api(ui_server, "GET", f"/task/{mine['id']}") == mine
    assert _runs(ui_server, mine["id"]) == []

    # another app's task: not found on every page and form, and left as it was
    other = ui_server.new_app(unique_email("uitask"))
    theirs_body = {
        "name": "theirs",
        "type": "message",
        "value": "ping",
        "interval": "@daily",
        "meta": '{"channel": "c"}',
    }
    r = ui_server.request("POST", "/task", pk=other["pk"], token=other["rootToken"], json=theirs_body)
    assert r.status_code == 200, r.text
    theirs = r.json()
    for path in (f"/ui/tasks/{theirs['id']}", f"/ui/tasks/del/{theirs['id']}"):
        response = page.goto(path)
        assert response is not None and response.status == 404, path
        assert "not found" in page.locator("[role=alert]").inner_text()
    shots(page, "task-not-found")
    for path, data in [(p.replace(mine["id"], theirs["id"]), d) for p, d in posts[1:]]:
        r = page.request.post(path, form={**data, "csrf": csrf}, max_redirects=0)
        assert r.status == 404, (path, r.status)
    r = ui_server.request("GET", f"/task/{theirs['id']}", pk=other["pk"], token=other["rootToken"])
    assert r.status_code == 200 and r.json() == theirs
    r = ui_server.request("GET", f"/task/{theirs['id']}/runs", pk=other["pk"], token=other["rootToken"])
    assert r.status_code == 200 and r.json() == []
    page.goto("/ui/tasks")
    assert page.locator(".task-table tbody tr", has_text="theirs").count() == 0
    _api(ui_server, "DELETE", f"/task/{mine['id']}")
    page.context.close()


def test_signed_out_pages_go_to_sign_in(ui_server: LiveServer) -> None:
    for method, path in [
        ("GET", "/ui/tasks"),
        ("GET", "/ui/tasks/new"),
        ("POST", "/ui/tasks/new"),
        ("GET", "/ui/tasks/x"),
        ("POST", "/ui/tasks/x"),
        ("POST", "/ui/tasks/x/enabled"),
        ("POST", "/ui/tasks/x/run"),
        ("GET", "/ui/tasks/del/x"),
        ("POST", "/ui/tasks/del/x"),
    ]:
        r = httpx.request(method, ui_server.url + path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/", (method, path)


@pytest.fixture(params=STORE_KINDS)
def elsewhere(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    """A server whose scheduler runs on another host (PRIMARY_INSTANCE_HOSTNAME): no loop here.
    (Requested before ``chromium``: its PostgreSQL set-up runs outside Playwright's event loop.)"""
    kind: str = request.param
    pg_url = request.getfixturevalue("pg_url") if kind == "pg" else ""
    suffix = "test_ui_tasks_elsewhere"
    database_url = _fresh_database(pg_url, suffix) if pg_url else ""
    env = {"APP_SECRET": UI_APP_SECRET, "PRIMARY_INSTANCE_HOSTNAME": "primary.elsewhere.invalid"}
    try:
        with running_server(kind, tmp_path, database_url, env) as server:
            yield server
    finally:
        if pg_url:
            _database(pg_url, suffix, create=False)


def test_scheduler_on_another_host(elsewhere: LiveServer, chromium: Any) -> None:
    """This process has no scheduler loop: the pages say so, store tasks for the primary, and
    Run now still runs one here."""
    page = signed_in(chromium, elsewhere)
    fn = _add_function(elsewhere)
    page.goto("/ui/tasks")
    assert "does not run on this server process" in page.locator("#scheduler-elsewhere").inner_text()
    name = unique("elsewhere-")
    task_id = _create(page, elsewhere, name, fn, "@every 1h", 3)
    assert page.locator("#scheduler-elsewhere").is_visible()
    assert page.locator(".task-table tbody tr", has_text=name).locator(".task-last").inner_text() == "never"
    shots(page, "task-list-elsewhere")
    page.goto(f"/ui/tasks/{task_id}")
    response = _submit(page, "#task-run")
    assert response.status == 200
    assert page.locator(".task-runs tr.run-current .badge").inner_text() == "Success"
    assert _marks(elsewhere, name, 3) == 1
    page.context.close()
