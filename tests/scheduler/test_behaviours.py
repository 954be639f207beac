"""Spec 10, scheduler behaviours 80-88, one test (or a few) per item, named after its number.

Adapted to the issue where they differ: item 85's intervals accept standard 5-field cron, an
optional LEADING seconds field (6 fields) and the shorthands; 7 fields are refused. Items that
need a real socket or the real scheduler loop (82, 83, 88) run against a live server in real
time; the rest run in-process with the fake clock on every store kind.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.http.helpers import TEXT_TYPE
from tests.scheduler.conftest import T0, MakeSched, Sched
from tests.scheduler.support import (
    ECHO_FN,
    JSON_TYPE,
    TASK_KEYS,
    ZERO_TIME,
    Target,
    TaskApi,
    echo_args,
    logged,
    parse_time,
    rfc3339,
    sse_member,
    unique,
    utc,
)

pytestmark = pytest.mark.timeout(60)


def _only(runs: list[Any], task_id: str) -> list[Any]:
    return [r for r in runs if r.task_id == task_id]


# --- 80, 81: function tasks ---------------------------------------------------------------


async def test_s80_function_task_runs_within_a_minute_as_root(sched: Sched) -> None:
    api = sched.api
    # A document of a user of another account: only the app's root may list it.
    r = await api.request(
        "POST", "/register", token="", json={"email": f"{unique('u')}@x.example", "password": "pw-123456"}
    )
    assert r.status_code == 200, r.text
    col = unique("private")
    r = await api.request("POST", f"/db/{col}", token=r.json(), json={"secret": 1})
    assert r.status_code == 201, r.text
    fn = unique("f")
    await api.add_fn(
        fn,
        f"""function handle(a, b, c) {{
  var all = list("{col}");
  log(JSON.stringify({{args: [a, b, c], isNull: c === null, total: all.ok ? all.content.total : -1}}));
}}""",
    )
    task = await api.add_task(unique("job"), "function", fn, "* * * * *", '{"data":"{\\"k\\":1}"}')
    nxt = parse_time(task["next"])
    assert T0 < nxt <= T0 + 60, task["next"]

    assert _only(await sched.tick(nxt - 1), task["id"]) == [], "ran before its minute"
    runs = _only(await sched.tick(nxt), task["id"])
    assert [r.outcome for r in runs] == ["success"], runs
    history = await api.history(fn)
    assert len(history) == 1 and history[0]["success"], history
    seen = echo_args(history[0])
    assert seen["args"] == [task["name"], "fn_call", {"k": 1}], seen
    assert seen["total"] == 1, f"the task did not run with root permissions: {seen}"


async def test_s81_function_task_without_data_gets_null(sched: Sched) -> None:
    api = sched.api
    problems = []
    for label, meta in [("no meta", ""), ("empty meta", "{}"), ("empty data", '{"data":""}')]:
        fn = unique("f")
        await api.add_fn(fn, ECHO_FN)
        task = await api.add_task(unique("job"), "function", fn, "@every 1m", meta)
        runs = _only(await sched.tick(parse_time(task["next"])), task["id"])
        assert [r.outcome for r in runs] == ["success"], (label, runs)
        seen = echo_args((await api.history(fn))[0])
        if seen != {"args": [task["name"], "fn_call", None], "isNull": True}:
            problems.append(f"{label}: handle got {seen}")
    assert not problems, problems


# --- 82, 83: message and http tasks on a live server ----------------------------------------


async def test_s82_message_task_reaches_channel_members_every_interval(live_api: TaskApi) -> None:
    api = live_api
    channel = unique("c")
    async with sse_member(api, channel) as member:
        task = await api.add_task(
            unique("msg"), "message", "ping", "@every 1s", f'{{"channel":"{channel}","data":"x"}}'
        )
        pings = [await member.expect("ping", timeout=4), await member.expect("ping", timeout=4)]
        # Stop it, let the last tick land, then compare: one message per recorded run.
        await api.update_task(task["id"], enabled=False)
        await asyncio.sleep(0.5)
        while True:
            try:
                pings.append(await member.expect("ping", timeout=0.3))
            except AssertionError:
                break
        runs = await api.runs(task["id"])
        assert [r["outcome"] for r in runs] == ["success"] * len(runs), runs
        assert len(pings) == len(runs), f"{len(pings)} messages for {len(runs)} runs: {runs}"
        assert len({r["due"] for r in runs}) == len(runs), runs
        for env in pings:
            assert (env["type"], env["channel"], env["data"]) == ("ping", channel, "x"), env
            assert env["sid"] == task["id"], env
            assert env["token"] == "", f"a delivered message carries no token: {env}"
        # A chan_in message task arrives as chan_out, like any chan_in.
        chan_in = await api.add_task(unique("in"), "message", "chan_in", "@every 1s", f'{{"channel":"{channel}"}}')
        env = await member.expect("chan_out", timeout=4, sid=chan_in["id"])
        assert env["channel"] == channel and env["data"] == "", env


async def test_s83_http_task_posts_then_publishes_the_response(live_api: TaskApi, target: Target) -> None:
    api = live_api
    name, path = unique("hook"), "/" + unique("s83")
    reply_channel = f"{name}-http-response"
    fn = unique("onreply")
    await api.add_fn(fn, ECHO_FN, trigger=reply_channel)
    async with sse_member(api, reply_channel) as member:
        task = await api.add_task(name, "http", target.url + path, "@every 1s")
        env = await member.expect("http_response", timeout=5)
        got = target.at(path)
        assert got and got[0]["method"] == "POST", got
        assert env["channel"] == reply_channel and env["sid"] == "system", env
        assert env["data"] == json.dumps({"path": path, "n": 1}), env  # the body, verbatim
    history = await api.wait_history(fn, 1)
    seen = echo_args(history[0])
    assert seen["args"] == [reply_channel, "http_response", {"path": path, "n": 1}], seen
    await api.delete_task(task["id"])


async def test_s83_transport_error_is_recorded_and_nothing_is_published(sched: Sched) -> None:
    api = sched.api
    published: list[dict[str, Any]] = []
    sched.nodes[0].server.services.broker.message_hooks.append(lambda base, msg, ident: published.append(msg))
    name = unique("down")
    task = await api.add_task(name, "http", "http://127.0.0.1:9/nothing-listens-here", "@every 1m")
    runs = _only(await sched.tick(T0 + 60), task["id"])
    assert [r.outcome for r in runs] == ["failed"], runs
    assert runs[0].error.startswith("request failed"), runs
    assert [m for m in published if m.get("channel") == f"{name}-http-response"] == []
    recorded = await api.runs(task["id"])
    assert [r["outcome"] for r in recorded] == ["failed"] and recorded[0]["error"], recorded


# --- 84: http bodies ------------------------------------------------------------------------


async def test_s84_http_task_json_verbatim_and_form_encoded(sched: Sched, target: Target) -> None:
    api = sched.api
    verbatim = '{"a": 1,  "b": [1, 2], "s": "x y"}'
    cases: list[tuple[str, Any]] = [
        ("json", {"ct": "application/json", "data": verbatim}),
        ("form", {"data": '{"name": "x y", "n": "3", "amp": "a&b=c"}'}),
        ("form-object", {"data": {"k": "v", "n": 7}}),  # data given as an object: its JSON text
        ("nometa", ""),
    ]
    paths = {}
    for label, meta in cases:
        paths[label] = "/" + unique(label)
        meta_text = meta if isinstance(meta, str) else json.dumps(meta)
        await api.add_task(unique(label), "http", target.url + paths[label], "@every 1m", meta_text)
    runs = await sched.tick(T0 + 60)
    assert all(r.outcome == "success" for r in runs), runs

    def one(label: str) -> dict[str, Any]:
        got = target.at(paths[label])
        assert len(got) == 1, (label, got)
        return got[0]

    json_req = one("json")
    assert json_req["method"] == "POST"
    assert json_req["headers"]["content-type"] == "application/json"
    assert json_req["body"] == verbatim
    form = one("form")
    assert form["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(form["body"]) == {"name": ["x y"], "n": ["3"], "amp": ["a&b=c"]}, form["body"]
    obj = one("form-object")
    assert parse_qs(obj["body"]) == {"k": ["v"], "n": ["7"]}, obj["body"]
    bare = one("nometa")
    assert bare["method"] == "POST" and bare["body"] == "", bare
    assert bare["headers"]["content-type"] == "application/x-www-form-urlencoded"


# --- 85: intervals --------------------------------------------------------------------------


async def test_s85_intervals_are_evaluated_in_utc(sched: Sched) -> None:
    api = sched.api
    # T0 is 2030-01-07 05:59:30 UTC (06:59:30 in Paris).
    utc_task = await api.add_task(unique("utc"), "message", "ping", "0 6 * * *", '{"channel":"c"}')
    assert utc_task["timezone"] == "UTC"
    assert utc_task["next"] == rfc3339(utc("2030-01-07T06:00:00")), utc_task
    paris = await api.add_task(
        unique("paris"), "message", "ping", "0 6 * * *", '{"channel":"c"}', timezone="Europe/Paris"
    )
    assert paris["next"] == rfc3339(utc("2030-01-08T05:00:00")), paris
    runs = await sched.tick(utc("2030-01-07T06:00:00"))
    assert len(_only(runs, utc_task["id"])) == 1 and _only(runs, paris["id"]) == [], runs
    runs = await sched.tick(utc("2030-01-08T05:00:00"))
    assert len(_only(runs, paris["id"])) == 1, runs


async def test_s85_every_30s_runs_twice_a_minute(sched: Sched) -> None:
    api = sched.api
    task = await api.add_task(unique("half"), "message", "ping", "@every 30s", '{"channel":"c"}')
    count = 0
    for k in range(1, 13):  # a tick every 5 s for one minute
        count += len(_only(await sched.tick(T0 + 5 * k), task["id"]))
    assert count == 2, f"@every 30s ran {count} times in a minute"
    assert [r["due"] for r in await api.runs(task["id"])] == [rfc3339(T0 + 30), rfc3339(T0 + 60)]


async def test_s85_six_fields_with_a_leading_seconds_field_are_accepted(sched: Sched) -> None:
    api = sched.api
    # interval -> (first tick after T0 = 05:59:30, runs between 06:00:00 and 06:00:59)
    cases = {
        "*/15 * * * * *": ("2030-01-07T05:59:45", 4),
        "30 0 6 * * *": ("2030-01-07T06:00:30", 1),
        "0 * * * * *": ("2030-01-07T06:00:00", 1),
        "10,20 0 6 * * *": ("2030-01-07T06:00:10", 2),
    }
    tasks = {}
    for interval, (first, _) in cases.items():
        task = await api.add_task(unique("sec"), "message", "ping", interval, '{"channel":"c"}')
        assert task["interval"] == interval
        assert task["next"] == rfc3339(utc(first)), (interval, task)
        tasks[task["id"]] = interval
    counts = dict.fromkeys(tasks.values(), 0)
    for k in range(1, 61):  # a tick every second from 06:00:00 for one minute
        for run in await sched.tick(utc("2030-01-07T05:59:59") + k):
            if run.task_id in tasks:
                counts[tasks[run.task_id]] += 1
    assert counts == {interval: n for interval, (_, n) in cases.items()}, counts


async def test_s85_seven_fields_are_rejected(sched: Sched) -> None:
    for interval in ["0 0 0 * * * *", "* * * * * * *", "0 30 6 * * * 2030"]:
        r = await sched.api.create_raw(
            {"name": "x", "type": "message", "value": "ping", "interval": interval, "meta": '{"channel":"c"}'}
        )
        assert r.status_code == 400, (interval, r.text)
        assert r.headers["content-type"] == TEXT_TYPE
        assert r.text.startswith("invalid interval: ") and r.text.count("\n") == 1, repr(r.text)
    assert await sched.api.tasks() == []


async def test_s85_shorthands_are_accepted(sched: Sched) -> None:
    expected = {
        "@hourly": "2030-01-07T06:00:00",
        "@daily": "2030-01-08T00:00:00",
        "@midnight": "2030-01-08T00:00:00",
        "@weekly": "2030-01-13T00:00:00",  # the next Sunday
        "@monthly": "2030-02-01T00:00:00",
        "@yearly": "2031-01-01T00:00:00",
        "@annually": "2031-01-01T00:00:00",
    }
    for interval, first in expected.items():
        task = await sched.api.add_task(unique("sh"), "message", "ping", interval, '{"channel":"c"}')
        assert task["next"] == rfc3339(utc(first)), (interval, task)


async def test_s85_cron_syntax_of_the_standard_parser(sched: Sched) -> None:
    # T0 is Monday 2030-01-07 05:59:30 UTC.
    expected = {
        "0 0 13 * 5": "2030-01-11T00:00:00",  # day-of-month OR day-of-week: Friday the 11th comes first
        "0 0 ? * MON": "2030-01-14T00:00:00",  # ? is * in the day fields; names of days
        "0 12 1 FEB *": "2030-02-01T12:00:00",  # names of months
        "0-30/15 6 * * *": "2030-01-07T06:00:00",  # a range with a step
        "5,10 6 * * 1-5": "2030-01-07T06:05:00",  # a list and a range
        "*/20 * * * *": "2030-01-07T06:00:00",
        "@every 1h30m": "2030-01-07T07:29:30",  # counted from the creation
    }
    problems = []
    for interval, first in expected.items():
        task = await sched.api.add_task(unique("cron"), "message", "ping", interval, '{"channel":"c"}')
        if task["next"] != rfc3339(utc(first)):
            problems.append(f"{interval!r}: next {task['next']}, want {first}")
    # Created at a matching instant, a task first runs at the NEXT one.
    sched.clock.set(utc("2030-01-07T06:00:00"))
    task = await sched.api.add_task(unique("now"), "message", "ping", "0 6 * * *", '{"channel":"c"}')
    if task["next"] != rfc3339(utc("2030-01-08T06:00:00")):
        problems.append(f"created at 06:00:00, next is {task['next']}")
    assert not problems, problems


# --- 86: restart ----------------------------------------------------------------------------


async def test_s86_tasks_survive_a_restart_keep_their_base_and_last_is_updated(make_sched: MakeSched) -> None:
    async with make_sched(keep=True) as first:
        api = first.api
        base = await first.nodes[0].server.services.store.base_by_pk(api.pk)
        fn = unique("f")
        await api.add_fn(fn, ECHO_FN)
        task = await api.add_task(unique("job"), "function", fn, "@every 1m", '{"data":"{\\"n\\":1}"}')
        assert task["base"] == base.name and task["last"] == ZERO_TIME, task
        assert [r.outcome for r in _only(await first.tick(T0 + 60), task["id"])] == ["success"]
        before = await api.task(task["id"])
        assert parse_time(before["last"]) == T0 + 60, before

    async with make_sched(api=api, start=T0 + 90) as second:
        api = second.api
        after = await api.task(task["id"])
        assert after == before, "the task changed across the restart"
        assert after["name"] == task["name"] and after["base"] == base.name
        assert [t["id"] for t in await api.tasks()] == [task["id"]]
        runs = _only(await second.tick(T0 + 120), task["id"])
        assert [r.outcome for r in runs] == ["success"], runs
        history = await api.history(fn)
        assert len(history) == 2 and all(h["success"] for h in history), history
        assert echo_args(history[1])["args"] == [task["name"], "fn_call", {"n": 1}]
        assert parse_time((await api.task(task["id"]))["last"]) == T0 + 120
        assert len(await api.runs(task["id"])) == 2


# --- 87: routes -----------------------------------------------------------------------------


async def test_s87_task_routes_work_with_a_root_token(sched: Sched) -> None:
    api = sched.api
    base = await sched.nodes[0].server.services.store.base_by_pk(api.pk)
    r = await api.request("GET", "/task")
    assert r.status_code == 200 and r.headers["content-type"] == JSON_TYPE and r.text == "[]", (r, r.text)

    body = {
        "id": "chosen-by-client",
        "name": "nightly",
        "type": "MESSAGE",
        "value": "ping",
        "meta": '{"channel":"c","data":"x"}',
        "interval": "30 6 * * *",
        "last": "2020-01-01T00:00:00Z",
        "base": "someone-else",
    }
    r = await api.request("POST", "/task", json=body)
    assert r.status_code == 200 and r.headers["content-type"] == JSON_TYPE, (r, r.text)
    created = r.json()
    assert set(created) >= TASK_KEYS and "lastRun" not in created, created
    assert created["id"] and created["id"] != "chosen-by-client"
    assert created["type"] == "message" and created["base"] == base.name and created["last"] == ZERO_TIME, created
    assert {k: created[k] for k in ("name", "value", "meta", "interval")} == {
        k: body[k] for k in ("name", "value", "meta", "interval")
    }
    task_id = created["id"]

    assert await api.tasks() == [created]
    assert await api.task(task_id) == created

    r = await api.request("POST", f"/task/{task_id}", json={**created, "name": "morning", "interval": "@daily"})
    assert r.status_code == 200 and r.headers["content-type"] == JSON_TYPE, (r, r.text)
    updated = r.json()
    assert updated["id"] == task_id and updated["name"] == "morning" and updated["interval"] == "@daily", updated
    assert updated["next"] == rfc3339(utc("2030-01-08T00:00:00")), updated
    assert await api.task(task_id) == updated

    r = await api.request("DELETE", f"/task/{task_id}")
    assert r.status_code == 200 and r.headers["content-type"] == JSON_TYPE and r.text == "true", (r, r.text)
    r = await api.request("GET", f"/task/{task_id}")
    assert r.status_code == 404 and r.text == "task not found\n", r.text
    assert await api.tasks() == []


# --- 88: delete -----------------------------------------------------------------------------


async def test_s88_deleting_a_task_stops_its_runs_without_restart(live_api: TaskApi) -> None:
    api = live_api
    fn = unique("f")
    await api.add_fn(fn, ECHO_FN)
    task = await api.add_task(unique("job"), "function", fn, "@every 1s")
    await api.wait_history(fn, 1, timeout=5)
    await api.delete_task(task["id"])
    await asyncio.sleep(0.5)  # a run under way when it was deleted may still finish
    settled = len(await api.history(fn))
    await asyncio.sleep(2.2)
    history = await api.history(fn)
    assert len(history) == settled, f"{len(history) - settled} run(s) after the delete: {history[-2:]}"
    r = await api.request("GET", f"/task/{task['id']}")
    assert r.status_code == 404, r.text
    assert all(v["args"][1] == "fn_call" for h in history for v in logged(h) if isinstance(v, dict))
