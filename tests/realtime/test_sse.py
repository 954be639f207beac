"""Spec 10, realtime over SSE: items 1-25 and 28, on the in-process bus and on Redis."""

from __future__ import annotations

import asyncio
import time

from tests.realtime.clients import SSEClient
from tests.realtime.support import Realtime, forge_jwt, jwt_claims, unique


async def test_r01_connect_answers_an_event_stream(rt: Realtime) -> None:
    async with rt.http.stream("GET", rt.url + "/sse/connect", params={"sbpk": rt.pk}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream", r.headers
        assert r.headers["cache-control"] == "no-cache", r.headers


async def test_r02_first_event_is_init_with_the_seven_keys(rt: Realtime) -> None:
    sse = await rt.sse()
    assert sse.log[0]["type"] == "init" and sse.log[0]["data"], sse.log[0]
    assert sse.log[0]["data"] == sse.sid
    await sse.send("echo", "x")
    await sse.expect("echo")  # expect() checks the seven keys of every envelope it reads
    assert not sse.problems, sse.problems


async def test_r03_connect_without_public_key_is_401(rt: Realtime) -> None:
    r = await rt.http.get(rt.url + "/sse/connect")
    assert r.status_code == 401
    assert r.text == "invalid StaticBackend public key\n"


async def test_r04_public_key_from_header_or_cookie(rt: Realtime) -> None:
    for request in ({"headers": {"SB-PUBLIC-KEY": rt.pk}}, {"headers": {"Cookie": f"pk={rt.pk}"}}):
        sse = SSEClient(rt.url, rt.pk)
        rt.track(sse)
        await sse.open(**request)
        assert sse.sid


async def test_r05_two_connections_get_different_sids(rt: Realtime) -> None:
    a, b = await rt.sse(), await rt.sse()
    assert a.sid and b.sid and a.sid != b.sid


async def test_r06_sse_msg_answers_json_true(rt: Realtime) -> None:
    sse = await rt.sse()
    r = await sse.post({"sid": sse.sid, "type": "echo", "data": "x", "channel": "", "token": ""})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json", r.headers
    assert r.text == "true"


async def test_r07_sse_msg_with_malformed_json_is_400(rt: Realtime) -> None:
    sse = await rt.sse()
    r = await sse.post(b'{"sid": "' + sse.sid.encode() + b'", "type": ')
    assert r.status_code == 400, r.text


async def test_r08_auth_answers_the_jwt(rt: Realtime) -> None:
    user = await rt.user()
    sse = await rt.sse()
    await sse.send("auth", user.jwt, token=user.jwt)
    reply = await sse.expect("token")
    assert reply["data"] == user.jwt


async def test_r09_auth_with_a_bad_token_is_an_error(rt: Realtime) -> None:
    user = await rt.user()
    sse = await rt.sse()
    forged = forge_jwt(jwt_claims(user.jwt))
    tampered = user.jwt[:-2] + ("AA" if not user.jwt.endswith("AA") else "BB")
    for bad in ("garbage", forged, tampered):
        await sse.send("auth", bad, token=bad)
        reply = await sse.expect()
        assert reply["type"] == "error" and reply["data"] == "invalid token", (bad, reply)


async def test_r10_echo_goes_to_the_sender_only(rt: Realtime) -> None:
    a, b = await rt.sse(), await rt.sse()
    await a.send("echo", "hello")
    reply = await a.expect("echo")
    assert reply["data"] == "echo: hello"
    await b.nothing_before_echo()  # b's own echo, answered after a's, is the first thing b gets


async def test_r11_join_answers_ok_before_joined(rt: Realtime) -> None:
    lobby = unique("lobby")
    sse = await rt.sse(await rt.user())
    await sse.send("join", lobby)
    await sse.expect("joined", data=sse.sid, channel=lobby)
    types = [e["type"] for e in sse.log]
    assert "ok" in types and types.index("ok") < types.index("joined"), sse.log
    ok = sse.log[types.index("ok")]
    assert ok["data"] == lobby, ok


async def test_r12_every_member_sees_joined_within_one_second(rt: Realtime) -> None:
    lobby = unique("lobby")
    s1 = await rt.sse(await rt.user(0), join=(lobby,))
    await s1.expect("joined", data=s1.sid)
    s2 = await rt.sse(await rt.user(1))
    start = time.monotonic()
    await s2.send("join", lobby)
    for member in (s1, s2):
        left = 1.0 - (time.monotonic() - start)
        got = await member.expect("joined", timeout=left, data=s2.sid)
        assert got["channel"] == lobby, got


async def test_r13_chan_in_reaches_every_member(rt: Realtime) -> None:
    lobby = unique("lobby")
    a = await rt.sse(await rt.user(0), join=(lobby,))
    b = await rt.sse(await rt.user(1), join=(lobby,))
    await a.send("chan_in", "D", channel=lobby)
    await a.expect("ok", data="")
    for member in (a, b):
        got = await member.expect("chan_out", data="D")
        assert got["channel"] == lobby and got["sid"] == a.sid, got


async def test_r14_non_members_receive_nothing(rt: Realtime) -> None:
    lobby, other = unique("lobby"), unique("other")
    a = await rt.sse(await rt.user(0), join=(lobby,))
    c = await rt.sse(await rt.user(1), join=(other,))
    await a.send("chan_in", "only-lobby", channel=lobby)
    await a.expect("chan_out", data="only-lobby")
    # a's next message, into c's channel, is published after the lobby's: the first c gets
    await c.nothing_before(a.send("chan_in", "in-other", channel=other), "chan_out", data="in-other")


async def test_r15_chan_in_without_channel_is_refused_and_not_published(rt: Realtime) -> None:
    lobby = unique("lobby")
    a = await rt.sse(await rt.user(0), join=(lobby,))
    b = await rt.sse(await rt.user(1), join=(lobby,))
    await a.send("chan_in", "lost")
    assert (await a.expect("error"))["data"] == "no channel was specified"
    r = await a.post({"sid": a.sid, "token": a.token, "type": "chan_in", "data": "lost"})  # no channel key
    assert r.status_code == 200 and r.text == "true"
    assert (await a.expect("error"))["data"] == "no channel was specified"
    mark = await a.nothing_before_chan_in(lobby)
    await b.nothing_before(None, "chan_out", data=mark)


async def test_r16_chan_in_to_a_database_channel_is_refused(rt: Realtime) -> None:
    a = await rt.sse(await rt.user())
    for channel in ("db-tasks", "DB-tasks"):
        await a.send("chan_in", "x", channel=channel)
        reply = await a.expect()
        assert reply["type"] == "error" and reply["data"] == "you cannot write to database channel", reply


async def test_r17_unknown_type_is_an_error(rt: Realtime) -> None:
    a = await rt.sse(await rt.user())
    await a.send("foo", "x")
    reply = await a.expect()
    assert reply["type"] == "error" and reply["data"] == "foo command not found", reply
    await a.send("", "x")
    reply = await a.expect()
    assert reply["type"] == "error" and reply["data"] == " command not found", reply


async def test_r18_unknown_sid_produces_nothing(rt: Realtime) -> None:
    lobby = unique("lobby")
    a = await rt.sse(await rt.user(0), join=(lobby,))
    b = await rt.sse(await rt.user(1), join=(lobby,))
    for sid in ("nope", "pUnknown0.0f0e0d0c-0000-0000-0000-000000000000", a.sid + "x"):
        await a.send("echo", "x", sid=sid)
        await a.send("chan_in", "x", channel=lobby, sid=sid)
    mark = await a.nothing_before_chan_in(lobby)
    await b.nothing_before(None, "chan_out", data=mark)


async def test_r19_presence_counts_joined_connections(rt: Realtime) -> None:
    lobby = unique("lobby")
    a = await rt.sse(await rt.user(0), join=(lobby,))
    await rt.sse(await rt.user(1), join=(lobby,))
    await rt.presence(a, lobby, "2", timeout=0)
    await rt.presence(a, unique("unused"), "0", timeout=0)


async def test_r20_presence_never_reads_cache_keys(rt: Realtime) -> None:
    a = await rt.sse(await rt.user())
    for key in ("dev-root-token", rt.app.root, a.token):
        await a.send("presence", key)
        reply = await a.expect("presence")
        assert reply["data"] == "0", reply


async def test_r21_closing_ends_subscriptions(rt: Realtime) -> None:
    lobby = unique("lobby")
    a = await rt.sse(await rt.user(0), join=(lobby,))
    b = await rt.sse(await rt.user(1), join=(lobby,))
    await rt.presence(a, lobby, "2", timeout=0)
    await b.close()
    await rt.presence(a, lobby, "1")
    await a.send("chan_in", "after-close", channel=lobby)
    await a.expect("chan_out", data="after-close")


async def test_r22_chan_out_carries_no_token_and_no_email(rt: Realtime) -> None:
    lobby = unique("lobby")
    sender = await rt.user(0)
    a = await rt.sse(sender, join=(lobby,))
    b = await rt.sse(await rt.user(1), join=(lobby,))
    await a.send("chan_in", "hygiene", channel=lobby)
    for member in (a, b):
        got = await member.expect("chan_out", data="hygiene")
        assert got["token"] == "", got
        assert got["auth"]["email"] == "", got
        assert got["auth"]["userId"] == sender.user_id and got["auth"]["accountId"] == sender.account_id, got


async def test_r23_json_data_is_delivered_byte_for_byte(rt: Realtime) -> None:
    lobby = unique("lobby")
    a = await rt.sse(await rt.user(0), join=(lobby,))
    b = await rt.sse(await rt.user(1), join=(lobby,))
    data = '{ "from":"a@x",  "body":"hi \\u00e9 é \\"q\\"\\n", "n":[1, 2.50, 1e3, {"x":null}] }'
    await a.send("chan_in", data, channel=lobby)
    for member in (a, b):
        got = await member.expect("chan_out")
        assert got["data"] == data


async def test_r24_order_of_one_sender_is_kept(rt: Realtime) -> None:
    lobby = unique("lobby")
    a = await rt.sse(await rt.user(0), join=(lobby,))
    b = await rt.sse(await rt.user(1), join=(lobby,))
    sent = [f"m{i}" for i in range(25)]
    for data in sent:
        await a.send("chan_in", data, channel=lobby)
    got = [(await b.expect("chan_out"))["data"] for _ in sent]
    assert got == sent


async def test_r25_join_or_chan_in_before_auth_is_refused(rt: Realtime) -> None:
    lobby = unique("lobby")
    member = await rt.sse(await rt.user(0), join=(lobby,))
    anon = await rt.sse()
    await anon.send("join", lobby)
    reply = await anon.expect()
    assert reply["type"] == "error" and reply["data"] == "invalid token", reply
    await anon.send("chan_in", "anon", channel=lobby, token="not-a-token")
    reply = await anon.expect()
    assert reply["type"] == "error" and reply["data"] == "invalid token", reply
    await rt.presence(member, lobby, "1", timeout=0)
    await member.nothing_before_chan_in(lobby)  # anon's message was not published before it


async def test_r28_idle_stream_gets_keepalive_comments(rt: Realtime) -> None:
    sse = await rt.sse()
    deadline = time.monotonic() + 5
    while not sse.comments and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert sse.comments, "no ':' keep-alive comment within 5 s (SB_SSE_KEEPALIVE_SECONDS=1)"
    assert all(c.startswith(b":") for c in sse.comments)
    assert not sse.problems, sse.problems
    await sse.send("echo", "still here")
    assert (await sse.expect("echo"))["data"] == "echo: still here"
