"""Spec 10 items 67, 71, 72 (and decision 1): functions and the chat transports, on a real server.

SSE needs a real socket, so these run against ``live`` (SQLite always; PostgreSQL with Redis when
both test URLs are set) with the realtime suite's SSE and WebSocket clients.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import pytest

from tests.functions.support import RFC3339, TUTORIAL_FN, FnApi, Process, logged, unique
from tests.realtime.support import App, Realtime, Server


@pytest.fixture
async def rt(live: Process, live_fn: FnApi) -> AsyncIterator[Realtime]:
    session = Realtime(Server(live.url, "live", live.pid, live.log_path), App(pk=live_fn.pk, root=live_fn.root))
    yield session
    await session.aclose()


async def stored_messages(fn: FnApi, jwt: str, want: int) -> list[dict]:
    """``GET /db/msgs_774_`` as the given user until it lists ``want`` documents."""
    for _ in range(200):
        r = await fn.request("GET", "/db/msgs_774_", jwt)
        assert r.status_code == 200, r.text
        results: list[dict] = r.json()["results"]
        if len(results) >= want:
            return results
        await asyncio.sleep(0.05)
    raise AssertionError(f"msgs_774_ holds {len(results)} docs, want {want}")


async def test_f67_publish_reaches_channel_members(rt: Realtime, live_fn: FnApi) -> None:
    channel = unique("c67")
    code = 'function handle(body) { log(JSON.stringify(publish(body.channel, "t", {a: 1}))); }'
    await live_fn.add_ok("f67", "web", code)
    member = await rt.sse(await rt.user(0), join=(channel,))
    ws_member = await rt.ws(await rt.user(1), join=(channel,))
    run = await live_fn.exec_ok("f67", (await rt.user(0)).jwt, {"channel": channel})
    assert logged(run) == [{"ok": True}], run
    fn_id = (await live_fn.info("f67"))["id"]
    for client in (member, ws_member):
        got = await client.expect("t", channel=channel)
        assert got["data"] == '{"a":1}' and got["sid"] == fn_id, got
        assert got["token"] == "" and got["auth"]["email"] == "", got


async def test_f71_tutorial_function_stores_every_sse_chat_message(rt: Realtime, live_fn: FnApi) -> None:
    await live_fn.add_ok("new_msg", "chan_out", TUTORIAL_FN)
    ua, ub = await rt.user(0), await rt.user(1)
    a = await rt.sse(ua, join=("lobby",))
    b = await rt.sse(ub, join=("lobby",))
    posted = json.dumps({"from": ua.email, "body": "hello from SSE"})
    await a.send("chan_in", posted, channel="lobby")
    await a.expect("ok")
    got = await b.expect("chan_out", channel="lobby", data=posted)
    assert got["sid"] == a.sid
    [doc] = await stored_messages(live_fn, ub.jwt, 1)
    assert doc["from"] == ua.email and doc["body"] == "hello from SSE", doc
    assert re.match(RFC3339, doc["sentOn"]), doc
    assert doc["accountId"] == ua.account_id, "the function must write with the sender's identity"
    [run] = await live_fn.runs("new_msg", 1)
    assert run["success"] and run["output"][1].startswith("DEBUG: inside ssf"), run
    assert run["output"][-2:] == ["success", "Function completed"], run


async def test_f71_tutorial_function_stores_websocket_chat_messages(rt: Realtime, live_fn: FnApi) -> None:
    await live_fn.add_ok("new_msg", "chan_out", TUTORIAL_FN)
    ua, ub = await rt.user(0), await rt.user(1)
    a = await rt.ws(ua, join=("lobby",))
    b = await rt.sse(ub, join=("lobby",))
    posted = json.dumps({"from": ua.email, "body": "hello from WS"})
    await a.send("chan_in", posted, channel="lobby")
    await b.expect("chan_out", channel="lobby", data=posted)
    [doc] = await stored_messages(live_fn, ub.jwt, 1)
    assert doc["from"] == ua.email and doc["body"] == "hello from WS" and re.match(RFC3339, doc["sentOn"]), doc
    assert doc["accountId"] == ua.account_id
    await live_fn.settled("new_msg", 1)


async def test_f72_lobby_trigger_gets_channel_type_and_parsed_data_from_chat(rt: Realtime, live_fn: FnApi) -> None:
    channel = unique("lobby")
    code = "function handle(channel, type, data) { log(JSON.stringify({n: arguments.length, c: channel, t: type, d: data})); }"
    await live_fn.add_ok("f72", channel, code)
    a = await rt.sse(await rt.user(0), join=(channel,))
    await a.send("chan_in", json.dumps({"from": "a", "body": "hi"}), channel=channel)
    await a.expect("ok")
    w = await rt.ws(await rt.user(1), join=(channel,))
    await w.send("chan_in", json.dumps({"from": "w", "body": "yo"}), channel=channel)
    runs = await live_fn.settled("f72", 2)
    seen = sorted((logged(r)[0] for r in runs), key=lambda s: s["d"]["from"])
    assert seen == [
        {"n": 3, "c": channel, "t": "chan_out", "d": {"from": "a", "body": "hi"}},
        {"n": 3, "c": channel, "t": "chan_out", "d": {"from": "w", "body": "yo"}},
    ], seen


async def test_f76_chat_messages_are_not_held_to_the_custom_type_limit(rt: Realtime, live_fn: FnApi) -> None:
    channel = unique("chat")
    await live_fn.add_ok("f76chat", channel, 'function handle() { log("ran"); }')
    a = await rt.sse(await rt.user(0), join=(channel,))
    for i in range(8):
        await a.send("chan_in", f"m{i}", channel=channel)
        await a.expect("chan_out", data=f"m{i}")
    await live_fn.settled("f76chat", 8)
