"""Filters at their limits: every limit a 400 naming it, on every route that takes a filter;
pathological values (long numeric strings that once froze the server) answered correctly while
/ping keeps answering; strings with NUL refused; field indexes created, listed and used over HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from sbserver.services.query import MAX_CLAUSES, MAX_DEPTH, MAX_IN, MAX_JSON, MAX_TEXT, MAX_VALUES
from sbserver.services.tenancy import DEV_PK
from tests.http.conftest import Server
from tests.http.doc_helpers import b64, create, root, unique_col
from tests.http.helpers import (
    Member,
    _pg_session_ready,
    accounts_ab,
    assert_error,
    assert_json,
    auth,
    extra_client,
    ping_ok,
)

__all__ = ["_pg_session_ready"]


@pytest_asyncio.fixture
async def c(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with extra_client(server, pk=DEV_PK) as client:
        yield client


@pytest_asyncio.fixture
async def a1(c: httpx.AsyncClient) -> Member:
    member, _, _ = await accounts_ab(c)
    return member


async def every_filter_route(
    server: Server, c: httpx.AsyncClient, token: str, col: str, clauses: Any
) -> list[httpx.Response]:
    h = auth(token)
    return [
        await c.post(f"/query/{col}", json=clauses, headers=h),
        await c.post(f"/db/count/{col}", json=clauses, headers=h),
        await c.post(f"/sudoquery/{col}", json=clauses, headers=root(server)),
        await c.put(f"/db/{col}", params={"bulk": "1"}, json={"update": {"z": 1}, "clauses": clauses}, headers=h),
        await c.delete(f"/db/{col}", params={"bulk": "1", "x": b64(clauses)}, headers=h),
    ]


OVER_LIMITS: list[tuple[Any, str]] = [
    ([["a", "==", 1]] * (MAX_CLAUSES + 1), f"at most {MAX_CLAUSES} clauses"),
    ([[".".join(["a"] * (MAX_DEPTH + 1)), "==", 1]], f"at most {MAX_DEPTH} dotted parts"),
    ([["a", "in", list(range(MAX_IN + 1))]], f"at most {MAX_IN} values"),
    (
        [["a", "in", list(range(MAX_IN))], ["b", "in", list(range(MAX_IN))], ["c", "==", 1]],
        f"at most {MAX_VALUES} values",
    ),
    ([["a", "==", "x" * (MAX_TEXT + 1)]], f"at most {MAX_TEXT} characters"),
    ([["a", "==", "1" * 40000 + "x"]], f"at most {MAX_TEXT} characters"),
    ([["a", "in", ["1" * (MAX_TEXT + 1)]]], f"at most {MAX_TEXT} characters"),
    ([["a", "==", {"k": "v" * (MAX_JSON // 2)} | {"j": "w" * (MAX_JSON // 2)}]], f"at most {MAX_JSON} bytes"),
]


@pytest.mark.parametrize(("clauses", "text"), OVER_LIMITS, ids=lambda v: repr(v)[:40])
async def test_filters_over_a_limit_are_400_naming_it(
    server: Server, c: httpx.AsyncClient, a1: Member, clauses: Any, text: str
) -> None:
    col = unique_col()
    await create(c, a1.token, col, {"a": 1})
    for r in await every_filter_route(server, c, a1.token, col, clauses):
        line = assert_error(r, 400)
        assert text in line, (r.request.url, line)
    page = assert_json(await c.get(f"/db/{col}", headers=auth(a1.token)))
    assert page["total"] == 1 and "z" not in page["results"][0]  # nothing updated or deleted
    await ping_ok(c)


# Values that a backtracking numeric-string test took seconds or forever on, each at the limit.
PATHOLOGICAL = [
    "1" * (MAX_TEXT - 1) + "x",
    "1" * MAX_TEXT,
    " " * (MAX_TEXT - 1) + "1",
    "1" * 2000 + "." + "1" * 2000 + "e",
    "-" + "1" * 3000 + "e+" + "1" * 3,
    "\t" * 2000 + "1" * 2000 + "\t",
]


async def test_pathological_numeric_strings_answer_while_ping_answers(
    server: Server, c: httpx.AsyncClient, a1: Member
) -> None:
    col = unique_col()
    h = auth(a1.token)
    for value in PATHOLOGICAL:
        await create(c, a1.token, col, {"n": value})
    await create(c, a1.token, col, {"n": 7})
    for value in PATHOLOGICAL:
        for op in ("==", ">", "<=", "in"):
            clauses = [["n", op, [value] if op == "in" else value]]
            query, ping = await asyncio.gather(c.post(f"/query/{col}", json=clauses, headers=h), c.get("/ping"))
            assert ping.status_code == 200 and ping.text == "true"
            page = assert_json(query)
            if op in ("==", "in"):
                assert [d["n"] for d in page["results"]] == [value], (op, value[:20])
    # A numeric string at the limit meets numbers: "1111...1" (4096 digits) is above 7.
    page = assert_json(await c.post(f"/query/{col}", json=[["n", "<", "1" * MAX_TEXT]], headers=h))
    assert 7 in [d["n"] for d in page["results"]]
    await ping_ok(c)


async def test_nul_in_documents_and_filters(server: Server, c: httpx.AsyncClient, a1: Member) -> None:
    """NUL in strings, keys and nested values is stored and found (PostgreSQL's jsonb cannot hold
    it: both the document and the filter read it as U+FFFD there)."""
    col = unique_col()
    h = auth(a1.token)
    nul = await create(c, a1.token, col, {"a": "x\u0000y", "k\u0000": 1, "n": [{"b": "\u0000"}]})
    text = await create(c, a1.token, col, {"a": "x\\u0000y", "n": [{"b": "\\u0000"}]})  # backslash-u, not NUL
    for clauses, found in [
        ([["a", "==", "x\u0000y"]], [nul]),
        ([["a", "==", "x\\u0000y"]], [text]),
        ([["a", ">", "x"]], [nul, text]),
        ([["n", "==", [{"b": "\u0000"}]]], [nul]),
        ([["n", "in", [{"b": "\u0000"}]]], [nul]),
        ([["n", "==", [{"b": "\\u0000"}]]], [text]),
    ]:
        page = assert_json(await c.post(f"/query/{col}", json=clauses, headers=h))
        assert [d["id"] for d in page["results"]] == [d["id"] for d in found], clauses
    await ping_ok(c)


async def test_indexes_over_http_are_created_listed_and_idempotent(
    server: Server, c: httpx.AsyncClient, a1: Member
) -> None:
    col = unique_col()
    h = auth(a1.token)
    for i in range(30):
        await create(c, a1.token, col, {"k": i % 5, "s": f"v{i}"})
    assert assert_json(await c.get("/sudo/index", params={"col": col}, headers=root(server))) == []
    for _ in range(2):
        r = await c.post("/sudo/index", params={"col": col, "field": "k"}, headers=root(server))
        assert r.status_code == 200, r.text
    # The Go client's route, with a root token.
    r = await c.post("/db/index", params={"col": col, "field": "s"}, headers=root(server))
    assert r.status_code == 200, r.text
    assert assert_json(await c.get("/sudo/index", params={"col": col}, headers=root(server))) == ["k", "s"]
    page = assert_json(
        await c.post(f"/query/{col}", params={"sort": "k", "desc": "true"}, json=[["k", ">=", 3]], headers=h)
    )
    assert page["total"] == 12 and [d["k"] for d in page["results"][:7]] == [4] * 6 + [3]
    # Refusals: a user token, a missing col, a bad field.
    assert_error(await c.post("/sudo/index", params={"col": col, "field": "k"}, headers=h), 400, "invalid root token")
    assert_error(await c.get("/sudo/index", headers=root(server)), 501, "method not implemented")  # spec 09 #98
    assert_error(await c.post("/sudo/index", params={"col": col, "field": "a b"}, headers=root(server)), 400)
    await ping_ok(c)
