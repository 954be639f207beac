"""Bad input, limits and outages: the realtime side refuses cleanly and keeps serving.

Malformed and forged input runs on both main servers; the limits run on servers configured for
them (see conftest); the Redis outage cuts a Redis-bus server's connections with ``CLIENT KILL``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time

import websockets

from tests.realtime.clients import TIMEOUT, SSEClient, WSClient, assert_error
from tests.realtime.conftest import MakeRealtime
from tests.realtime.support import (
    Realtime,
    Server,
    forge_jwt,
    jwt_claims,
    kill_redis_clients,
    new_app,
    register,
    unique,
)

SLOW_FLOOD = 150

# --- malformed envelopes ------------------------------------------------------------------


async def test_sse_msg_refuses_what_is_not_an_envelope(rt: Realtime) -> None:
    sse = await rt.sse(await rt.user())
    for body in (b"not json", b"", b'{"sid": '):
        r = await sse.post(body)
        assert r.status_code == 400, f"{body!r}: {r.status_code} {r.text!r}"
        assert r.text.endswith("\n") and r.text.strip(), repr(r.text)
    for body in (b"[]", b'[{"type":"echo"}]', b'"echo"', b"42", b"null"):
        r = await sse.post(body)
        assert 400 <= r.status_code < 500, f"{body!r}: {r.status_code} {r.text!r}"
        assert r.text.endswith("\n") and r.text.strip(), repr(r.text)
    await sse.nothing_before_echo()  # nothing was pushed for the refused bodies
    await rt.ping()


async def test_ws_reports_malformed_frames_and_stays_usable(rt: Realtime) -> None:
    ws = await rt.ws()
    for frame in ("not json", "[1, 2]", '"echo"', "{"):
        await ws.send_raw(frame)
        assert_error(await ws.expect())
    await ws.send("echo", "alive")
    assert (await ws.expect())["data"] == "echo: alive"
    assert not ws.closed.is_set()


async def test_unknown_types_and_missing_channel_on_both_transports(rt: Realtime) -> None:
    lobby = unique("lobby")
    user = await rt.user()
    sse = await rt.sse(user, join=(lobby,))
    ws = await rt.ws(user, join=(lobby,))
    for client in (sse, ws):
        for kind in ("chan_out", "token", "db_created", "Echo"):
            await client.send(kind, "x", channel=lobby)
            assert_error(await client.expect("error"), f"{kind} command not found")  # joined may come first
    await ws.send_raw(json.dumps({"sid": ws.sid, "token": ws.token, "type": "chan_in", "data": "no channel"}))
    assert_error(await ws.expect(), "no channel was specified")
    await sse.send("chan_in", "no channel", channel="")
    assert_error(await sse.expect(), "no channel was specified")
    # nothing else was answered, and nothing was published in the lobby
    mark = await sse.nothing_before_chan_in(lobby)
    await ws.nothing_before(None, "chan_out", data=mark)
    mark = await ws.nothing_before_chan_in(lobby)
    await sse.nothing_before(None, "chan_out", data=mark)


async def test_forged_and_foreign_tokens_are_invalid(rt: Realtime) -> None:
    user = await rt.user()
    claims = jwt_claims(user.jwt)
    forged = [
        forge_jwt(claims),
        forge_jwt({**claims, "exp": 1}),
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + user.jwt.split(".")[1] + ".",  # alg none
        user.inner,
    ]
    other = await new_app(rt.http, rt.url)
    foreign = await register(rt.http, rt.url, other.pk)
    sse = await rt.sse()
    ws_pk = await rt.ws(query=f"?sbpk={rt.pk}")
    ws = await rt.ws()
    for bad in [*forged, foreign.jwt]:
        for client in (sse, ws_pk):
            await client.send("auth", bad, token=bad)
            assert_error(await client.expect(), "invalid token")
    for bad in forged:
        await ws.send("auth", bad, token=bad)
        assert_error(await ws.expect(), "invalid token")
    lobby = unique("lobby")
    await ws.send("join", lobby, token=forged[0])
    assert_error(await ws.expect(), "invalid token")


# --- limits -------------------------------------------------------------------------------


async def test_oversized_messages_are_refused(realtime_on: MakeRealtime, limits_server: Server) -> None:
    rt = await realtime_on(limits_server)
    lobby = unique("lobby")
    ws = await rt.ws(await rt.user(0), join=(lobby,))
    sse = await rt.sse(await rt.user(1), join=(lobby,))
    for size in (1500, 5000):  # over the limit; the second is also over the frame allowance
        await ws.send("chan_in", "x" * size, channel=lobby)
        assert_error(await ws.expect(), startswith="message too large")
    await sse.send("chan_in", "y" * 1500, channel=lobby)
    assert_error(await sse.expect(), startswith="message too large")
    r = await sse.post({"sid": sse.sid, "token": sse.token, "type": "chan_in", "channel": lobby, "data": "z" * 8000})
    assert r.status_code == 413, f"{r.status_code} {r.text!r}"
    assert r.text.endswith("\n"), repr(r.text)
    # none of them was published: a small message posted after them is the first one delivered
    await ws.nothing_before_chan_in(lobby, "small")
    await sse.nothing_before(None, "chan_out", data="small")
    await rt.ping()


async def test_a_flood_is_rate_limited_without_hurting_others(realtime_on: MakeRealtime, limits_server: Server) -> None:
    rt = await realtime_on(limits_server)
    flooder = await rt.ws()
    calm = await rt.ws()
    sse_flooder = await rt.sse()
    for i in range(120):
        await flooder.send("echo", f"f{i}")
    await asyncio.gather(*(sse_flooder.send("echo", f"s{i}") for i in range(80)))
    for i in range(5):
        await calm.send("echo", f"c{i}")
        assert (await calm.expect())["data"] == f"echo: c{i}"
    for client in (flooder, sse_flooder):
        assert_error(await client.expect("error"), startswith="rate limit exceeded")
    # every flood frame is answered before a later echo (one socket's frames are handled in
    # order); that echo is itself refused until the bucket has refilled, so it is sent again
    deadline = time.monotonic() + TIMEOUT
    while True:
        await flooder.send("echo", "end")
        try:
            await flooder.expect("echo", timeout=0.5, data="echo: end")
            break
        except AssertionError:
            assert time.monotonic() < deadline, "the flooder's echo was never answered again"
    echoed = [e for e in flooder.log if e["type"] == "echo" and e["data"].startswith("echo: f")]
    assert 20 <= len(echoed) < 120, f"{len(echoed)} of 120 echoes answered at 20/s"
    assert not [e for e in calm.log if e["type"] == "error"], calm.log
    await rt.ping()


async def test_a_slow_subscriber_is_cut_off_without_delaying_others(
    realtime_on: MakeRealtime, slow_server: Server
) -> None:
    rt = await realtime_on(slow_server)
    lobby = unique("lobby")
    fast_user, slow_user = await rt.user(0), await rt.user(1)
    fast = await rt.ws(fast_user, join=(lobby,))
    slow = WSClient(slow_server.ws_url)
    rt.track(slow)
    # unread frames stay in small kernel buffers: no read-ahead, no compression to shrink them
    await slow.open(read=False, max_queue=2, rcvbuf=4096, compression=None)
    assert slow.ws is not None
    sid = json.loads(await slow.ws.recv())["data"]
    await slow.ws.send(json.dumps({"sid": sid, "token": None, "type": "auth", "data": slow_user.jwt}))
    assert json.loads(await slow.ws.recv())["type"] == "token"
    await slow.ws.send(json.dumps({"sid": sid, "token": slow_user.inner, "type": "join", "data": lobby}))
    assert json.loads(await slow.ws.recv())["type"] == "joined"
    await rt.presence(fast, lobby, "2", timeout=0)
    # ping-pong: each 60 KB message must reach the fast member before the next one is sent
    data = base64.b64encode(os.urandom(45_000)).decode()
    worst = 0.0
    for i in range(SLOW_FLOOD):
        start = time.monotonic()
        await fast.send("chan_in", f"{i}:{data}", channel=lobby)
        await fast.expect("chan_out", data=f"{i}:{data}")
        worst = max(worst, time.monotonic() - start)
    fast.clear()
    assert worst < 2.0, f"a message took {worst:.2f}s to reach the fast member"
    # the slow member no longer counts once it is cut off, without ever reading
    await rt.presence(fast, lobby, "1")
    # when it reads at last, the socket ends (with the reason as its last frame)
    frames: list[str] = []
    try:
        async with asyncio.timeout(10):
            async for frame in slow.ws:
                frames.append(str(frame))
    except websockets.ConnectionClosed:
        pass
    assert slow.ws.close_code is not None, "the slow socket was not closed"
    assert len(frames) < SLOW_FLOOD, f"the slow member got all {len(frames)} messages"
    assert_error(json.loads(frames[-1]))
    await fast.send("echo", "still fast")
    assert (await fast.expect("echo"))["data"] == "echo: still fast"
    await rt.ping()


async def _admitted(rt: Realtime, kind: str) -> SSEClient | WSClient:
    """A connection, once the previous test's connections have been released."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            return await (rt.ws() if kind == "ws" else rt.sse())
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_connection_limit_on_ws(realtime_on: MakeRealtime, connlimit_server: Server) -> None:
    rt = await realtime_on(connlimit_server)
    first = await _admitted(rt, "ws")
    await _admitted(rt, "sse")
    third = WSClient(connlimit_server.ws_url)
    rt.track(third)
    await third.open(read=False)
    assert third.ws is not None
    assert_error(json.loads(await asyncio.wait_for(third.ws.recv(), TIMEOUT)), "connection limit reached")
    try:
        await asyncio.wait_for(third.ws.recv(), TIMEOUT)
        raise AssertionError("the refused socket stayed open")
    except websockets.ConnectionClosed:
        pass
    # a freed slot is usable again
    await first.close()
    deadline = time.monotonic() + TIMEOUT
    while True:
        again = WSClient(connlimit_server.ws_url)
        rt.track(again)
        await again.open(read=False)
        assert again.ws is not None
        if json.loads(await again.ws.recv())["type"] == "init":
            break
        assert time.monotonic() < deadline, "the closed connection's slot was never freed"
        await again.close()
        await asyncio.sleep(0.1)
    await rt.ping()


async def test_connection_limit_on_sse(realtime_on: MakeRealtime, connlimit_server: Server) -> None:
    rt = await realtime_on(connlimit_server)
    await _admitted(rt, "sse")
    await _admitted(rt, "ws")
    # spec 04 §9: the new connection gets the error envelope, then the stream ends
    async with rt.http.stream("GET", rt.url + "/sse/connect", params={"sbpk": rt.pk}) as r:
        assert r.status_code == 200, f"refused SSE connection answered {r.status_code}: {await r.aread()!r}"
        body = await asyncio.wait_for(r.aread(), TIMEOUT)
    assert body.startswith(b"data: "), body
    assert_error(json.loads(body.split(b"\n\n")[0][6:]), "connection limit reached")
    await rt.ping()


async def test_closed_connections_leave_no_subscription(rt: Realtime) -> None:
    lobby = unique("lobby")
    watcher = await rt.sse(await rt.user(0))
    ws = await rt.ws(await rt.user(1), join=(lobby,))
    sse = await rt.sse(await rt.user(2), join=(lobby,))
    await rt.presence(watcher, lobby, "2", timeout=0)
    await ws.close()
    await sse.close()
    await rt.presence(watcher, lobby, "0")
    await watcher.join(lobby)
    await watcher.send("chan_in", "alone", channel=lobby)
    await watcher.expect("chan_out", data="alone")
    await rt.presence(watcher, lobby, "1", timeout=0)
    await rt.ping()


# --- Redis outage -------------------------------------------------------------------------


async def test_redis_outage_heals_without_restart(
    realtime_on: MakeRealtime, outage_server: Server, redis_url: str
) -> None:
    rt = await realtime_on(outage_server)
    lobby = unique("lobby")
    user_a, user_b = await rt.user(0), await rt.user(1)
    a = await rt.sse(user_a, join=(lobby,))
    b = await rt.ws(user_b, join=(lobby,))
    await a.send("chan_in", "before", channel=lobby)
    await b.expect("chan_out", data="before")
    killed = await kill_redis_clients(redis_url, outage_server.pid)
    assert killed >= 1, "found no Redis connection of the server to kill"
    cut = time.monotonic()
    await rt.ping()
    r = await rt.http.get(f"{rt.url}/db/{unique('notes')}", headers=rt.headers(user_a.jwt))
    assert r.status_code == 200, f"/db answered {r.status_code} during the outage: {r.text}"
    n = 0
    while True:
        n += 1
        await a.send("chan_in", f"after-{n}", channel=lobby)
        try:
            await b.expect("chan_out", timeout=0.5, data=f"after-{n}")
            break
        except AssertionError:
            assert time.monotonic() - cut < 6.0, f"no delivery {time.monotonic() - cut:.1f}s after the cut"
    a.clear()
    await a.send("chan_in", "settled", channel=lobby)
    await b.expect("chan_out", data="settled")
    await a.expect("chan_out", data="settled")
    await rt.presence(a, lobby, "2")
    await rt.ping()
