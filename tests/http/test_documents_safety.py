"""Hostile input on the document routes: injection through names, fields and values, malformed
filters, wrong types, hostile JSON, partial bulk writes, and crossing from one app to another.

A client mistake is a 4xx plain-text line (decision 3), never a 500, and nothing half-written
stays behind. Every test ends by checking that the server still answers /ping. Requests go
through a client that turns a crash into the 500 it answers instead of raising in the test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from sbserver.app import create_app
from sbserver.services.tenancy import DEV_PK
from tests.conftest import PG_URL, REQUIRE_SERVICES
from tests.http.conftest import Server, make_settings
from tests.http.doc_helpers import b64, create, root, same_json, strip_system, sudo_get, unique_col
from tests.http.helpers import (
    Member,
    _pg_session_ready,
    accounts_ab,
    assert_error,
    assert_json,
    auth,
    extra_client,
    ping_ok,
    unique_email,
)

__all__ = ["_pg_session_ready"]


@pytest_asyncio.fixture
async def c(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """The dev app's client; a crash comes back as its 500 answer."""
    async with extra_client(server, pk=DEV_PK) as client:
        yield client


@pytest_asyncio.fixture
async def a1(c: httpx.AsyncClient) -> Member:
    member, _, _ = await accounts_ab(c)
    return member


def no_500(r: httpx.Response) -> None:
    assert r.status_code < 500, f"{r.request.method} {r.request.url} -> {r.status_code} {r.text[:200]!r}"


async def total(c: httpx.AsyncClient, token: str, col: str) -> int:
    page = assert_json(await c.get(f"/db/{col}", headers=auth(token)))
    return int(page["total"])


# Collection names

BAD_NAMES = [
    "tasks;DROP TABLE documents",
    "x' OR '1'='1",
    'x" OR "1"="1',
    "tasks--",  # allowed characters, must stay harmless: checked separately below
    "a" * 200,
    "tâches",
    "任务",
    "tasks\u200b",
    "tasks name",
    "tasks%00",
    "tasks\x00",
    "sb_accounts",
    "sb_tokens",
    "$tasks",
    "tasks.x",
    "tasks*",
]


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


@pytest.mark.parametrize("name", [n for n in BAD_NAMES if n != "tasks--"], ids=lambda n: repr(n[:24]))
async def test_bad_collection_names_are_400_everywhere(
    server: Server, c: httpx.AsyncClient, a1: Member, name: str
) -> None:
    h = auth(a1.token)
    col = _quote(name)
    some_id = str(uuid.uuid4())
    requests = [
        c.build_request("POST", f"/db/{col}", json={"t": 1}, headers=h),
        c.build_request("POST", f"/db/{col}", params={"bulk": "1"}, json=[{"t": 1}], headers=h),
        c.build_request("POST", f"/db/{col}", params={"ids": "1"}, json=[some_id], headers=h),
        c.build_request("GET", f"/db/{col}", headers=h),
        c.build_request("GET", f"/db/{col}/{some_id}", headers=h),
        c.build_request("PUT", f"/db/{col}/{some_id}", json={"t": 1}, headers=h),
        c.build_request("PUT", f"/db/{col}", params={"bulk": "1"}, json={"update": {}, "clauses": []}, headers=h),
        c.build_request("DELETE", f"/db/{col}/{some_id}", headers=h),
        c.build_request("DELETE", f"/db/{col}", params={"bulk": "1", "x": b64([])}, headers=h),
        c.build_request("POST", f"/query/{col}", json=[], headers=h),
        c.build_request("POST", f"/db/count/{col}", json=[], headers=h),
        c.build_request("PUT", f"/inc/{col}/{some_id}", json={"field": "n", "range": 1}, headers=h),
        c.build_request("POST", "/search", json={"col": name, "keywords": "x"}, headers=h),
    ]
    for request in requests:
        r = await c.send(request)
        assert_error(r, 400, startswith="invalid collection name")
    await ping_ok(c)


@pytest.mark.parametrize("name", ["tasks;DROP TABLE documents", "x' OR '1'='1", "a" * 200, "任务"], ids=str)
async def test_bad_collection_names_on_sudo_routes_are_400(server: Server, c: httpx.AsyncClient, name: str) -> None:
    col = _quote(name)
    for method, path, body in (
        ("GET", f"/sudo/{col}", None),
        ("POST", f"/sudo/{col}", {"t": 1}),
        ("POST", f"/sudoquery/{col}", []),
        ("POST", "/sudo/index", None),
    ):
        params = {"col": name, "field": "done"} if path == "/sudo/index" else None
        r = await c.request(method, path, json=body, params=params, headers=root(server))
        assert_error(r, 400, startswith="invalid collection name")
    await ping_ok(c)


@pytest.mark.parametrize("path", ["..%2Fetc", "..%2F..%2Fetc%2Fpasswd", "%2E%2E%2Fetc", "tasks%2F..%2F..%2Fx"])
async def test_path_traversal_in_collection_names(server: Server, c: httpx.AsyncClient, a1: Member, path: str) -> None:
    h = auth(a1.token)
    r = await c.post(f"/db/{path}", json={"t": 1}, headers=h)
    if path.startswith("tasks"):  # a collection "tasks" with a document id: create needs no id
        assert r.status_code in (201, 400), r.text
    else:
        assert_error(r, 400, startswith="invalid collection name")
        assert_error(await c.get(f"/db/{path}", headers=h), 400, startswith="invalid collection name")
    for method, url in (("POST", f"/query/{path}"), ("POST", f"/db/count/{path}"), ("PUT", f"/inc/{path}/x")):
        r = await c.request(method, url, json=[], headers=h)
        assert 400 <= r.status_code < 500, (method, url, r.status_code, r.text)
    names = assert_json(await c.get("/sudolistall/", headers=root(server)))
    assert not [n for n in names if "." in n or "/" in n], names
    await ping_ok(c)


async def test_names_made_of_allowed_characters_stay_plain_names(c: httpx.AsyncClient, a1: Member) -> None:
    h = auth(a1.token)
    for name in (unique_col("tasks--"), unique_col("-_-"), unique_col("DROP_TABLE_documents")):
        doc = await create(c, a1.token, name, {"t": name})
        assert assert_json(await c.get(f"/db/{name}/{doc['id']}", headers=h)) == doc
    assert_error(await c.get(f"/db/{'a' * 101}", headers=h), 400, startswith="invalid collection name")
    await ping_ok(c)


# Field names in clauses and sort

BAD_FIELDS = ["a') OR 1=1 --", "$.x", "a..b", "a[0]", "", ".a", "a.", "a b", "a'", 'a"', "a;b", "a\x00b", "*"]


@pytest.mark.parametrize("field", BAD_FIELDS, ids=repr)
async def test_bad_field_names_are_400(server: Server, c: httpx.AsyncClient, a1: Member, field: str) -> None:
    h = auth(a1.token)
    col = unique_col()
    await create(c, a1.token, col, {"a": 1, "b": 2})
    clause = [[field, "==", 1]]
    for r in (
        await c.post(f"/query/{col}", json=clause, headers=h),
        await c.post(f"/db/count/{col}", json=clause, headers=h),
        await c.put(f"/db/{col}", params={"bulk": "1"}, json={"update": {"z": 1}, "clauses": clause}, headers=h),
        await c.delete(f"/db/{col}", params={"bulk": "1", "x": b64(clause)}, headers=h),
        await c.post(f"/query/{col}", params={"sort": field}, json=[], headers=h)
        if field
        else await c.post(f"/query/{col}", json=[["a", "==", 1], [field, "==", 1]], headers=h),
        await c.post(f"/sudoquery/{col}", json=clause, headers=root(server)),
    ):
        assert_error(r, 400)
    r = await c.put(f"/inc/{col}/{uuid.uuid4()}", json={"field": field, "range": 1}, headers=h)
    assert_error(r, 400)
    page = assert_json(await c.get(f"/db/{col}", headers=h))
    assert page["total"] == 1 and "z" not in page["results"][0]
    await ping_ok(c)


async def test_dotted_field_names_address_nested_objects(c: httpx.AsyncClient, a1: Member) -> None:
    col = unique_col()
    mtl = await create(c, a1.token, col, {"address": {"city": "Montreal"}})
    await create(c, a1.token, col, {"address": {"city": "Laval"}, "address.city": "Montreal"})
    await create(c, a1.token, col, {"address": "Montreal"})
    r = await c.post(f"/query/{col}", json=[["address.city", "==", "Montreal"]], headers=auth(a1.token))
    assert assert_json(r)["results"] == [mtl]
    await ping_ok(c)


# Values are data


HOSTILE_VALUES: list[Any] = [
    "x' OR '1'='1",
    "'; DROP TABLE documents; --",
    '"); DELETE FROM documents; --',
    '{"$gt": ""}',
    "\\",
    "%",
    "_",
    "*",
    "' || (SELECT 1) || '",
    "$.a",
    "null",
    "true",
    "1",
    {"$ne": None},
    ["' OR 1=1"],
]


async def test_values_are_data_not_code(server: Server, c: httpx.AsyncClient, a1: Member) -> None:
    h = auth(a1.token)
    col = unique_col()
    docs = [await create(c, a1.token, col, {"v": v, "i": i}) for i, v in enumerate(HOSTILE_VALUES)]
    plain = await create(c, a1.token, col, {"v": "plain", "i": -1})
    for doc, value in zip(docs, HOSTILE_VALUES, strict=True):
        assert await sudo_get(server, col, doc["id"]) == doc
        r = await c.post(f"/query/{col}", json=[["v", "==", value]], headers=h)
        no_500(r)
        assert assert_json(r)["results"] == [doc], value
    # values that look like code match nothing they do not equal
    for value in ("' OR '1'='1", "plain' OR 'a'='a", "%%", "_%", "' OR 1=1 --", {"$gt": ""}, ["%"]):
        r = await c.post(f"/query/{col}", json=[["v", "==", value]], headers=h)
        assert assert_json(r)["total"] == 0, value
    r = await c.post(f"/query/{col}", json=[["v", "!=", "' OR '1'='1"]], headers=h)
    assert assert_json(r)["total"] == len(docs) + 1
    # bulk operations with hostile values touch only the equal document
    r = await c.put(
        f"/db/{col}", params={"bulk": "1"}, json={"update": {"hit": True}, "clauses": [["v", "==", "%"]]}, headers=h
    )
    assert assert_json(r) == 1
    r = await c.delete(f"/db/{col}", params={"bulk": "1", "x": b64([["v", "==", "_"]])}, headers=h)
    assert assert_json(r) == 1
    assert await sudo_get(server, col, plain["id"]) == plain
    assert await total(c, a1.token, col) == len(docs)
    await ping_ok(c)


async def test_hostile_ids_are_not_found(server: Server, c: httpx.AsyncClient, a1: Member) -> None:
    h = auth(a1.token)
    col = unique_col()
    doc = await create(c, a1.token, col, {"t": 1})
    for bad in ("' OR '1'='1", "1 OR 1=1", "%", "*", doc["id"] + "'--", doc["id"].upper(), " " + doc["id"]):
        quoted = _quote(bad)
        assert_error(await c.get(f"/db/{col}/{quoted}", headers=h), 404, "document not found")
        assert_error(await c.put(f"/db/{col}/{quoted}", json={"t": 2}, headers=h), 404, "document not found")
        assert assert_json(await c.delete(f"/db/{col}/{quoted}", headers=h)) == 0
        r = await c.post(f"/db/{col}", params={"ids": "1"}, json=[bad], headers=h)
        assert assert_json(r) == []
    assert await sudo_get(server, col, doc["id"]) == doc
    await ping_ok(c)


# Operators, malformed filters, wrong types


@pytest.mark.parametrize("op", ["=~", "LIKE", "$eq", "", "===", "between", "in ", "&&", "== 1 OR 1"], ids=repr)
async def test_unknown_operators_are_400(c: httpx.AsyncClient, a1: Member, op: str) -> None:
    col = unique_col()
    await create(c, a1.token, col, {"a": 1})
    r = await c.post(f"/query/{col}", json=[["a", op, 1]], headers=auth(a1.token))
    if op.strip() == "in":  # surrounding spaces around a known operator: either accepted or refused
        assert r.status_code in (200, 400), r.text
    else:
        assert_error(r, 400, f"the 1 query clause's operator: {op} is not supported at the moment")
    await ping_ok(c)


MALFORMED_FILTERS: list[tuple[Any, str]] = [
    ({"a": 1}, ""),
    ("a == 1", ""),
    (5, ""),
    (True, ""),
    ([[]], "required 3 parameters"),
    ([["a"]], "required 3 parameters"),
    ([["a", "=="]], "required 3 parameters"),
    ([["a", "==", 1, 2]], "required 3 parameters"),
    (["a", "==", 1], "required 3 parameters"),
    (["abc"], "required 3 parameters"),
    ([{"field": "a", "op": "==", "value": 1}], "required 3 parameters"),
    ([[1, "==", 1]], "the 1 query clause's field parameter must be a string"),
    ([[None, "==", 1]], "the 1 query clause's field parameter must be a string"),
    ([[["a"], "==", 1]], "the 1 query clause's field parameter must be a string"),
    ([["a", "==", 1], ["a", 5, 1]], "the 2 query clause's operator must be a string"),
    ([["a", None, 1]], "the 1 query clause's operator must be a string"),
    ([["a", ["=="], 1]], "the 1 query clause's operator must be a string"),
]


@pytest.mark.parametrize(("clauses", "text"), MALFORMED_FILTERS, ids=lambda v: repr(v)[:30])
async def test_malformed_filters_are_400(
    server: Server, c: httpx.AsyncClient, a1: Member, clauses: Any, text: str
) -> None:
    h = auth(a1.token)
    col = unique_col()
    await create(c, a1.token, col, {"a": 1})
    for r in (
        await c.post(f"/query/{col}", json=clauses, headers=h),
        await c.post(f"/db/count/{col}", json=clauses, headers=h),
        await c.post(f"/sudoquery/{col}", json=clauses, headers=root(server)),
        await c.put(f"/db/{col}", params={"bulk": "1"}, json={"update": {"z": 1}, "clauses": clauses}, headers=h),
        await c.delete(f"/db/{col}", params={"bulk": "1", "x": b64(clauses)}, headers=h),
    ):
        line = assert_error(r, 400)
        if text:
            assert text in line, (r.request.url, line)
    page = assert_json(await c.get(f"/db/{col}", headers=h))
    assert page["total"] == 1 and "z" not in page["results"][0]
    await ping_ok(c)


@pytest.mark.parametrize(
    "body", [b"{}", b"[]", b'"x"', b"null", b'{"update": 5, "clauses": []}', b'{"update": {}, "clauses": {"a": 1}}']
)
async def test_malformed_bulk_update_bodies(c: httpx.AsyncClient, a1: Member, body: bytes) -> None:
    h = auth(a1.token)
    col = unique_col()
    doc = await create(c, a1.token, col, {"a": 1})
    r = await c.put(f"/db/{col}", params={"bulk": "1"}, content=body, headers=h)
    if body == b"{}":  # missing update and clauses: no change, count of matches (spec 03 section 10)
        assert assert_json(r) == 1
    else:
        assert_error(r, 400)
    assert assert_json(await c.get(f"/db/{col}/{doc['id']}", headers=h)) == doc
    await ping_ok(c)


@pytest.mark.parametrize("x", ["!!!", "e30", "bnVsbA==", b64({"a": 1}), b64("x"), b64([1, 2]), "W1siYSIsIj0iLDFd"])
async def test_malformed_bulk_delete_filters(c: httpx.AsyncClient, a1: Member, x: str) -> None:
    # e30 = {}, bnVsbA== = null; W1siYSIsIj0iLDFd is truncated JSON
    h = auth(a1.token)
    col = unique_col()
    await create(c, a1.token, col, {"a": 1})
    r = await c.delete(f"/db/{col}", params={"bulk": "1", "x": x}, headers=h)
    if x == "bnVsbA==":  # null = no filter: every writable document (spec 03 sections 6.1, 10)
        assert assert_json(r) == 1
    else:
        # decision 3: invalid Base64 and bad clause arrays -> 400
        assert_error(r, 400)
        assert await total(c, a1.token, col) == 1
    await ping_ok(c)


@pytest.mark.parametrize(
    "body",
    [
        {"field": "n", "range": "2"},
        {"field": "n", "range": 1.5},
        {"field": "n", "range": True},
        {"field": "n", "range": None},
        {"field": "n", "range": [1]},
        {"field": "n", "range": {"a": 1}},
        {"field": "n"},
        {"field": 5, "range": 1},
        {"field": ["n"], "range": 1},
        {"field": "", "range": 1},
        {"range": 1},
        [],
        "n",
    ],
    ids=lambda v: repr(v)[:30],
)
async def test_increment_with_wrong_types_is_400(server: Server, c: httpx.AsyncClient, a1: Member, body: Any) -> None:
    col = unique_col()
    doc = await create(c, a1.token, col, {"n": 1})
    r = await c.put(f"/inc/{col}/{doc['id']}", json=body, headers=auth(a1.token))
    assert_error(r, 400)
    assert await sudo_get(server, col, doc["id"]) == doc
    await ping_ok(c)


@pytest.mark.parametrize("value", ["5", True, False, [1], {"a": 1}, "abc"], ids=repr)
async def test_increment_of_a_non_number_is_400(server: Server, c: httpx.AsyncClient, a1: Member, value: Any) -> None:
    col = unique_col()
    doc = await create(c, a1.token, col, {"n": value})
    r = await c.put(f"/inc/{col}/{doc['id']}", json={"field": "n", "range": 1}, headers=auth(a1.token))
    # decision 3: 400 (spec 03 section 9 says 500)
    assert_error(r, 400, startswith="invalid type for increment")
    assert await sudo_get(server, col, doc["id"]) == doc
    await ping_ok(c)


async def test_increment_stays_exact_on_large_integers(c: httpx.AsyncClient, a1: Member) -> None:
    col = unique_col()
    big = 2**53 + 1
    doc = await create(c, a1.token, col, {"n": big})
    r = await c.put(f"/inc/{col}/{doc['id']}", json={"field": "n", "range": 2}, headers=auth(a1.token))
    assert assert_json(r) is True
    stored = assert_json(await c.get(f"/db/{col}/{doc['id']}", headers=auth(a1.token)))
    assert stored["n"] == big + 2 and isinstance(stored["n"], int)
    await ping_ok(c)


# Hostile JSON


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


async def test_deeply_nested_json_is_4xx(server: Server, c: httpx.AsyncClient, a1: Member) -> None:
    h = auth(a1.token)
    col = unique_col()
    deep_object = nested(2000)
    deep_array = b"[" * 2000 + b"]" * 2000
    for method, url, body in (
        ("POST", f"/db/{col}", deep_object),
        ("POST", f"/db/{col}", b'{"x":' + deep_array + b"}"),
        ("POST", f"/db/{col}?bulk=1", b"[" + deep_object + b"]"),
        ("POST", f"/query/{col}", deep_array),
        ("POST", f"/db/count/{col}", deep_array),
        ("PUT", f"/db/{col}?bulk=1", b'{"update":' + deep_object + b',"clauses":[]}'),
    ):
        r = await c.request(method, url, content=body, headers=h)
        assert_error(r, None)
    assert await total(c, a1.token, col) == 0
    await ping_ok(c)


@pytest.mark.parametrize("depth", [100, 300, 900])
async def test_moderately_nested_documents_round_trip_or_are_refused(
    c: httpx.AsyncClient, a1: Member, depth: int
) -> None:
    h = auth(a1.token)
    col = unique_col()
    r = await c.post(f"/db/{col}", content=nested(depth), headers=h)
    if r.status_code == 201:
        doc = r.json()
        got = assert_json(await c.get(f"/db/{col}/{doc['id']}", headers=h))
        assert got == doc
    else:
        assert_error(r, None)
        assert await total(c, a1.token, col) == 0
    await ping_ok(c)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"n": 18446744073709551616}',
        b'{"n": -9223372036854775809}',
        b'{"n": 100000000000000000000000000000}',
        b'{"n": [1, 2, 340282366920938463463374607431768211456]}',
        b'{"n": NaN}',
        b'{"n": Infinity}',
        b'{"n": -Infinity}',
        b'{"n": 1e999}',
    ],
    ids=lambda v: v.decode()[:30],
)
async def test_unrepresentable_numbers_are_400(c: httpx.AsyncClient, a1: Member, raw: bytes) -> None:
    # integers past 64 bits would be silently rounded; NaN/Infinity are not JSON (decision 3: 400)
    h = auth(a1.token)
    col = unique_col()
    assert_error(await c.post(f"/db/{col}", content=raw, headers=h), 400)
    assert_error(await c.post(f"/db/{col}?bulk=1", content=b"[" + raw + b"]", headers=h), 400)
    assert await total(c, a1.token, col) == 0
    doc = await create(c, a1.token, col, {"n": 1})
    assert_error(await c.put(f"/db/{col}/{doc['id']}", content=raw, headers=h), 400)
    clause = b'[["n", "==", ' + raw[6:-1] + b"]]"
    assert_error(await c.post(f"/query/{col}", content=clause, headers=h), 400)
    assert assert_json(await c.get(f"/db/{col}/{doc['id']}", headers=h)) == doc
    await ping_ok(c)


async def test_64_bit_integers_round_trip_exactly(c: httpx.AsyncClient, a1: Member) -> None:
    h = auth(a1.token)
    col = unique_col()
    body = {"max": 2**63 - 1, "min": -(2**63), "safe": 2**53 + 1}
    doc = await create(c, a1.token, col, body)
    got = assert_json(await c.get(f"/db/{col}/{doc['id']}", headers=h))
    assert same_json(strip_system(got), body), got
    await ping_ok(c)


async def test_body_over_the_limit_is_413(server: Server, c: httpx.AsyncClient, a1: Member) -> None:
    h = auth(a1.token)
    col = unique_col()
    limit = server.services.settings.max_body_bytes
    big = b'{"s": "' + b"x" * (limit + 10) + b'"}'
    assert_error(await c.post(f"/db/{col}", content=big, headers=h), 413)

    async def stream() -> AsyncIterator[bytes]:  # no Content-Length: counted while reading
        yield b'{"s": "'
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    r = await c.post(f"/db/{col}", content=stream(), headers=h)
    assert_error(r, 413)
    assert await total(c, a1.token, col) == 0
    await ping_ok(c)


async def test_nul_and_odd_unicode_round_trip(c: httpx.AsyncClient, a1: Member) -> None:
    h = auth(a1.token)
    col = unique_col()
    body = {
        "nul": "a\u0000b",
        "only_nul": "\u0000",
        "ctl": "\u0001\u001f\u007f",
        "emoji": "\U0001f600 \u2764\ufe0f",
        "rtl": "\u05e9\u05dc\u05d5\u05dd",
        "combining": "e\u0301",
        "line_sep": "\u2028\u2029",
        "bom": "\ufeff",
        "quote": "\"'`\\",
        "k\u00e9y": "v",
    }
    doc = await create(c, a1.token, col, body)
    got = assert_json(await c.get(f"/db/{col}/{doc['id']}", headers=h))
    assert strip_system(got) == body
    r = await c.post(f"/query/{col}", json=[["nul", "==", "a\u0000b"]], headers=h)
    assert assert_json(r)["results"] == [got]
    r = await c.post(f"/query/{col}", json=[["nul", "==", "a"]], headers=h)
    assert assert_json(r)["total"] == 0
    await ping_ok(c)


async def test_lone_surrogates_are_refused_or_kept(c: httpx.AsyncClient, a1: Member) -> None:
    h = auth(a1.token)
    col = unique_col()
    r = await c.post(f"/db/{col}", content=b'{"s": "\\ud800"}', headers=h)
    if r.status_code == 201:
        got = assert_json(await c.get(f"/db/{col}/{r.json()['id']}", headers=h))
        assert got == r.json()
    else:
        assert_error(r, 400)
        assert await total(c, a1.token, col) == 0
    await ping_ok(c)


# Bulk writes are all-or-nothing


@pytest.mark.parametrize(
    "elements",
    [
        b'[{"a": 1}, 5, {"b": 2}]',
        b'[{"a": 1}, {"b": 2}, null]',
        b'[{"a": 1}, [], {"b": 2}]',
        b'[{"a": 1}, "x"]',
        b'[{"a": 1}, {"n": 18446744073709551616}]',
        b'[{"a": 1}, {"b": 2}',
        b'{"a": 1}',
    ],
    ids=lambda v: v.decode()[:30],
)
async def test_bulk_create_with_a_bad_element_writes_nothing(
    server: Server, c: httpx.AsyncClient, a1: Member, elements: bytes
) -> None:
    h = auth(a1.token)
    col = unique_col()
    await create(c, a1.token, col, {"before": True})
    before = assert_json(await c.post(f"/db/count/{col}", headers=h))["count"]
    events: list[Any] = []
    stop = server.services.events.subscribe(events.append)
    try:
        r = await c.post(f"/db/{col}", params={"bulk": "1"}, content=elements, headers=h)
    finally:
        stop()
    assert_error(r, 400)
    assert assert_json(await c.post(f"/db/count/{col}", headers=h))["count"] == before == 1
    assert events == []
    await ping_ok(c)


# Crossing apps


async def second_app(c: httpx.AsyncClient) -> dict[str, str]:
    r = await c.get(
        "/account/init", params={"email": unique_email("tenant2"), "ui": "1"}, headers={"Accept": "application/json"}
    )
    creds = assert_json(r)
    assert set(creds) == {"pk", "rootToken", "pw"} and creds["pk"] != DEV_PK
    return creds


async def test_another_app_cannot_read_or_write_documents(server: Server, c: httpx.AsyncClient, a1: Member) -> None:
    col = unique_col()
    pub = unique_col("pub_posts")
    doc = await create(c, a1.token, col, {"secret": "dev app"})
    pub_doc = await create(c, a1.token, pub, {"secret": "dev app, public"})
    other = await second_app(c)
    async with extra_client(server, pk=other["pk"]) as o:
        # a user of the other app
        r = await o.post("/register", json={"email": unique_email("o"), "password": "pw-123456"})
        o_token = assert_json(r)
        o_root = auth(other["rootToken"])
        for h, route in ((auth(o_token), "db"), (o_root, "sudo")):
            assert_error(await o.get(f"/{route}/{col}/{doc['id']}", headers=h), 404, "document not found")
            assert_error(await o.get(f"/{route}/{pub}/{pub_doc['id']}", headers=h), 404, "document not found")
            assert assert_json(await o.get(f"/{route}/{col}", headers=h))["total"] == 0
            r = await o.post(f"/{route}/{col}", params={"ids": "1"}, json=[doc["id"]], headers=h)
            assert assert_json(r) == []
            r = await o.put(f"/{route}/{col}/{doc['id']}", json={"secret": "x"}, headers=h)
            assert_error(r, 404, "document not found")
            assert assert_json(await o.delete(f"/{route}/{col}/{doc['id']}", headers=h)) == 0
            r = await o.delete(f"/{route}/{col}", params={"bulk": "1", "x": b64([])}, headers=h)
            assert assert_json(r) == 0
            r = await o.put(
                f"/{route}/{col}", params={"bulk": "1"}, json={"update": {"x": 1}, "clauses": []}, headers=h
            )
            assert assert_json(r) == 0
        assert assert_json(await o.post(f"/sudoquery/{col}", json=[], headers=o_root))["total"] == 0
        assert assert_json(await o.post(f"/query/{pub}", json=[]))["total"] == 0  # anonymous, other key
        assert assert_json(await o.get(f"/db/{pub}"))["total"] == 0
        r = await o.put(f"/inc/{col}/{doc['id']}", json={"field": "n", "range": 1}, headers=auth(o_token))
        assert_error(r, 404, "document not found")
        assert assert_json(await o.post(f"/db/count/{col}", headers=auth(o_token))) == {"count": 0}
        # the other app's credentials with the dev app's key
        assert_error(await c.get(f"/db/{col}/{doc['id']}", headers=auth(o_token)), 400)
        assert_error(await c.get(f"/sudo/{col}/{doc['id']}", headers=o_root), 400)
        assert_error(await c.get(f"/sudo/{col}", headers=o_root), 400)
        # the dev app's session with the other app's key
        assert_error(await o.get(f"/db/{col}/{doc['id']}", headers=auth(a1.token)), 400)
        assert_error(await o.get(f"/db/{col}", headers=auth(a1.token)), 400)
    assert await sudo_get(server, col, doc["id"]) == doc
    assert await sudo_get(server, pub, pub_doc["id"]) == pub_doc
    await ping_ok(c)


# The same documents through SQLite and PostgreSQL

ROUND_TRIP: dict[str, Any] = {
    "int": 42,
    "neg": -7,
    "zero": 0,
    "big": 2**63 - 1,
    "small": -(2**63),
    "float": 0.1,
    "float_int": 3.0,
    "neg_zero": -0.0,
    "exp": 1.5e-10,
    "huge": 1e300,
    "pi": 3.141592653589793,
    "true": True,
    "false": False,
    "null": None,
    "empty": "",
    "text": "hello",
    "unicode": "caf\u00e9 \u4e2d\u6587 \U0001f680 \u05e9\u05dc\u05d5\u05dd e\u0301",
    "escapes": 'line\nbreak\ttab "quote" back\\slash </script>',
    "list": [1, "two", 3.5, None, True, [], {}],
    "nested": {"a": {"b": {"c": [1, {"d": "e"}]}}, "x.y": 1, "": "empty key"},
    "empty_obj": {},
    "empty_list": [],
    "k\u00e9y with spaces": "v",
}


@pytest_asyncio.fixture
async def two_stores(tmp_path: Path, pg_url: str) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    clients: dict[str, httpx.AsyncClient] = {}
    apps = {
        kind: create_app(make_settings(kind, tmp_path / kind, pg_url if kind == "pg" else None))
        for kind in ("sqlite", "pg")
    }
    contexts = []
    try:
        for kind, app in apps.items():
            app.state.services.tenancy.announce = lambda text: None
            ctx = app.router.lifespan_context(app)
            await ctx.__aenter__()
            contexts.append(ctx)
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            clients[kind] = httpx.AsyncClient(
                transport=transport, base_url="http://testserver", headers={"SB-PUBLIC-KEY": DEV_PK}
            )
        yield clients
    finally:
        for client in clients.values():
            await client.aclose()
        for ctx in reversed(contexts):
            await ctx.__aexit__(None, None, None)


@pytest.mark.skipif(not PG_URL and not REQUIRE_SERVICES, reason="SB_TEST_PG_URL is not set")
async def test_sqlite_and_postgresql_answer_the_same_json(two_stores: dict[str, httpx.AsyncClient]) -> None:
    answers: dict[str, list[Any]] = {}
    col = unique_col("same")
    for kind, c in two_stores.items():
        a1, _, _ = await accounts_ab(c)
        h = auth(a1.token)
        doc = await create(c, a1.token, col, ROUND_TRIP)
        got = [
            strip_system(doc),
            strip_system(assert_json(await c.get(f"/db/{col}/{doc['id']}", headers=h))),
            [strip_system(d) for d in assert_json(await c.get(f"/db/{col}", headers=h))["results"]],
            [
                strip_system(d)
                for d in assert_json(await c.post(f"/query/{col}", json=[["float", "==", 0.1]], headers=h))["results"]
            ],
            [
                strip_system(d)
                for d in assert_json(
                    await c.post(f"/query/{col}", json=[["nested.a.b.c", "==", [1, {"d": "e"}]]], headers=h)
                )["results"]
            ],
        ]
        r = await c.put(f"/db/{col}/{doc['id']}", json={"float": 2.5, "unicode": "\u00e9t\u00e9"}, headers=h)
        got.append(strip_system(assert_json(r)))
        got.append(strip_system(assert_json(await c.get(f"/db/{col}/{doc['id']}", headers=h))))
        answers[kind] = got
        await ping_ok(c)
    assert same_json(answers["sqlite"][1], ROUND_TRIP), answers["sqlite"][1]
    assert same_json(answers["pg"][1], ROUND_TRIP), answers["pg"][1]
    assert same_json(answers["sqlite"], answers["pg"])
