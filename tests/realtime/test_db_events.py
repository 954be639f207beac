"""Spec 10 items 36-42: database change events and HTTP publish, on both buses."""

from __future__ import annotations

import json

from tests.realtime.clients import SSEClient, WSClient
from tests.realtime.support import PASSWORD, Realtime, User, login, unique, unique_email


async def _create(rt: Realtime, jwt: str, col: str, doc: dict[str, object]) -> dict[str, object]:
    r = await rt.http.post(f"{rt.url}/db/{col}", json=doc, headers=rt.headers(jwt))
    assert r.status_code in (200, 201), f"POST /db/{col} answered {r.status_code}: {r.text}"
    created: dict[str, object] = r.json()
    return created


async def _nothing_before_write(rt: Realtime, member: SSEClient | WSClient, writer: User, col: str) -> None:
    """Nothing (but ``joined``) reaches ``member`` before the event of a write ``writer`` makes now
    in ``col`` (one ``member`` may read): one collection's events come in write order."""
    mark = unique("mark")
    await member.nothing_before(
        _create(rt, writer.jwt, col, {"mark": mark}),
        "db_created",
        where=lambda env: json.loads(env["data"]).get("mark") == mark,
        channel=f"db-{col}",
    )


async def test_r36_db_created_reaches_members(rt: Realtime) -> None:
    col = unique("tasks") + "_774_"
    member = await rt.sse(await rt.user(0), join=(f"db-{col}",))
    doc = await _create(rt, (await rt.user(1)).jwt, col, {"title": "t1", "done": False})
    got = await member.expect("db_created")
    assert got["channel"] == f"db-{col}", got
    data = json.loads(got["data"])
    assert data["id"] == doc["id"] and data["title"] == "t1", data
    assert got["token"] == "" and got["auth"]["email"] == "", got


async def test_r37_update_and_inc_yield_db_updated(rt: Realtime) -> None:
    col = unique("tasks") + "_774_"
    writer = await rt.user(1)
    member = await rt.ws(await rt.user(0), join=(f"db-{col}",))
    doc = await _create(rt, writer.jwt, col, {"title": "t1", "n": 1, "keep": "me"})
    await member.expect("db_created")
    r = await rt.http.put(f"{rt.url}/db/{col}/{doc['id']}", json={"title": "t2"}, headers=rt.headers(writer.jwt))
    assert r.status_code == 200, r.text
    data = json.loads((await member.expect("db_updated"))["data"])
    assert data["id"] == doc["id"] and data["title"] == "t2", data
    assert data["keep"] == "me" and data["n"] == 1, f"not the full document: {data}"
    r = await rt.http.put(
        f"{rt.url}/inc/{col}/{doc['id']}", json={"field": "n", "range": 2}, headers=rt.headers(writer.jwt)
    )
    assert r.status_code == 200, r.text
    data = json.loads((await member.expect("db_updated"))["data"])
    assert data["id"] == doc["id"] and data["n"] == 3 and data["title"] == "t2", data


async def test_r38_delete_yields_db_deleted_with_the_id(rt: Realtime) -> None:
    col = unique("tasks") + "_774_"
    writer = await rt.user(1)
    member = await rt.sse(await rt.user(0), join=(f"db-{col}",))
    doc = await _create(rt, writer.jwt, col, {"title": "gone"})
    await member.expect("db_created")
    r = await rt.http.delete(f"{rt.url}/db/{col}/{doc['id']}", headers=rt.headers(writer.jwt))
    assert r.status_code == 200, r.text
    got = await member.expect("db_deleted")
    assert got["data"] == json.dumps(doc["id"]), got
    # a default-permission collection: the owner is allowed to read it, so the owner gets it
    own = unique("tasks")
    owner = await rt.sse(writer, join=(f"db-{own}",))
    mine = await _create(rt, writer.jwt, own, {"title": "mine"})
    await owner.expect("db_created")
    r = await rt.http.delete(f"{rt.url}/db/{own}/{mine['id']}", headers=rt.headers(writer.jwt))
    assert r.status_code == 200, r.text
    assert (await owner.expect("db_deleted"))["data"] == json.dumps(mine["id"])


async def test_r39_default_permission_events_stay_in_the_account(rt: Realtime) -> None:
    col = unique("tasks")
    x1 = await rt.new_user()
    y = await rt.new_user()
    email = unique_email("x2")
    r = await rt.http.post(
        f"{rt.url}/account/users", json={"email": email, "password": PASSWORD}, headers=rt.headers(x1.jwt)
    )
    assert r.status_code == 200, f"POST /account/users answered {r.status_code}: {r.text}"
    x2 = await login(rt.http, rt.url, rt.pk, email)
    assert x2.account_id == x1.account_id != y.account_id
    member = await rt.sse(x1, join=(f"db-{col}",))
    other = await _create(rt, y.jwt, col, {"who": "y"})
    ours = await _create(rt, x2.jwt, col, {"who": "x2"})
    got = await member.expect("db_created")
    assert json.loads(got["data"])["id"] == ours["id"], f"got account Y's document {other['id']}: {got}"
    await _nothing_before_write(rt, member, x1, col)
    # and the other way round: Y's own subscription sees its document only
    y_member = await rt.sse(y, join=(f"db-{col}",))
    await _create(rt, x1.jwt, col, {"who": "x1"})
    await member.expect("db_created")
    await _nothing_before_write(rt, y_member, y, col)


async def test_r40_bulk_create_yields_one_event_per_document(rt: Realtime) -> None:
    col = unique("tasks") + "_774_"
    member = await rt.sse(await rt.user(0), join=(f"db-{col}",))
    writer = await rt.user(1)
    docs = [{"i": i} for i in range(3)]
    r = await rt.http.post(f"{rt.url}/db/{col}?bulk=1", json=docs, headers=rt.headers(writer.jwt))
    assert r.status_code in (200, 201), r.text
    got = sorted([json.loads((await member.expect("db_created"))["data"])["i"] for _ in docs])
    assert got == [0, 1, 2]
    await _nothing_before_write(rt, member, writer, col)


async def test_r41_publish_and_publish_message_deliver_custom_types(rt: Realtime) -> None:
    channel = unique("c")
    user = await rt.user(0)
    member = await rt.sse(await rt.user(1), join=(channel,))
    for path in ("/publish", "/publish-message"):
        for token in (user.jwt, rt.app.root):
            r = await rt.http.post(
                rt.url + path, json={"channel": channel, "type": "custom", "data": "x"}, headers=rt.headers(token)
            )
            assert r.status_code == 200, f"{path} answered {r.status_code}: {r.text}"
            assert r.headers["content-type"] == "application/json" and r.text == "true", r.text
            got = await member.expect("custom")
            assert (got["data"], got["channel"], got["sid"]) == ("x", channel, "user-msg"), got
            assert got["token"] == "" and got["auth"]["email"] == "", got


async def test_r42_publish_turns_object_data_into_json_text(rt: Realtime) -> None:
    channel = unique("c")
    member = await rt.ws(await rt.user(0), join=(channel,))
    payload = {"a": 1, "b": [True, None, "é"]}
    r = await rt.http.post(
        rt.url + "/publish",
        json={"channel": channel, "type": "custom", "data": payload},
        headers=rt.headers((await rt.user(1)).jwt),
    )
    assert r.status_code == 200 and r.text == "true", r.text
    got = await member.expect("custom")
    assert isinstance(got["data"], str) and json.loads(got["data"]) == payload, got
