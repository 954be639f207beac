"""Spec 09, items 52-102: documents, listing, permissions, queries, bulk, search and forms.

Each test is named after its item. Where decision 3 of ``spec/00-index.md`` replaces upstream's
200/500 by a client-error status, the test asserts the decision's status and says so.
Collections carry a unique part (``tasks3f9a…``) because the PostgreSQL database is shared by
every test of a worker; the part never changes the permission rules of the name.
"""

from __future__ import annotations

import re
import uuid

from tests.http.conftest import Server
from tests.http.doc_helpers import b64, create, list_ids, query, root, sudo_get, unique_col
from tests.http.helpers import (
    _pg_session_ready,
    accounts_ab,
    admin_token,
    assert_error,
    assert_json,
    auth,
    extra_client,
    unique_email,
)

__all__ = ["_pg_session_ready"]

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# Documents: create, get, update


async def test_b052_create_returns_201_with_id_and_account(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    body = {"title": "buy milk", "done": False, "n": 3, "tags": ["a"], "nested": {"x": 1.5}}
    r = await c.post(f"/db/{col}", json=body, headers=auth(a1.token))
    doc = assert_json(r, 201)
    assert UUID.match(doc["id"]), doc
    assert doc["accountId"] == a1.account_id
    assert {k: v for k, v in doc.items() if k not in ("id", "accountId")} == body
    assert assert_json(await c.get(f"/db/{col}/{doc['id']}", headers=auth(a1.token))) == doc


async def test_b053_create_with_non_object_body_is_400(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    for body in (b'[{"title": "x"}]', b'"a string"', b"42", b"null", b"true"):
        r = await c.post(f"/db/{col}", content=body, headers=auth(a1.token))
        assert_error(r, 400, startswith="invalid body")
    page = assert_json(await c.get(f"/db/{col}", headers=auth(a1.token)))
    assert page["total"] == 0 and page["results"] == []


async def test_b054_create_with_non_json_body_is_400(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    for body in (b"{not json", b"title=x", b"{'single': 'quotes'}", b"\xff\xfe{}"):
        # decision 3: malformed JSON is a client mistake -> 400 (spec 09 says 500)
        assert_error(await c.post(f"/db/{col}", content=body, headers=auth(a1.token)), 400)
    assert assert_json(await c.get(f"/db/{col}", headers=auth(a1.token)))["total"] == 0


async def test_b055_client_id_in_create_body_is_ignored(server: Server) -> None:
    c = server.client
    a1, _, b = await accounts_ab(c)
    col = unique_col()
    fake = str(uuid.uuid4())
    doc = await create(
        c, a1.token, col, {"id": fake, "accountId": b.account_id, "ownerId": b.user_id, "sb_created": 1, "t": 1}
    )
    assert doc["id"] != fake and UUID.match(doc["id"])
    assert doc["accountId"] == a1.account_id
    assert "ownerId" not in doc and "sb_created" not in doc
    stored = assert_json(await c.get(f"/db/{col}/{doc['id']}", headers=auth(a1.token)))
    assert stored == {"t": 1, "id": doc["id"], "accountId": a1.account_id}
    # decision 3: not found -> 404
    assert_error(await c.get(f"/db/{col}/{fake}", headers=auth(a1.token)), 404, "document not found")


async def test_b056_update_is_a_shallow_merge(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    doc = await create(c, a1.token, col, {"title": "keep me", "done": False, "n": 1})
    r = await c.put(f"/db/{col}/{doc['id']}", json={"done": True, "extra": None}, headers=auth(a1.token))
    updated = assert_json(r)
    expected = {"title": "keep me", "done": True, "n": 1, "extra": None, "id": doc["id"], "accountId": a1.account_id}
    assert updated == expected
    assert assert_json(await c.get(f"/db/{col}/{doc['id']}", headers=auth(a1.token))) == expected
    # system fields in the body change nothing
    r = await c.put(f"/db/{col}/{doc['id']}", json={"id": "x", "accountId": "y", "n": 2}, headers=auth(a1.token))
    assert assert_json(r) == {**expected, "n": 2}


async def test_b057_update_replaces_nested_objects_whole(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    doc = await create(c, a1.token, col, {"address": {"city": "Montreal", "zip": "H1A"}, "list": [1, 2, 3]})
    r = await c.put(f"/db/{col}/{doc['id']}", json={"address": {"city": "Laval"}, "list": [9]}, headers=auth(a1.token))
    assert assert_json(r)["address"] == {"city": "Laval"}
    stored = assert_json(await c.get(f"/db/{col}/{doc['id']}", headers=auth(a1.token)))
    assert stored["address"] == {"city": "Laval"} and stored["list"] == [9]


async def test_b058_get_unknown_id_is_404(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    await create(c, a1.token, col, {"t": 1})
    for doc_id in (str(uuid.uuid4()), "not-a-uuid", "x' OR '1'='1", "0"):
        # decision 3: unknown document -> 404 (spec 09 says 500)
        assert_error(await c.get(f"/db/{col}/{doc_id}", headers=auth(a1.token)), 404, "document not found")
    # a collection never written: not found as well
    r = await c.get(f"/db/{unique_col()}/{uuid.uuid4()}", headers=auth(a1.token))
    assert_error(r, 404, "document not found")


async def test_b059_get_by_ids(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    d1 = await create(c, a1.token, col, {"n": 1})
    d2 = await create(c, a1.token, col, {"n": 2})
    await create(c, a1.token, col, {"n": 3})
    r = await c.post(f"/db/{col}", params={"ids": "true"}, json=[d1["id"], d2["id"]], headers=auth(a1.token))
    found = assert_json(r)
    assert sorted(found, key=lambda d: d["n"]) == [d1, d2]
    # missing ids are skipped (spec 03 section 8)
    r = await c.post(f"/db/{col}", params={"ids": "1"}, json=[d2["id"], str(uuid.uuid4())], headers=auth(a1.token))
    assert assert_json(r) == [d2]
    r = await c.post(f"/db/{col}", params={"ids": "true"}, json=[], headers=auth(a1.token))
    assert_error(r, 400, "ids list can not be empty")


async def test_b060_increment(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    doc = await create(c, a1.token, col, {"count": 1, "title": "t"})
    r = await c.put(f"/inc/{col}/{doc['id']}", json={"field": "count", "range": 4}, headers=auth(a1.token))
    assert assert_json(r) is True
    stored = assert_json(await c.get(f"/db/{col}/{doc['id']}", headers=auth(a1.token)))
    assert stored["count"] == 5 and isinstance(stored["count"], int) and stored["title"] == "t"


async def test_b061_increment_with_negative_range_decrements(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    doc = await create(c, a1.token, col, {"count": 10, "f": 1.5})
    r = await c.put(f"/inc/{col}/{doc['id']}", json={"field": "count", "range": -3}, headers=auth(a1.token))
    assert assert_json(r) is True
    r = await c.put(f"/inc/{col}/{doc['id']}", json={"field": "f", "range": -2}, headers=auth(a1.token))
    assert assert_json(r) is True
    stored = assert_json(await c.get(f"/db/{col}/{doc['id']}", headers=auth(a1.token)))
    assert stored["count"] == 7
    assert stored["f"] == -0.5  # non-integral numbers add as floating point (spec 03 section 9)


async def test_b062_increment_of_missing_field_sets_range(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    doc = await create(c, a1.token, col, {"title": "t", "nothing": None})
    for field, amount in (("likes", 3), ("nothing", -2)):
        r = await c.put(f"/inc/{col}/{doc['id']}", json={"field": field, "range": amount}, headers=auth(a1.token))
        assert assert_json(r) is True
    stored = assert_json(await c.get(f"/db/{col}/{doc['id']}", headers=auth(a1.token)))
    assert stored["likes"] == 3 and stored["nothing"] == -2 and stored["title"] == "t"
    # a non-number is refused; decision 3: 400 (spec 03 says 500)
    r = await c.put(f"/inc/{col}/{doc['id']}", json={"field": "title", "range": 1}, headers=auth(a1.token))
    assert_error(r, 400, startswith="invalid type for increment")
    assert assert_json(await c.get(f"/db/{col}/{doc['id']}", headers=auth(a1.token))) == stored


# Listing and paging


async def test_b063_never_written_collection_lists_empty(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    r = await c.get("/db/invalid_db_name", headers=auth(a1.token))
    assert assert_json(r) == {"page": 1, "size": 25, "total": 0, "results": []}
    assert '"results":[]' in r.text.replace(" ", "")
    r = await c.get(f"/db/{unique_col('never')}", headers=auth(a1.token))
    assert assert_json(r) == {"page": 1, "size": 25, "total": 0, "results": []}


async def test_b064_paging_covers_every_document_once(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    r = await c.post(f"/db/{col}", params={"bulk": "1"}, json=[{"i": i} for i in range(30)], headers=auth(a1.token))
    assert assert_json(r, 201) is True
    p1 = assert_json(await c.get(f"/db/{col}", params={"size": "25"}, headers=auth(a1.token)))
    assert (p1["page"], p1["size"], p1["total"], len(p1["results"])) == (1, 25, 30, 25)
    p2 = assert_json(await c.get(f"/db/{col}", params={"page": "2", "size": "25"}, headers=auth(a1.token)))
    assert (p2["page"], p2["size"], p2["total"], len(p2["results"])) == (2, 25, 30, 5)
    ids = [d["id"] for d in p1["results"] + p2["results"]]
    assert len(set(ids)) == 30
    assert sorted(d["i"] for d in p1["results"] + p2["results"]) == list(range(30))
    p3 = assert_json(await c.get(f"/db/{col}", params={"page": "3", "size": "25"}, headers=auth(a1.token)))
    assert p3["results"] == [] and p3["total"] == 30


async def test_b065_desc_lists_newest_first(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    created = [(await create(c, a1.token, col, {"i": i}))["id"] for i in range(4)]
    assert await list_ids(c, col, auth(a1.token)) == created
    page = assert_json(await c.get(f"/db/{col}", params={"desc": "1"}, headers=auth(a1.token)))
    assert [d["id"] for d in page["results"]] == created[::-1]


async def test_b066_unparsable_page_and_size_default(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    await c.post(f"/db/{col}", params={"bulk": "1"}, json=[{"i": i} for i in range(27)], headers=auth(a1.token))
    page = assert_json(await c.get(f"/db/{col}", params={"page": "abc", "size": "xyz"}, headers=auth(a1.token)))
    assert (page["page"], page["size"], page["total"], len(page["results"])) == (1, 25, 27, 25)


async def test_b067_query_sort_by_document_field(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    for p in (5, 1, 10, 3):
        await create(c, a1.token, col, {"priority": p})
    page = await query(c, a1.token, col, [], sort="priority")
    assert [d["priority"] for d in page["results"]] == [1, 3, 5, 10]  # numeric, not "10" < "3"
    page = await query(c, a1.token, col, [], sort="priority", desc="1")
    assert [d["priority"] for d in page["results"]] == [10, 5, 3, 1]


async def test_b067_sort_orders_mixed_types(server: Server) -> None:
    # spec 03 section 5: null/missing < numbers < strings < booleans
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    values = ["b", True, 2, None, "B", 10, "missing"]
    for v in values:
        await create(c, a1.token, col, {} if v == "missing" else {"p": v})
    page = await query(c, a1.token, col, [], sort="p")
    got = [d.get("p", "<missing>") for d in page["results"]]
    assert sorted(got[:2], key=str) == ["<missing>", None]
    assert got[2:] == [2, 10, "B", "b", True]


# Permissions


async def test_b068_default_collection_is_account_readable(server: Server) -> None:
    c = server.client
    a1, a2, b = await accounts_ab(c)
    col = unique_col()
    doc = await create(c, a1.token, col, {"t": 1})
    assert assert_json(await c.get(f"/db/{col}/{doc['id']}", headers=auth(a2.token))) == doc
    assert await list_ids(c, col, auth(a2.token)) == [doc["id"]]
    # decision 3: unreadable -> 404
    assert_error(await c.get(f"/db/{col}/{doc['id']}", headers=auth(b.token)), 404, "document not found")
    assert await list_ids(c, col, auth(b.token)) == []


async def test_b069_same_account_cannot_update_default_collection(server: Server) -> None:
    c = server.client
    a1, a2, _ = await accounts_ab(c)
    col = unique_col()
    doc = await create(c, a1.token, col, {"title": "original", "n": 1})
    # decision 3: readable but not writable -> 403 (spec 09 says 500)
    r = await c.put(f"/db/{col}/{doc['id']}", json={"title": "hacked"}, headers=auth(a2.token))
    assert_error(r, 403, "not authorized")
    r = await c.put(f"/inc/{col}/{doc['id']}", json={"field": "n", "range": 5}, headers=auth(a2.token))
    assert_error(r, 403, "not authorized")
    assert await sudo_get(server, col, doc["id"]) == doc


async def test_b070_same_account_cannot_delete_default_collection(server: Server) -> None:
    c = server.client
    a1, a2, _ = await accounts_ab(c)
    col = unique_col()
    doc = await create(c, a1.token, col, {"t": 1})
    r = await c.delete(f"/db/{col}/{doc['id']}", headers=auth(a2.token))
    assert assert_json(r) == 0
    assert await sudo_get(server, col, doc["id"]) == doc


async def test_b071_owner_only_collection_hides_from_account(server: Server) -> None:
    c = server.client
    a1, a2, _ = await accounts_ab(c)
    col = unique_col("notes", "_700_")
    doc = await create(c, a1.token, col, {"t": 1})
    own = await create(c, a2.token, col, {"t": 2})
    assert await list_ids(c, col, auth(a2.token)) == [own["id"]]
    assert_error(await c.get(f"/db/{col}/{doc['id']}", headers=auth(a2.token)), 404, "document not found")
    assert await list_ids(c, col, auth(a1.token)) == [doc["id"]]


async def test_b072_account_writable_collection(server: Server) -> None:
    c = server.client
    a1, a2, b = await accounts_ab(c)
    col = unique_col("notes", "_760_")
    doc = await create(c, a1.token, col, {"t": 1})
    r = await c.put(f"/db/{col}/{doc['id']}", json={"t": 2}, headers=auth(a2.token))
    assert assert_json(r) == {**doc, "t": 2}
    assert_error(await c.put(f"/db/{col}/{doc['id']}", json={"t": 3}, headers=auth(b.token)), 404)
    assert (await sudo_get(server, col, doc["id"])) == {**doc, "t": 2}


async def test_b073_everyone_readable_owner_writable(server: Server) -> None:
    c = server.client
    a1, _, b = await accounts_ab(c)
    col = unique_col("posts", "_744_")
    doc = await create(c, a1.token, col, {"t": 1})
    assert assert_json(await c.get(f"/db/{col}/{doc['id']}", headers=auth(b.token))) == doc
    assert await list_ids(c, col, auth(b.token)) == [doc["id"]]
    # decision 3: readable but not writable -> 403
    assert_error(await c.put(f"/db/{col}/{doc['id']}", json={"t": 2}, headers=auth(b.token)), 403, "not authorized")
    assert await sudo_get(server, col, doc["id"]) == doc


async def test_b074_everyone_writable_collection(server: Server) -> None:
    c = server.client
    a1, _, b = await accounts_ab(c)
    col = unique_col("posts", "_766_")
    doc = await create(c, a1.token, col, {"t": 1})
    r = await c.put(f"/db/{col}/{doc['id']}", json={"t": 2}, headers=auth(b.token))
    assert assert_json(r) == {**doc, "t": 2}
    assert assert_json(await c.delete(f"/db/{col}/{doc['id']}", headers=auth(b.token))) == 1
    assert await sudo_get(server, col, doc["id"]) is None


async def test_b075_admin_session_reads_and_updates_everything(server: Server) -> None:
    c = server.client
    a1, _, b = await accounts_ab(c)
    admin = await admin_token(server)
    col = unique_col()
    d1 = await create(c, a1.token, col, {"t": 1})
    d2 = await create(c, b.token, col, {"t": 2})
    assert await list_ids(c, col, auth(admin)) == [d1["id"], d2["id"]]
    assert assert_json(await c.get(f"/db/{col}/{d1['id']}", headers=auth(admin))) == d1
    r = await c.put(f"/db/{col}/{d1['id']}", json={"t": 10}, headers=auth(admin))
    assert assert_json(r) == {**d1, "t": 10}
    assert (await sudo_get(server, col, d1["id"])) == {**d1, "t": 10}


async def test_b076_sudo_lists_all_accounts(server: Server) -> None:
    c = server.client
    a1, _, b = await accounts_ab(c)
    col = unique_col()
    d1 = await create(c, a1.token, col, {"t": 1})
    d2 = await create(c, b.token, col, {"t": 2})
    page = assert_json(await c.get(f"/sudo/{col}", headers=root(server)))
    assert page["total"] == 2 and [d["id"] for d in page["results"]] == [d1["id"], d2["id"]]


async def test_b077_pub_collection_list_without_authorization(server: Server) -> None:
    c = server.client
    a1, _, b = await accounts_ab(c)
    col = unique_col("pub_posts")
    d1 = await create(c, a1.token, col, {"t": 1})
    d2 = await create(c, b.token, col, {"t": 2})
    page = assert_json(await c.get(f"/db/{col}"))
    assert page["total"] == 2 and page["results"] == [d1, d2]
    assert assert_json(await c.get(f"/db/{col}/{d1['id']}")) == d1


async def test_b078_pub_collection_query_without_authorization(server: Server) -> None:
    c = server.client
    a1, _, b = await accounts_ab(c)
    col = unique_col("pub_posts")
    d1 = await create(c, a1.token, col, {"t": 1})
    await create(c, b.token, col, {"t": 2})
    page = assert_json(await c.post(f"/query/{col}", json=[["t", "==", 1]]))
    assert page["total"] == 1 and page["results"] == [d1]


async def test_b079_pub_collection_count_needs_authorization(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col("pub_posts")
    await create(c, a1.token, col, {"t": 1})
    assert_error(await c.post(f"/db/count/{col}", json=[]), 401, "missing authorization HTTP header")
    assert_error(await c.post(f"/db/count/{col}"), 401, "missing authorization HTTP header")


async def test_b080_pub_collection_anonymous_delete_is_401(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col("pub_posts")
    doc = await create(c, a1.token, col, {"t": 1})
    assert_error(await c.delete(f"/db/{col}/{doc['id']}"), 401, "missing authorization HTTP header")
    r = await c.delete(f"/db/{col}", params={"bulk": "1", "x": b64([])})
    assert_error(r, 401, "missing authorization HTTP header")
    assert_error(await c.put(f"/db/{col}/{doc['id']}", json={"t": 2}), 401, "missing authorization HTTP header")
    assert_error(await c.post(f"/db/{col}", json={"t": 3}), 401, "missing authorization HTTP header")
    assert await sudo_get(server, col, doc["id"]) == doc
    assert assert_json(await c.get(f"/sudo/{col}", headers=root(server)))["total"] == 1


async def test_b081_pub_collection_writes_are_owner_only(server: Server) -> None:
    c = server.client
    a1, a2, b = await accounts_ab(c)
    col = unique_col("pub_posts")
    doc = await create(c, a1.token, col, {"t": 1})
    for other in (b, a2):
        # decision 3: readable but not writable -> 403
        r = await c.put(f"/db/{col}/{doc['id']}", json={"t": 2}, headers=auth(other.token))
        assert_error(r, 403, "not authorized")
        assert assert_json(await c.delete(f"/db/{col}/{doc['id']}", headers=auth(other.token))) == 0
    assert await sudo_get(server, col, doc["id"]) == doc
    r = await c.put(f"/db/{col}/{doc['id']}", json={"t": 5}, headers=auth(a1.token))
    assert assert_json(r) == {**doc, "t": 5}


async def test_b082_suffix_is_part_of_the_name_by_default(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    plain = await create(c, a1.token, col, {"in": "plain"})
    suffixed = await create(c, a1.token, f"{col}_740_", {"in": "suffixed"})
    assert await list_ids(c, col, auth(a1.token)) == [plain["id"]]
    assert await list_ids(c, f"{col}_740_", auth(a1.token)) == [suffixed["id"]]
    assert_error(await c.get(f"/db/{col}/{suffixed['id']}", headers=auth(a1.token)), 404)
    names = assert_json(await c.get("/sudolistall/", headers=root(server)))
    assert col in names and f"{col}_740_" in names


# Queries, count, bulk


async def test_b083_query_equal_false(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    f1 = await create(c, a1.token, col, {"done": False, "t": 1})
    await create(c, a1.token, col, {"done": True, "t": 2})
    f2 = await create(c, a1.token, col, {"done": False, "t": 3})
    await create(c, a1.token, col, {"done": 0, "t": 4})  # 0 is not false
    await create(c, a1.token, col, {"t": 5})
    for op in ("==", "="):
        page = await query(c, a1.token, col, [["done", op, False]])
        assert page["total"] == 2 and page["results"] == [f1, f2], op


async def test_b084_query_numeric_comparison(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    ten = await create(c, a1.token, col, {"priority": 10})
    for p in (9, 2, "high"):
        await create(c, a1.token, col, {"priority": p})
    page = await query(c, a1.token, col, [["priority", ">", 9]])
    assert page["results"] == [ten]


async def test_b085_query_in_and_not_in_on_arrays(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    red = await create(c, a1.token, col, {"tags": ["red", "blue"]})
    green = await create(c, a1.token, col, {"tags": ["green"]})
    assert (await query(c, a1.token, col, [["tags", "in", "red"]]))["results"] == [red]
    assert (await query(c, a1.token, col, [["tags", "in", ["red", "none"]]]))["results"] == [red]
    assert (await query(c, a1.token, col, [["tags", "!in", ["red"]]]))["results"] == [green]
    assert (await query(c, a1.token, col, [["tags", "nin", ["red"]]]))["results"] == [green]


async def test_b086_query_in_on_scalar_field(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    opened = await create(c, a1.token, col, {"status": "open"})
    pending = await create(c, a1.token, col, {"status": "pending"})
    assert (await query(c, a1.token, col, [["status", "in", ["open", "closed"]]]))["results"] == [opened]
    assert (await query(c, a1.token, col, [["status", "!in", ["open", "closed"]]]))["results"] == [pending]


async def test_b087_unknown_operator_is_400(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    await create(c, a1.token, col, {"a": 1})
    r = await c.post(f"/query/{col}", json=[["a", "~", 1]], headers=auth(a1.token))
    assert_error(r, 400, "the 1 query clause's operator: ~ is not supported at the moment")
    r = await c.post(f"/query/{col}", json=[["a", "==", 1], ["a", "like", 1]], headers=auth(a1.token))
    assert_error(r, 400, "the 2 query clause's operator: like is not supported at the moment")


async def test_b088_clause_without_three_parts_is_400(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    r = await c.post(f"/query/{col}", json=[["a", "=="]], headers=auth(a1.token))
    text = assert_error(r, 400, contains="required 3 parameters")
    assert text == "the 1 query clause did not contains the required 3 parameters (field, operator, value)"


async def test_b089_query_with_empty_body_is_400(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    await create(c, a1.token, col, {"a": 1})
    assert_error(await c.post(f"/query/{col}", headers=auth(a1.token)), 400)
    assert_error(await c.post(f"/query/{col}", content=b"   ", headers=auth(a1.token)), 400)
    # [] and null mean "no filter"
    assert (await query(c, a1.token, col, []))["total"] == 1
    r = await c.post(f"/query/{col}", content=b"null", headers=auth(a1.token))
    assert assert_json(r)["total"] == 1


async def test_b090_count_matches_query_total(server: Server) -> None:
    c = server.client
    a1, a2, b = await accounts_ab(c)
    col = unique_col()
    for token, done in ((a1.token, True), (a1.token, True), (a1.token, False), (a2.token, True), (b.token, True)):
        await create(c, token, col, {"done": done})
    clauses = [["done", "==", True]]
    r = await c.post(f"/db/count/{col}", json=clauses, headers=auth(a1.token))
    assert assert_json(r) == {"count": 3}  # B's document is not readable by A1
    assert (await query(c, a1.token, col, clauses))["total"] == 3
    assert assert_json(await c.post(f"/db/count/{col}", headers=auth(a1.token))) == {"count": 4}
    assert assert_json(await c.post(f"/db/count/{col}", content=b"null", headers=auth(a1.token))) == {"count": 4}
    assert assert_json(await c.post(f"/db/count/{col}", headers=auth(b.token))) == {"count": 1}
    r = await c.post(f"/db/count/{unique_col('never')}", headers=auth(a1.token))
    assert assert_json(r) == {"count": 0}


async def test_b091_bulk_create(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    r = await c.post(f"/db/{col}", params={"bulk": "1"}, json=[{"n": 1}, {"n": 2}], headers=auth(a1.token))
    assert assert_json(r, 201) is True
    page = assert_json(await c.get(f"/db/{col}", headers=auth(a1.token)))
    assert page["total"] == 2
    assert sorted(d["n"] for d in page["results"]) == [1, 2]
    assert all(d["accountId"] == a1.account_id and UUID.match(d["id"]) for d in page["results"])


async def test_b092_bulk_update_merges(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    d1 = await create(c, a1.token, col, {"title": "should be updated", "n": 1})
    d2 = await create(c, a1.token, col, {"title": "should be updated", "n": 2})
    other = await create(c, a1.token, col, {"title": "other", "n": 3})
    body = {"update": {"done": True}, "clauses": [["title", "=", "should be updated"]]}
    r = await c.put(f"/db/{col}", params={"bulk": "1"}, json=body, headers=auth(a1.token))
    assert assert_json(r) == 2
    assert await sudo_get(server, col, d1["id"]) == {**d1, "done": True}
    assert await sudo_get(server, col, d2["id"]) == {**d2, "done": True}
    assert await sudo_get(server, col, other["id"]) == other


async def test_b093_bulk_delete(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    for done in (True, True, False):
        await create(c, a1.token, col, {"title": "testing-123456-bulkdel", "done": done})
    keep = await create(c, a1.token, col, {"title": "other", "done": True})
    x = b64([["title", "=", "testing-123456-bulkdel"], ["done", "=", True]])
    r = await c.delete(f"/db/{col}", params={"bulk": "1", "x": x}, headers=auth(a1.token))
    assert assert_json(r) == 2
    page = assert_json(await c.get(f"/db/{col}", headers=auth(a1.token)))
    assert page["total"] == 2
    assert keep in page["results"]
    assert [d["done"] for d in page["results"] if d["title"] != "other"] == [False]


async def test_b094_bulk_delete_without_filter_is_400(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    await create(c, a1.token, col, {"t": 1})
    for params in ({"bulk": "1"}, {"bulk": "1", "x": ""}):
        r = await c.delete(f"/db/{col}", params=params, headers=auth(a1.token))
        assert_error(r, 400, "no filters supplied via the &x= query parameter")
    assert assert_json(await c.get(f"/db/{col}", headers=auth(a1.token)))["total"] == 1
    # decision 3: x that is not Base64 -> 400 (spec 02 says 500)
    r = await c.delete(f"/db/{col}", params={"bulk": "1", "x": "!!!not*base64!!!"}, headers=auth(a1.token))
    assert_error(r, 400)
    assert assert_json(await c.get(f"/db/{col}", headers=auth(a1.token)))["total"] == 1


async def test_b095_bulk_delete_x_with_plus_sent_unescaped(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    for i in range(1000):
        title = f"t{i}>>~?"
        x = b64([["title", "==", title]])
        if "+" in x:
            break
    else:
        raise AssertionError("no title gives a '+' in Base64")
    await create(c, a1.token, col, {"title": title})
    keep = await create(c, a1.token, col, {"title": "other"})
    r = await c.delete(f"/db/{col}?bulk=1&x={x}", headers=auth(a1.token))
    assert b"+" in r.request.url.query  # the '+' reached the server unescaped, i.e. as a space
    assert assert_json(r) == 1
    assert await list_ids(c, col, auth(a1.token)) == [keep["id"]]
    # URL-safe alphabet without padding is accepted too
    await create(c, a1.token, col, {"title": title})
    safe = x.replace("+", "-").replace("/", "_").rstrip("=")
    assert assert_json(await c.delete(f"/db/{col}?bulk=1&x={safe}", headers=auth(a1.token))) == 1


async def test_b096_newid_is_a_uuid(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    first = assert_json(await c.get("/newid", headers=auth(a1.token)))
    second = assert_json(await c.get("/newid", headers=auth(a1.token)))
    assert isinstance(first, str) and UUID.match(first) and UUID.match(second) and first != second


async def test_b097_sudolistall_lists_collections(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    await create(c, a1.token, "tasks", {"t": 1})
    col = unique_col("zz", "_766_")
    await create(c, a1.token, col, {"t": 1})
    names = assert_json(await c.get("/sudolistall/", headers=root(server)))
    assert isinstance(names, list) and len(names) >= 2
    assert "tasks" in names and col in names
    assert names == sorted(names)
    assert "sb_accounts" in names and "sb_tokens" in names
    assert assert_json(await c.get("/sudolistall", headers=root(server))) == names


async def test_sudolistall_lists_only_the_system_collections_that_exist(server: Server) -> None:
    app = await server.services.tenancy.init_account(unique_email("lister"), False, False, True)
    root_of_app = {"Authorization": f"Bearer {app.root_token}"}
    async with extra_client(server, pk=app.base.id) as c:
        names = assert_json(await c.get("/sudolistall/", headers=root_of_app))
        # a new app: its admin's account, and nothing else yet (no files, forms, functions, tasks)
        assert names == ["sb_accounts", "sb_tokens"], names
        r = await c.post("/postform/contact", data={"name": "x"})
        assert r.status_code == 200, r.text
        fn = {"name": "lister", "trigger": "web", "code": "function handle(channel, type, body) { log('x'); }"}
        r = await c.post("/fn/add", json=fn, headers=root_of_app)
        assert r.status_code == 200, r.text
        names = assert_json(await c.get("/sudolistall/", headers=root_of_app))
        assert names == ["sb_accounts", "sb_forms", "sb_functions", "sb_tokens"], names


async def test_b098_sudo_index(server: Server) -> None:
    c = server.client
    for _ in range(2):  # idempotent
        r = await c.post("/sudo/index", params={"col": "tasks", "field": "done"}, headers=root(server))
        assert assert_json(r) is True
    assert_error(await c.get("/sudo/index", headers=root(server)), 501, "method not implemented")


async def test_b099_search_finds_the_indexed_document(server: Server) -> None:
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    base = await server.services.tenancy.base("dev_memory_pk")
    hit = await create(c, a1.token, col, {"title": "first"})
    miss = await create(c, a1.token, col, {"title": "second"})
    await server.services.documents.index_text(base, col, hit["id"], "adding this to search index")
    await server.services.documents.index_text(base, col, miss["id"], "Montreal Expos were the best in 95")
    r = await c.post("/search", json={"col": col, "keywords": "adding search"}, headers=auth(a1.token))
    assert assert_json(r) == [hit]
    r = await c.post("/search", json={"col": col, "keywords": "montreal expos"}, headers=auth(a1.token))
    assert assert_json(r) == [miss]
    r = await c.post("/search", json={"col": col, "keywords": "nothing-like-this"}, headers=auth(a1.token))
    assert assert_json(r) == []
    # another collection with the same ids indexed does not leak in
    r = await c.post("/search", json={"col": unique_col(), "keywords": "adding"}, headers=auth(a1.token))
    assert assert_json(r) == []


async def test_b099_search_reindex_replaces_and_respects_read_permission(server: Server) -> None:
    c = server.client
    a1, _, b = await accounts_ab(c)
    col = unique_col()
    base = await server.services.tenancy.base("dev_memory_pk")
    doc = await create(c, a1.token, col, {"title": "x"})
    await server.services.documents.index_text(base, col, doc["id"], "adding this to search index")
    await server.services.documents.index_text(base, col, doc["id"], "completely different words")
    r = await c.post("/search", json={"col": col, "keywords": "adding"}, headers=auth(a1.token))
    assert assert_json(r) == []
    r = await c.post("/search", json={"col": col, "keywords": "different"}, headers=auth(a1.token))
    assert assert_json(r) == [doc]
    # B may not read A1's document in a default (740) collection
    r = await c.post("/search", json={"col": col, "keywords": "different"}, headers=auth(b.token))
    assert assert_json(r) == []
    # a deleted document is dropped
    assert assert_json(await c.delete(f"/db/{col}/{doc['id']}", headers=auth(a1.token))) == 1
    r = await c.post("/search", json={"col": col, "keywords": "different"}, headers=auth(a1.token))
    assert assert_json(r) == []


async def test_b099_search_is_fuzzy_and_case_insensitive(server: Server) -> None:
    # spec 03 section 13: every keyword matches some word with edit distance <= 1, ignoring case
    c = server.client
    a1, _, _ = await accounts_ab(c)
    col = unique_col()
    base = await server.services.tenancy.base("dev_memory_pk")
    doc = await create(c, a1.token, col, {"title": "x"})
    await server.services.documents.index_text(base, col, doc["id"], "adding this to search index")
    for keywords in ("ADDING Search", "addng search", "adding serch", "adxing searcx"):
        r = await c.post("/search", json={"col": col, "keywords": keywords}, headers=auth(a1.token))
        assert assert_json(r) == [doc], keywords
    r = await c.post("/search", json={"col": col, "keywords": "axxing"}, headers=auth(a1.token))
    assert assert_json(r) == []


# Forms


async def test_b100_form_submission_and_listing(server: Server) -> None:
    c = server.client
    async with extra_client(server, pk="dev_memory_pk") as anon:
        r = await anon.post("/postform/testform", data={"name": "unit test", "email": "unit@test.com"})
        assert assert_json(r) is True
        assert "authorization" not in r.request.headers
        forms = assert_json(await c.get("/form", params={"name": "testform"}, headers=root(server)))
        assert forms[0] == {"name": "unit test", "email": "unit@test.com"}
        assert_error(await anon.get("/form", params={"name": "testform"}), 401)


async def test_b101_form_honeypot_is_400(server: Server) -> None:
    c = server.client
    form = unique_col("form")
    r = await c.post(f"/postform/{form}", data={"name": "bot", "_hp_": "gotcha"})
    assert_error(r, 400, "invalid form field present")
    assert assert_json(await c.get("/form", params={"name": form}, headers=root(server))) == []


async def test_b102_repeated_form_keys_are_joined(server: Server) -> None:
    c = server.client
    form = unique_col("form")
    r = await c.post(
        f"/postform/{form}",
        content=b"color=red&color=blue&size=L",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert assert_json(r) is True
    forms = assert_json(await c.get("/form", params={"name": form}, headers=root(server)))
    assert forms == [{"color": "red, blue", "size": "L"}]
