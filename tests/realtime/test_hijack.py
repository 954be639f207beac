"""Connection hijack: a realtime connection obeys only its own credentials (issue 13, item 1).

Sids are public inside a channel (``joined`` carries the joiner's sid, ``chan_out`` the sender's),
so a command naming a sid must prove it comes from that connection's owner: the public key of
the app it was opened in and, once it authenticated, its token. Each attack below is made by
someone who really saw the victim's sid, and refused; "nothing was delivered" is proved by a
legitimate message sent afterwards arriving first (never by waiting).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.realtime.clients import TIMEOUT, Inbox, SSEClient, WSClient, assert_error
from tests.realtime.conftest import MakeRealtime
from tests.realtime.support import Realtime, Server, User, login, new_app, register, unique


async def post(rt: Realtime, body: dict[str, Any], pk: str, token: str = "", url: str = "") -> httpx.Response:
    """``POST /sse/msg`` as anyone: a public key, optionally ``Authorization: Bearer <token>``."""
    return await rt.http.post((url or rt.url) + "/sse/msg", json=body, headers=rt.headers(token, pk))


def cmd(sid: str, type: str, data: str = "", channel: str = "", token: str = "") -> dict[str, str]:
    return {"sid": sid, "type": type, "data": data, "channel": channel, "token": token}


def refused(r: httpx.Response, status: int, words: str) -> None:
    assert r.status_code == status, f"/sse/msg answered {r.status_code}: {r.text!r}"
    assert words in r.text and r.text.endswith("\n") and r.text.count("\n") == 1, repr(r.text)


async def first_chan_out(client: Inbox, marker: str, before: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read up to the ``chan_out`` of ``marker``: what came first (``joined`` aside) must be ``before``."""
    earlier: list[dict[str, Any]] = []
    while True:
        env = await client.next()
        if env["type"] == "chan_out" and env["data"] == marker:
            break
        if env["type"] != "joined":
            earlier.append(env)
    assert [e["type"] for e in earlier] == list(before), f"{client.name}: before {marker!r} came {earlier}"
    return env


async def victim_and_witness(rt: Realtime, channel: str) -> tuple[SSEClient, User, SSEClient, User]:
    """The attacker joins first, so it is told the victim's sid by the ``joined`` broadcast."""
    attacker_user, victim_user = await rt.new_user(), await rt.new_user()
    attacker = await rt.sse(attacker_user, join=(channel,))
    victim = await rt.sse(victim_user, join=(channel,))
    seen = await attacker.expect("joined", data=victim.sid)
    assert seen["channel"] == channel
    return victim, victim_user, attacker, attacker_user


async def prove_nothing_delivered(
    victim: SSEClient | WSClient, witness: Inbox, victim_user: User, channel: str
) -> None:
    """The owner still sends; its message is the first thing the channel and the victim see."""
    marker = unique("legit")
    await victim.send("chan_in", marker, channel=channel)
    got = await first_chan_out(witness, marker)
    assert got["sid"] == victim.sid and got["auth"]["userId"] == victim_user.user_id, got
    await first_chan_out(victim, marker, before=("ok",))


async def test_sse_msg_from_another_apps_public_key_is_refused(rt: Realtime) -> None:
    lobby = unique("lobby")
    victim, victim_user, witness, _ = await victim_and_witness(rt, lobby)
    other = await new_app(rt.http, rt.url)
    outsider = await register(rt.http, rt.url, other.pk)
    for token in ("", outsider.jwt, victim_user.jwt):  # even the victim's token is no good with another app's key
        for kind, data, channel in (("chan_in", "evil", lobby), ("echo", "evil", ""), ("join", "trap", "")):
            r = await post(rt, cmd(victim.sid, kind, data, channel, token), other.pk, token)
            refused(r, 403, "another app")
    await prove_nothing_delivered(victim, witness, victim_user, lobby)


async def test_sse_msg_with_another_users_token_is_refused(rt: Realtime) -> None:
    lobby, trap = unique("lobby"), unique("trap")
    victim, victim_user, attacker, attacker_user = await victim_and_witness(rt, lobby)
    evil = cmd(victim.sid, "chan_in", "evil", lobby, attacker_user.jwt)
    refused(await post(rt, evil, rt.pk, attacker_user.jwt), 403, "another user")
    refused(await post(rt, evil, rt.pk), 403, "another user")  # only the token field
    refused(await post(rt, {**evil, "token": ""}, rt.pk, attacker_user.jwt), 403, "another user")  # only the header
    inner = {**evil, "token": attacker_user.inner}
    refused(await post(rt, inner, rt.pk), 403, "another user")
    # the victim's token in one place does not excuse a foreign one in the other
    refused(await post(rt, {**evil, "token": victim_user.jwt}, rt.pk, attacker_user.jwt), 403, "another user")
    # nor may the attacker re-authenticate the victim's connection as itself, or move it
    rebind = cmd(victim.sid, "auth", attacker_user.jwt, token=attacker_user.jwt)
    refused(await post(rt, rebind, rt.pk, attacker_user.jwt), 403, "another user")
    move = cmd(victim.sid, "join", trap, token=attacker_user.jwt)
    refused(await post(rt, move, rt.pk, attacker_user.jwt), 403, "another user")
    await prove_nothing_delivered(victim, attacker, victim_user, lobby)
    await rt.presence(attacker, trap, "0", timeout=0)


async def test_sse_msg_without_any_token_is_refused(rt: Realtime) -> None:
    lobby = unique("lobby")
    victim, victim_user, witness, _ = await victim_and_witness(rt, lobby)
    for kind, data, channel in (("chan_in", "evil", lobby), ("echo", "evil", ""), ("presence", lobby, "")):
        refused(await post(rt, cmd(victim.sid, kind, data, channel), rt.pk), 401, "send its session token")
    await prove_nothing_delivered(victim, witness, victim_user, lobby)


async def test_the_owner_may_use_any_of_its_own_tokens(rt: Realtime) -> None:
    lobby = unique("lobby")
    victim, victim_user, witness, _ = await victim_and_witness(rt, lobby)
    again = await login(rt.http, rt.url, rt.pk, victim_user.email)  # a second session of the same user
    for n, (header, field) in enumerate(
        ((victim_user.jwt, ""), ("", victim_user.jwt), ("", victim_user.inner), (again.jwt, again.jwt))
    ):
        r = await post(rt, cmd(victim.sid, "chan_in", f"own-{n}", lobby, field), rt.pk, header)
        assert r.status_code == 200 and r.text == "true", f"{n}: {r.status_code} {r.text!r}"
        got = await witness.expect("chan_out", data=f"own-{n}")
        assert got["sid"] == victim.sid and got["auth"]["userId"] == victim_user.user_id, got
        await first_chan_out(victim, f"own-{n}", before=("ok",))
    await prove_nothing_delivered(victim, witness, victim_user, lobby)


async def test_a_hijacked_message_triggers_no_function(rt: Realtime) -> None:
    lobby, out = unique("fnlobby"), unique("fnout")
    code = f'function handle(channel, type, data) {{ publish("{out}", "ran", data); }}'
    r = await rt.http.post(
        rt.url + "/fn/add",
        json={"name": unique("hijack"), "trigger": lobby, "code": code},
        headers=rt.headers(rt.app.root),
    )
    assert r.status_code == 200, f"/fn/add answered {r.status_code}: {r.text}"
    victim, victim_user, attacker, attacker_user = await victim_and_witness(rt, lobby)
    await attacker.join(out)
    evil = cmd(victim.sid, "chan_in", json.dumps({"m": "evil"}), lobby, attacker_user.jwt)
    refused(await post(rt, evil, rt.pk, attacker_user.jwt), 403, "another user")
    await victim.send("chan_in", json.dumps({"m": "legit"}), channel=lobby)
    ran = await attacker.expect("ran", channel=out, timeout=TIMEOUT * 2)
    assert json.loads(ran["data"]) == {"m": "legit"}, f"the first function run was for {ran}"
    assert ran["auth"]["userId"] == victim_user.user_id, ran


async def test_websocket_commands_naming_another_sid_are_refused(rt: Realtime) -> None:
    lobby = unique("lobby")
    victim, victim_user, witness, _ = await victim_and_witness(rt, lobby)
    attacker = await rt.ws(await rt.new_user(), join=(lobby,))
    await witness.send("chan_in", "hello", channel=lobby)  # ...the attacker learns the witness's sid
    learned = await attacker.expect("chan_out", data="hello")
    await first_chan_out(witness, "hello", before=("ok",))
    await first_chan_out(victim, "hello")
    for sid in (victim.sid, learned["sid"], "sb"):
        for kind, data, channel in (("chan_in", "evil", lobby), ("echo", "evil", None), ("join", "trap", None)):
            await attacker.send_raw(
                json.dumps({"sid": sid, "token": attacker.token, "type": kind, "data": data, "channel": channel})
            )
            assert_error(await attacker.expect(), startswith="a socket can only command its own connection")
    await prove_nothing_delivered(victim, witness, victim_user, lobby)
    await attacker.expect("chan_out", sid=victim.sid)
    await attacker.send("echo", "still mine")
    assert (await attacker.expect("echo"))["data"] == "echo: still mine"


async def test_sse_msg_cannot_command_a_websocket_of_another_user(rt: Realtime) -> None:
    lobby = unique("lobby")
    victim_user = await rt.new_user()
    attacker = await rt.sse(await rt.new_user(), join=(lobby,))
    victim = await rt.ws(victim_user, join=(lobby,))
    await victim.send("chan_in", "hi", channel=lobby)
    seen = await attacker.expect("chan_out", data="hi")
    await first_chan_out(victim, "hi", before=("ok",))
    other = await new_app(rt.http, rt.url)
    refused(await post(rt, cmd(seen["sid"], "chan_in", "evil", lobby), other.pk), 403, "another app")
    evil = cmd(seen["sid"], "chan_in", "evil", lobby, attacker.token)
    refused(await post(rt, evil, rt.pk, attacker.token), 403, "another user")
    marker = unique("legit")
    await victim.send("chan_in", marker, channel=lobby)
    await first_chan_out(attacker, marker)
    await first_chan_out(victim, marker, before=("ok",))


async def test_the_system_sid_publishes_as_the_caller(rt: Realtime) -> None:
    lobby = unique("lobby")
    caller = await rt.new_user()
    member = await rt.sse(await rt.new_user(), join=(lobby,))
    r = await post(rt, cmd("sb", "chan_in", "evil", lobby), rt.pk)
    refused(r, 401, "invalid token")
    r = await post(rt, cmd("sb", "chan_in", "system", lobby, caller.jwt), rt.pk, caller.jwt)
    assert r.status_code == 200 and r.text == "true", f"{r.status_code} {r.text!r}"
    got = await first_chan_out(member, "system")
    assert got["sid"] == "sb" and got["auth"]["userId"] == caller.user_id and got["token"] == "", got


async def test_a_routed_hijack_is_refused_by_the_owning_process(
    realtime_on: MakeRealtime, cluster: tuple[Server, Server]
) -> None:
    p1, p2 = cluster
    rt = await realtime_on(p1)
    lobby = unique("lobby")
    victim, victim_user, attacker, attacker_user = await victim_and_witness(rt, lobby)  # both streams on P1
    other = await new_app(rt.http, rt.url)
    evil = cmd(victim.sid, "chan_in", "evil", lobby, attacker_user.jwt)
    attempts: list[tuple[dict[str, str], str, str]] = [
        (evil, rt.pk, attacker_user.jwt),
        ({**evil, "token": ""}, rt.pk, ""),
        ({**evil, "token": ""}, other.pk, ""),
        ({**evil, "token": victim_user.jwt}, rt.pk, attacker_user.jwt),
        (cmd(victim.sid, "echo", "evil", token=attacker_user.jwt), rt.pk, attacker_user.jwt),
    ]
    for body, pk, token in attempts:
        # P2 cannot tell: it answers as for an unknown sid and P1, which holds the stream, refuses
        r = await post(rt, body, pk, token, url=p2.url)
        assert r.status_code == 200 and r.text == "true", f"{r.status_code} {r.text!r}"
    for body, pk, token in attempts:  # the same attempts straight at P1 are refused outright
        assert (await post(rt, body, pk, token)).status_code in (401, 403)
    marker = unique("legit")
    await victim.send("chan_in", marker, channel=lobby, via=p2.url)  # the owner, through P2
    got = await first_chan_out(attacker, marker)
    assert got["sid"] == victim.sid and got["auth"]["userId"] == victim_user.user_id, got
    await first_chan_out(victim, marker, before=("ok",))
