"""Spec 10 items 26-27: two server processes on one PostgreSQL database and one Redis.

Two processes on one SQLite data directory are not a supported deployment, so these run only
when both ``SB_TEST_PG_URL`` and ``SB_TEST_REDIS_URL`` are set.
"""

from __future__ import annotations

from tests.realtime.conftest import MakeRealtime
from tests.realtime.support import Realtime, Server, unique


async def _two_sides(realtime_on: MakeRealtime, cluster: tuple[Server, Server]) -> tuple[Realtime, Server]:
    p1, p2 = cluster
    return await realtime_on(p1), p2


async def test_r26_sse_msg_posted_to_the_other_process_reaches_the_stream(
    realtime_on: MakeRealtime, cluster: tuple[Server, Server]
) -> None:
    rt, p2 = await _two_sides(realtime_on, cluster)
    lobby = unique("lobby")
    a = await rt.sse(await rt.user(0), join=(lobby,))  # stream held by P1
    b = await rt.sse(await rt.user(1), join=(lobby,), url=p2.url)
    await a.send("echo", "routed", via=p2.url)
    assert (await a.expect("echo"))["data"] == "echo: routed"
    await a.send("chan_in", "via-p2", channel=lobby, via=p2.url)
    await a.expect("ok", data="")
    got = await a.expect("chan_out", data="via-p2")
    assert got["sid"] == a.sid and got["channel"] == lobby, got
    await b.expect("chan_out", data="via-p2", sid=a.sid)
    # and the other way round: B's stream lives on P2, its command goes to P1
    await b.send("chan_in", "via-p1", channel=lobby, via=rt.url)
    await b.expect("ok", data="")
    await b.expect("chan_out", data="via-p1", sid=b.sid)
    await a.expect("chan_out", data="via-p1", sid=b.sid)


async def test_r27_members_on_both_processes_receive_chan_out(
    realtime_on: MakeRealtime, cluster: tuple[Server, Server]
) -> None:
    rt, p2 = await _two_sides(realtime_on, cluster)
    lobby = unique("lobby")
    a = await rt.sse(await rt.user(0), join=(lobby,))
    b = await rt.sse(await rt.user(1), join=(lobby,), url=p2.url)
    c = await rt.ws(await rt.user(2), join=(lobby,), url=p2.ws_url)
    await a.send("chan_in", "from-p1", channel=lobby)
    for member in (a, b, c):
        await member.expect("chan_out", data="from-p1", sid=a.sid)
    await b.send("chan_in", "from-p2", channel=lobby)
    for member in (a, b, c):
        await member.expect("chan_out", data="from-p2", sid=b.sid)
    await c.send("chan_in", "from-p2-ws", channel=lobby)
    for member in (a, b, c):
        await member.expect("chan_out", data="from-p2-ws", sid=c.sid)
    await rt.presence(a, lobby, "3")
    await rt.presence(b, lobby, "3")
    await c.close()
    await rt.presence(a, lobby, "2")
