"""Bad task input: 400 with a clear one-line reason, nothing stored; 404 and credentials.

One in-process app per store kind serves the whole module (each test gets a fresh app, i.e.
base, on it); each test sends a list of cases and reports every case that went wrong at once.
A refused request leaves the app's task list as it was.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import STORE_KINDS
from tests.http.helpers import assert_error
from tests.scheduler.conftest import T0, Node, open_node
from tests.scheduler.support import ECHO_FN, FakeClock, TaskApi, unique

pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=STORE_KINDS)
async def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Node]:
    kind: str = request.param
    pg_url = request.getfixturevalue("pg_url") if kind == "pg" else None
    async with open_node(kind, tmp_path_factory.mktemp("bad-input"), pg_url, FakeClock(T0)) as opened:
        yield opened


@pytest_asyncio.fixture(loop_scope="module")
async def api(node: Node) -> AsyncIterator[TaskApi]:
    """A fresh app on the module's server; its tasks are deleted afterwards."""
    fresh = await TaskApi(node.client, "", "").new_app()
    try:
        yield fresh
    finally:
        await fresh.cleanup()


CHANNEL = '{"channel":"c","data":"x"}'


def message(**changes: Any) -> dict[str, Any]:
    return {"name": "m", "type": "message", "value": "ping", "interval": "* * * * *", "meta": CHANNEL, **changes}


def http(**changes: Any) -> dict[str, Any]:
    return {"name": "h", "type": "http", "value": "http://127.0.0.1:9/hook", "interval": "@hourly", **changes}


async def _refused(api: TaskApi, cases: list[tuple[str, Any, str]]) -> None:
    """Every case answers 400 with one line starting with its prefix; nothing is stored."""
    before = await api.tasks()
    problems = []
    for label, body, prefix in cases:
        r = await api.create_raw(body)
        try:
            assert_error(r, 400, startswith=prefix)
        except AssertionError as exc:
            problems.append(f"{label}: {exc}")
    assert not problems, "\n".join(problems)
    assert await api.tasks() == before


async def test_invalid_intervals_are_refused(api: TaskApi) -> None:
    await _refused(
        api,
        [
            ("4 fields", message(interval="* * * *"), "invalid interval: "),
            ("minute 61", message(interval="61 * * * *"), "invalid interval: "),
            ("hour 25", message(interval="0 25 * * *"), "invalid interval: "),
            ("day-of-month 32", message(interval="0 0 32 * *"), "invalid interval: "),
            ("month 13", message(interval="0 0 1 13 *"), "invalid interval: "),
            ("weekday 8", message(interval="0 0 * * 8"), "invalid interval: "),
            ("step 0", message(interval="*/0 * * * *"), "invalid interval: "),
            ("nonsense", message(interval="nonsense"), "invalid interval: "),
            ("nonsense fields", message(interval="a b c d e"), "invalid interval: "),
            ("7 fields", message(interval="0 0 0 * * * *"), "invalid interval: "),
            ("second 60", message(interval="60 * * * * *"), "invalid interval: "),
            ("empty", message(interval=""), "invalid interval: "),
            ("blank", message(interval="   "), "invalid interval: "),
            ("unknown shorthand", message(interval="@fortnightly"), "invalid interval: "),
            ("@every without duration", message(interval="@every"), "invalid interval: "),
            ("@every bad duration", message(interval="@every soon"), "invalid interval: "),
            ("@every zero", message(interval="@every 0s"), "invalid interval: "),
            ("unknown time zone", message(timezone="Mars/Olympus"), "invalid time zone"),
        ],
    )


async def test_syntax_outside_the_standard_cron_is_refused(api: TaskApi) -> None:
    """Spec 06 §2: robfig/cron's standard parser: weekdays 0-6, ranges a-b with a <= b, and no
    Quartz extensions (L, W, #). The issue's "standard 5-field cron" is that syntax."""
    await _refused(
        api,
        [
            ("weekday 7", message(interval="0 0 * * 7"), "invalid interval: "),
            ("reversed minute range", message(interval="5-1 * * * *"), "invalid interval: "),
            ("reversed hour range", message(interval="0 22-2 * * *"), "invalid interval: "),
            ("last day L", message(interval="0 0 L * *"), "invalid interval: "),
            ("nearest weekday W", message(interval="0 0 1W * *"), "invalid interval: "),
            ("nth weekday #", message(interval="0 0 * * MON#1"), "invalid interval: "),
        ],
    )


async def test_unknown_type_and_function_are_refused(api: TaskApi) -> None:
    await _refused(
        api,
        [
            ("unknown type", message(type="cron"), "invalid task type"),
            ("empty type", message(type=""), "invalid task type"),
            ("unknown function", message(type="function", value=unique("nofn"), meta=""), "invalid task: unknown"),
            ("missing name", {k: v for k, v in message().items() if k != "name"}, "invalid task: name"),
            ("missing value", {k: v for k, v in message().items() if k != "value"}, "invalid task: value"),
            ("missing interval", {k: v for k, v in message().items() if k != "interval"}, "invalid interval: "),
        ],
    )
    # The function of another app is unknown in this one.
    other = await api.new_app()
    fn = unique("fn")
    await other.add_fn(fn, ECHO_FN)
    await _refused(api, [("another app's function", message(type="function", value=fn, meta=""), "invalid task")])


async def test_malformed_meta_is_refused(api: TaskApi) -> None:
    await _refused(
        api,
        [
            ("meta not JSON", message(meta="{nope"), "invalid meta"),
            ("meta an array", message(meta="[1, 2]"), "invalid meta"),
            ("meta a string", message(meta='"text"'), "invalid meta"),
            ("meta a number", message(meta=5), "invalid meta"),
            ("message without channel", message(meta='{"data":"x"}'), "invalid meta"),
            ("message with empty channel", message(meta='{"channel":"","data":"x"}'), "invalid meta"),
            ("message without meta", message(meta=""), "invalid meta"),
            ("HTTPHeaders an array", http(meta='{"HTTPHeaders":"[1,2]"}'), "invalid meta"),
            ("HTTPHeaders not JSON", http(meta='{"HTTPHeaders":"X-A: 1"}'), "invalid meta"),
            ("HTTPHeaders a number", http(meta='{"HTTPHeaders":5}'), "invalid meta"),
            ("headers a list", http(meta={"headers": ["X-A", "1"]}), "invalid meta"),
        ],
    )


async def test_http_value_must_be_a_url(api: TaskApi) -> None:
    await _refused(
        api,
        [
            ("not a URL", http(value="not a url"), "invalid task"),
            ("ftp", http(value="ftp://127.0.0.1/file"), "invalid task"),
            ("no host", http(value="http://"), "invalid task"),
            ("path only", http(value="/hook"), "invalid task"),
        ],
    )


async def test_wrong_field_types_are_refused(api: TaskApi) -> None:
    await _refused(
        api,
        [
            ("name a number", message(name=5), 'invalid field "name"'),
            ("type a list", message(type=["message"]), 'invalid field "type"'),
            ("value an object", message(value={"a": 1}), 'invalid field "value"'),
            ("interval a number", message(interval=60), 'invalid field "interval"'),
            ("enabled a string", message(enabled="yes"), 'invalid field "enabled"'),
            ("timezone a number", message(timezone=1), 'invalid field "timezone"'),
            ("body an array", [message()], "invalid JSON body"),
            ("body a string", '"task"', "invalid JSON body"),
            ("body not JSON", "name=m&type=message", "invalid JSON body"),
        ],
    )


async def test_updates_are_validated_and_leave_the_task_unchanged(api: TaskApi) -> None:
    task = await api.add_task(unique("m"), "message", "ping", "@every 1m", CHANNEL)
    problems = []
    for label, changes, prefix in [
        ("bad interval", {"interval": "61 * * * *"}, "invalid interval: "),
        ("unknown type", {"type": "cron"}, "invalid task type"),
        ("meta without channel", {"meta": '{"data":"x"}'}, "invalid meta"),
        ("enabled a string", {"enabled": "no"}, 'invalid field "enabled"'),
    ]:
        r = await api.request("POST", f"/task/{task['id']}", json={**task, **changes})
        try:
            assert_error(r, 400, startswith=prefix)
        except AssertionError as exc:
            problems.append(f"{label}: {exc}")
    assert not problems, "\n".join(problems)
    assert await api.task(task["id"]) == task


async def test_a_task_whose_function_is_gone_can_be_disabled_not_enabled(api: TaskApi) -> None:
    fn = unique("fn")
    await api.add_fn(fn, ECHO_FN)
    task = await api.add_task(unique("f"), "function", fn, "@hourly", "")
    r = await api.request("DELETE", f"/fn/delete/{fn}")
    assert r.status_code == 200, r.text
    r = await api.request("POST", f"/task/{task['id']}", json={**task, "enabled": False})
    assert r.status_code == 200, r.text
    disabled = await api.task(task["id"])
    assert disabled["enabled"] is False
    # a disabled task does not run on demand either, and says why
    assert_error(
        await api.request("POST", f"/task/{task['id']}/run"),
        409,
        f"task {task['name']!r} is disabled: enable it to run it",
    )
    # enabling it again checks the function: refused, and the task stays disabled
    r = await api.request("POST", f"/task/{task['id']}", json={**disabled, "enabled": True})
    assert_error(r, 400, startswith="invalid task: unknown function")
    assert await api.task(task["id"]) == disabled


async def test_unknown_task_is_404_on_every_route(api: TaskApi) -> None:
    missing = unique("missing")
    for method, path, body in [
        ("GET", f"/task/{missing}", None),
        ("POST", f"/task/{missing}", message()),
        ("DELETE", f"/task/{missing}", None),
        ("GET", f"/task/{missing}/runs", None),
        ("POST", f"/task/{missing}/run", None),
    ]:
        r = await api.request(method, path, json=body)
        assert_error(r, 404, "task not found")
    # Another app's task is unknown too.
    other = await api.new_app()
    theirs = await other.add_task(unique("m"), "message", "ping", "@hourly", CHANNEL)
    assert_error(await api.request("GET", f"/task/{theirs['id']}"), 404, "task not found")
    assert_error(await api.request("DELETE", f"/task/{theirs['id']}"), 404, "task not found")
    assert (await other.task(theirs["id"]))["name"] == theirs["name"]
    await other.cleanup()


async def test_a_session_token_is_not_a_root_token(api: TaskApi) -> None:
    r = await api.request(
        "POST", "/register", token="", json={"email": f"{unique('u')}@x.example", "password": "pw-123456"}
    )
    assert r.status_code == 200, r.text
    session = r.json()
    task = await api.add_task(unique("m"), "message", "ping", "@hourly", CHANNEL)
    for method, path, body in [
        ("GET", "/task", None),
        ("POST", "/task", message()),
        ("GET", f"/task/{task['id']}", None),
        ("POST", f"/task/{task['id']}", {**task, "interval": "@daily"}),
        ("DELETE", f"/task/{task['id']}", None),
        ("GET", f"/task/{task['id']}/runs", None),
    ]:
        r = await api.request(method, path, token=session, json=body)
        assert_error(r, 400)
    assert await api.tasks() == [task]
    assert_error(await api.request("GET", "/task", token=""), 401)
