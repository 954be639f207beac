"""Database change events (spec 04 section 6.2, spec 03 sections 7-10), driven through the HTTP API
on every store kind: each successful write publishes exactly one event per document, in commit
order, on channel ``db-<collection as given>``; refused writes publish nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sbserver.services.events import DB_CREATED, DB_DELETED, DB_UPDATED, DbEvent
from tests.http.conftest import Server, server
from tests.http.doc_helpers import b64, create, root, unique_col
from tests.http.helpers import (
    _pg_session_ready,
    accounts_ab,
    assert_error,
    assert_json,
    auth,
)

__all__ = ["_pg_session_ready", "server"]


class Recorder:
    def __init__(self) -> None:
        self.events: list[DbEvent] = []

    def __call__(self, event: DbEvent) -> None:
        self.events.append(event)

    def take(self) -> list[DbEvent]:
        out, self.events = self.events, []
        return out


@pytest.fixture
def recorder(server: Server) -> Iterator[Recorder]:
    rec = Recorder()
    stop = server.services.events.subscribe(rec)
    yield rec
    stop()


def check(event: DbEvent, kind: str, col: str, doc_id: str, document: dict | None) -> None:
    assert event.type == kind
    assert event.collection == col
    assert event.channel == f"db-{col}"
    assert event.base == "dev_memory_pk"
    assert event.doc_id == doc_id
    assert event.document == document


@pytest.mark.parametrize("suffix", ["", "_774_", "_700_"])
async def test_create_update_increment_delete(server: Server, recorder: Recorder, suffix: str) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col("msgs", suffix)
    recorder.take()

    doc = await create(c, a1.token, col, {"title": "t", "n": 1})
    (event,) = recorder.take()
    check(event, DB_CREATED, col, doc["id"], doc)
    assert event.account_id == a1.account_id and event.owner_id == a1.user_id
    assert event.actor.user_id == a1.user_id and event.actor.account_id == a1.account_id

    updated = assert_json(await c.put(f"/db/{col}/{doc['id']}", json={"done": True}, headers=auth(a1.token)))
    (event,) = recorder.take()
    check(event, DB_UPDATED, col, doc["id"], updated)
    assert updated == {**doc, "done": True}

    r = await c.put(f"/inc/{col}/{doc['id']}", json={"field": "n", "range": 4}, headers=auth(a1.token))
    assert assert_json(r) is True
    (event,) = recorder.take()
    check(event, DB_UPDATED, col, doc["id"], {**updated, "n": 5})

    assert assert_json(await c.delete(f"/db/{col}/{doc['id']}", headers=auth(a1.token))) == 1
    (event,) = recorder.take()
    check(event, DB_DELETED, col, doc["id"], None)
    assert event.account_id == a1.account_id and event.owner_id == a1.user_id


async def test_bulk_create_emits_one_event_per_document_in_order(server: Server, recorder: Recorder) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col("msgs", "_766_")
    bodies = [{"i": i} for i in range(5)]
    recorder.take()
    r = await c.post(f"/db/{col}", params={"bulk": "1"}, json=bodies, headers=auth(a1.token))
    assert assert_json(r, 201) is True
    events = recorder.take()
    assert [e.type for e in events] == [DB_CREATED] * 5
    assert [e.channel for e in events] == [f"db-{col}"] * 5
    listed = assert_json(await c.get(f"/db/{col}", headers=auth(a1.token)))["results"]
    assert sorted(listed, key=lambda d: d["i"]) == [e.document for e in events]
    assert all(e.doc_id == e.document["id"] for e in events if e.document)
    assert [{"i": e.document["i"]} for e in events if e.document] == bodies
    assert len({e.doc_id for e in events}) == 5


async def test_bulk_update_and_bulk_delete(server: Server, recorder: Recorder) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    docs = [await create(c, a1.token, col, {"i": i, "even": i % 2 == 0}) for i in range(5)]
    recorder.take()

    body = {"update": {"seen": True}, "clauses": [["even", "==", True]]}
    assert assert_json(await c.put(f"/db/{col}", params={"bulk": "1"}, json=body, headers=auth(a1.token))) == 3
    events = recorder.take()
    assert len(events) == 3
    for event, doc in zip(events, [docs[0], docs[2], docs[4]], strict=True):
        check(event, DB_UPDATED, col, doc["id"], {**doc, "seen": True})

    x = b64([["i", ">=", 3]])
    assert assert_json(await c.delete(f"/db/{col}", params={"bulk": "1", "x": x}, headers=auth(a1.token))) == 2
    events = recorder.take()
    assert len(events) == 2
    for event, doc in zip(events, [docs[3], docs[4]], strict=True):
        check(event, DB_DELETED, col, doc["id"], None)


async def test_events_follow_commit_order(server: Server, recorder: Recorder) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    h = auth(a1.token)
    recorder.take()
    d1 = await create(c, a1.token, col, {"n": 1})
    d2 = await create(c, a1.token, col, {"n": 2})
    await c.put(f"/db/{col}/{d1['id']}", json={"n": 10}, headers=h)
    await c.delete(f"/db/{col}/{d2['id']}", headers=h)
    await c.put(f"/inc/{col}/{d1['id']}", json={"field": "n", "range": 1}, headers=h)
    d3 = await create(c, a1.token, col, {"n": 3})
    got = [(e.type, e.doc_id) for e in recorder.take()]
    assert got == [
        (DB_CREATED, d1["id"]),
        (DB_CREATED, d2["id"]),
        (DB_UPDATED, d1["id"]),
        (DB_DELETED, d2["id"]),
        (DB_UPDATED, d1["id"]),
        (DB_CREATED, d3["id"]),
    ]


async def test_sudo_writes_emit_events(server: Server, recorder: Recorder) -> None:
    c = server.client
    col = unique_col()
    recorder.take()
    doc = assert_json(await c.post(f"/sudo/{col}", json={"t": 1}, headers=root(server)), 201)
    updated = assert_json(await c.put(f"/sudo/{col}/{doc['id']}", json={"t": 2}, headers=root(server)))
    assert assert_json(await c.delete(f"/sudo/{col}/{doc['id']}", headers=root(server))) == 1
    events = recorder.take()
    assert len(events) == 3
    check(events[0], DB_CREATED, col, doc["id"], doc)
    check(events[1], DB_UPDATED, col, doc["id"], updated)
    check(events[2], DB_DELETED, col, doc["id"], None)
    assert events[0].actor.role == 100


async def test_refused_writes_emit_nothing(server: Server, recorder: Recorder) -> None:
    c = server.client
    a1, a2, b = await accounts_ab(c)
    col = unique_col()  # default 740: A2 reads, only A1 writes
    doc = await create(c, a1.token, col, {"n": 1, "title": "t"})
    recorder.take()

    # decision 3: readable but not writable -> 403
    r = await c.put(f"/db/{col}/{doc['id']}", json={"n": 2}, headers=auth(a2.token))
    assert_error(r, 403, "not authorized")
    r = await c.put(f"/inc/{col}/{doc['id']}", json={"field": "n", "range": 1}, headers=auth(a2.token))
    assert_error(r, 403, "not authorized")
    # unreadable -> 404
    assert_error(await c.put(f"/db/{col}/{doc['id']}", json={"n": 2}, headers=auth(b.token)), 404)
    # not writable -> 0
    assert assert_json(await c.delete(f"/db/{col}/{doc['id']}", headers=auth(a2.token))) == 0
    assert assert_json(await c.delete(f"/db/{col}/{doc['id']}", headers=auth(b.token))) == 0
    r = await c.put(
        f"/db/{col}", params={"bulk": "1"}, json={"update": {"n": 9}, "clauses": []}, headers=auth(a2.token)
    )
    assert assert_json(r) == 0
    r = await c.delete(f"/db/{col}", params={"bulk": "1", "x": b64([])}, headers=auth(b.token))
    assert assert_json(r) == 0
    # bad input
    r = await c.post(f"/db/{col}", params={"bulk": "1"}, json=[{"a": 1}, 5, {"b": 2}], headers=auth(a1.token))
    assert_error(r, 400)
    assert_error(await c.post(f"/db/{col}", json=[1], headers=auth(a1.token)), 400)
    r = await c.put(f"/inc/{col}/{doc['id']}", json={"field": "title", "range": 1}, headers=auth(a1.token))
    assert_error(r, 400, startswith="invalid type for increment")
    r = await c.put(
        f"/db/{col}",
        params={"bulk": "1"},
        json={"update": {"n": 9}, "clauses": [["n", "~", 1]]},
        headers=auth(a1.token),
    )
    assert_error(r, 400)
    # nothing there
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(await c.put(f"/db/{col}/{missing}", json={"n": 2}, headers=auth(a1.token)), 404)
    assert assert_json(await c.delete(f"/db/{col}/{missing}", headers=auth(a1.token))) == 0
    x = b64([["n", "==", 12345]])
    assert assert_json(await c.delete(f"/db/{col}", params={"bulk": "1", "x": x}, headers=auth(a1.token))) == 0
    r = await c.put(
        f"/db/{col}",
        params={"bulk": "1"},
        json={"update": {"n": 9}, "clauses": [["n", "==", 12345]]},
        headers=auth(a1.token),
    )
    assert assert_json(r) == 0
    # anonymous writes on pub_
    pub = unique_col("pub_posts")
    assert_error(await c.post(f"/db/{pub}", json={"t": 1}), 401, "missing authorization HTTP header")

    assert recorder.take() == []
    assert assert_json(await c.get(f"/db/{col}/{doc['id']}", headers=auth(a1.token))) == doc


async def test_reads_emit_nothing(server: Server, recorder: Recorder) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    doc = await create(c, a1.token, col, {"n": 1})
    recorder.take()
    h = auth(a1.token)
    await c.get(f"/db/{col}", headers=h)
    await c.get(f"/db/{col}/{doc['id']}", headers=h)
    await c.post(f"/db/{col}", params={"ids": "1"}, json=[doc["id"]], headers=h)
    await c.post(f"/query/{col}", json=[], headers=h)
    await c.post(f"/db/count/{col}", headers=h)
    assert recorder.take() == []
