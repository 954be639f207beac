"""Spec 10, realtime over WebSocket: items 29-35, on the in-process bus and on Redis."""

from __future__ import annotations

import asyncio
import json

from tests.realtime.clients import WSClient
from tests.realtime.support import Realtime, unique


async def test_r29_ws_upgrades_without_public_key_and_sends_init(rt: Realtime) -> None:
    ws = WSClient(rt.server.ws_url)
    rt.track(ws)
    await ws.open(read=False)
    assert ws.ws is not None
    first = json.loads(await asyncio.wait_for(ws.ws.recv(), 5))
    assert first["type"] == "init" and first["data"], first
    assert set(first) == {"sid", "type", "data", "channel", "token", "auth", "base"}, first


async def test_r30_ws_auth_answers_the_inner_token(rt: Realtime) -> None:
    user = await rt.user()
    ws = await rt.ws()
    await ws.send_raw(json.dumps({"sid": ws.sid, "token": None, "type": "auth", "data": user.jwt}))
    reply = await ws.expect("token")
    assert reply["data"] == user.inner
    assert reply["data"] != user.jwt and reply["data"].count("|") == 1


async def test_r31_ws_join_answers_joined_to_the_joiner_only(rt: Realtime) -> None:
    lobby = unique("lobby")
    user = await rt.user(0)
    member = await rt.ws(await rt.user(1), join=(lobby,))
    ws = await rt.ws(user)
    await ws.send("join", lobby, token=user.inner)
    got = await ws.expect("joined")
    assert got["data"] == lobby, got
    other = unique("other")
    await ws.send("join", other, token=user.jwt)  # the JWT is accepted as well
    assert (await ws.expect("joined"))["data"] == other
    # No broadcast of those joins: an SSE join made after them is broadcast (JOINED_DELAY after
    # it) later than a broadcast of theirs would be, and is the first thing the members see.
    watcher = await rt.sse(await rt.user(2))

    async def watcher_joins() -> None:
        await watcher.join(lobby)
        await watcher.join(other)

    await member.nothing_before(watcher_joins(), "joined", ignore=(), data=watcher.sid, channel=lobby)
    await ws.nothing_before(None, "joined", ignore=(), data=watcher.sid, channel=lobby)
    await ws.nothing_before(None, "joined", ignore=(), data=watcher.sid, channel=other)


async def test_r32_ws_and_sse_members_see_each_other(rt: Realtime) -> None:
    lobby = unique("lobby")
    ws = await rt.ws(await rt.user(0), join=(lobby,))
    sse = await rt.sse(await rt.user(1), join=(lobby,))
    await ws.send("chan_in", "from-ws", channel=lobby)
    for member in (ws, sse):
        got = await member.expect("chan_out", data="from-ws")
        assert got["sid"] == ws.sid and got["channel"] == lobby, got
    await sse.send("chan_in", "from-sse", channel=lobby)
    for member in (ws, sse):
        got = await member.expect("chan_out", data="from-sse")
        assert got["sid"] == sse.sid and got["channel"] == lobby, got


async def test_r33_ws_chan_in_answers_ok_and_echo_needs_no_auth(rt: Realtime) -> None:
    lobby = unique("lobby")
    ws = await rt.ws(await rt.user(), join=(lobby,))
    await ws.send("chan_in", "x", channel=lobby)
    reply = await ws.expect()
    assert reply["type"] == "ok", reply
    anon = await rt.ws()
    await anon.send("echo", "hello")
    reply = await anon.expect()
    assert reply["type"] == "echo" and reply["data"] == "echo: hello", reply


async def test_r34_ws_accepts_a_10kb_chan_in(rt: Realtime) -> None:
    lobby = unique("lobby")
    ws = await rt.ws(await rt.user(0), join=(lobby,))
    sse = await rt.sse(await rt.user(1), join=(lobby,))
    data = json.dumps({"body": "x" * 10_240})
    await ws.send("chan_in", data, channel=lobby)
    assert (await ws.expect())["type"] == "ok"
    for member in (ws, sse):
        got = await member.expect("chan_out")
        assert got["data"] == data
    assert not ws.closed.is_set()


async def test_r35_idle_ws_stays_open(rt: Realtime) -> None:
    # uvicorn pings every 20 s and the server exposes no setting to shorten it, so this checks
    # the weaker half: an idle socket is neither closed nor stalled after 5 s.
    ws = await rt.ws()
    await asyncio.sleep(5)
    assert not ws.closed.is_set(), f"closed after 5 s idle (code {ws.close_code})"
    await ws.send("echo", "after-idle")
    assert (await ws.expect("echo"))["data"] == "echo: after-idle"
