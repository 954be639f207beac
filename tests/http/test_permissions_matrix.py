"""The permission matrix of spec 03 section 4, as a table: collection suffix x caller.

A1 (account A) creates the documents; each caller then tries every read (list, get, get by ids,
query, count, search) and every write (update, increment, delete, bulk update, bulk delete), and
the outcomes are compared with what the read and write levels of the name allow. Refused writes
must leave the document exactly as it was.

Levels follow the rule of spec 03 section 4.1: each digit is tested bitwise (4 read, 2 write),
everyone digit first, then the account digit. Statuses follow decision 3: unreadable -> 404
``document not found``; readable but not writable -> 403 ``not authorized``; a refused delete
answers ``0``; an anonymous write on ``pub_`` -> 401.

The last tests run an app that strips suffixes (``KEEP_PERM_COL_NAME`` set, decision 7).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from sbserver.app import create_app
from sbserver.services.tenancy import DEV_PK
from sbserver.settings import Settings
from tests.conftest import STORE_KINDS
from tests.http.conftest import Server, make_settings
from tests.http.doc_helpers import b64, create, root, sudo_get, unique_col
from tests.http.helpers import (
    Member,
    _pg_session_ready,
    accounts_ab,
    admin_token,
    assert_error,
    assert_json,
    auth,
)

__all__ = ["_pg_session_ready"]

OWNER, ACCOUNT, EVERYONE = "owner", "account", "everyone"

# collection kind -> (prefix, suffix, read level, write level)
MATRIX: dict[str, tuple[str, str, str, str]] = {
    "none": ("tasks", "", ACCOUNT, OWNER),  # default 740
    "_740_": ("tasks", "_740_", ACCOUNT, OWNER),
    "_700_": ("tasks", "_700_", OWNER, OWNER),
    "_600_": ("tasks", "_600_", OWNER, OWNER),
    "_760_": ("tasks", "_760_", ACCOUNT, ACCOUNT),
    "_744_": ("tasks", "_744_", EVERYONE, OWNER),
    "_764_": ("tasks", "_764_", EVERYONE, ACCOUNT),
    "_766_": ("tasks", "_766_", EVERYONE, EVERYONE),
    "_770_": ("tasks", "_770_", ACCOUNT, ACCOUNT),
    "_226_": ("tasks", "_226_", EVERYONE, EVERYONE),
    # 6-6-2: the everyone digit has no read bit, the account digit has; 2 is the write bit.
    # (The worked table of spec 03 section 4.1 lists 662 with 766 as everyone-readable; the
    # bitwise rule stated above that table, which upstream implements, gives account.)
    "_662_": ("tasks", "_662_", ACCOUNT, EVERYONE),
    "_244_": ("tasks", "_244_", EVERYONE, OWNER),
    "pub_": ("pub_posts", "", EVERYONE, OWNER),  # decision 5: public read, owner-only write
}

CALLERS = ["a1", "a2", "b", "admin", "root"]
READS = ["list", "get", "ids", "query", "count", "search"]
WRITES = ["update", "increment", "delete", "bulk_update", "bulk_delete"]

CASES = [(kind, caller) for kind in MATRIX for caller in CALLERS] + [("pub_", "anonymous")]


def reaches(caller: str, level: str) -> bool:
    """Whether a caller falls inside a permission level for A1's document."""
    if caller in ("a1", "admin", "root"):
        return True  # the creator always keeps access; role 100 bypasses everything (section 4.3)
    if caller == "a2":
        return level in (ACCOUNT, EVERYONE)
    if caller == "b":
        return level == EVERYONE
    return False


def expected(kind: str, caller: str) -> dict[str, str]:
    _, _, read, write = MATRIX[kind]
    out: dict[str, str] = {}
    if caller == "anonymous":  # only pub_ collections: public read, every write needs a session
        out.update({op: "seen" for op in ("list", "get", "ids", "query")})
        out.update({"count": "401", "search": "401"})  # user routes (spec 09 item 79)
        out.update({op: "401" for op in WRITES})
        return out
    can_read, can_write = reaches(caller, read), reaches(caller, write)
    for op in READS:
        out[op] = "seen" if can_read else "hidden"
    if caller == "root":
        out["count"] = "n/a"  # root on /db/count/ has its own test below
        out["search"] = "n/a"  # no root search route
        out["increment"] = "n/a"  # no sudo increment (spec 02 section 4.15)
    for op in ("update", "increment"):  # section 4.2: these consider readable rows only
        if op not in out:
            out[op] = ("done" if can_write else "403") if can_read else "404"
    for op in ("delete", "bulk_update", "bulk_delete"):
        out[op] = "done" if can_write else "0"
    return out


@dataclass
class Caller:
    name: str
    headers: dict[str, str]
    sudo: bool = False

    def db(self, col: str) -> str:
        return f"/sudo/{col}" if self.sudo else f"/db/{col}"

    def query(self, col: str) -> str:
        return f"/sudoquery/{col}" if self.sudo else f"/query/{col}"


async def caller_of(server: Server, name: str, a1: Member, a2: Member, b: Member) -> Caller:
    if name == "admin":
        return Caller(name, auth(await admin_token(server)))
    if name == "root":
        return Caller(name, auth(server.dev.root_token), sudo=True)
    if name == "anonymous":
        return Caller(name, {})
    return Caller(name, auth({"a1": a1, "a2": a2, "b": b}[name].token))


def _refusal(r: httpx.Response) -> str:
    """'403' / '404' / '401' for the refusals decision 3 names, else a description of the answer."""
    fixed = {
        403: "not authorized\n",
        404: "document not found\n",
        401: "missing authorization HTTP header\n",
    }
    if r.status_code in fixed and r.text == fixed[r.status_code]:
        return str(r.status_code)
    return f"{r.status_code} {r.text[:80]!r}"


async def read_outcomes(server: Server, who: Caller, col: str, doc: dict[str, Any], word: str) -> dict[str, str]:
    c = server.client
    h = who.headers
    marker = [["k", "==", doc["k"]]]
    out: dict[str, str] = {}

    r = await c.get(who.db(col), params={"size": "1000"}, headers=h)
    if r.status_code == 200:
        out["list"] = "seen" if doc in r.json()["results"] else "hidden"
    else:
        out["list"] = _refusal(r)

    r = await c.get(f"{who.db(col)}/{doc['id']}", headers=h)
    if r.status_code == 200:
        out["get"] = "seen" if r.json() == doc else f"wrong {r.text[:80]}"
    else:
        out["get"] = "hidden" if _refusal(r) == "404" else _refusal(r)

    r = await c.post(who.db(col), params={"ids": "1"}, json=[doc["id"]], headers=h)
    if r.status_code == 200:
        out["ids"] = {"[doc]": "seen", "[]": "hidden"}.get("[doc]" if r.json() == [doc] else r.text, r.text[:80])
    else:
        out["ids"] = _refusal(r)

    r = await c.post(who.query(col), json=marker, headers=h)
    if r.status_code == 200:
        page = r.json()
        out["query"] = (
            "seen" if page["results"] == [doc] and page["total"] == 1 else "hidden" if page["total"] == 0 else r.text
        )
    else:
        out["query"] = _refusal(r)

    if who.sudo:
        out["count"] = out["search"] = "n/a"
    else:
        r = await c.post(f"/db/count/{col}", json=marker, headers=h)
        if r.status_code == 200:
            out["count"] = {1: "seen", 0: "hidden"}.get(r.json()["count"], r.text)
        else:
            out["count"] = _refusal(r)
        r = await c.post("/search", json={"col": col, "keywords": word}, headers=h)
        if r.status_code == 200:
            out["search"] = "seen" if r.json() == [doc] else "hidden" if r.json() == [] else r.text[:80]
        else:
            out["search"] = _refusal(r)
    return out


async def write_outcomes(server: Server, who: Caller, col: str, docs: dict[str, dict[str, Any]]) -> dict[str, str]:
    c = server.client
    h = who.headers
    out: dict[str, str] = {}

    doc = docs["update"]
    r = await c.put(f"{who.db(col)}/{doc['id']}", json={"changed": True}, headers=h)
    after = await sudo_get(server, col, doc["id"])
    if r.status_code == 200:
        ok = r.json() == {**doc, "changed": True} and after == {**doc, "changed": True}
        out["update"] = "done" if ok else f"200 {r.text[:60]} stored {after}"
    else:
        out["update"] = _refusal(r) if after == doc else f"{_refusal(r)} but changed"

    doc = docs["increment"]
    if who.sudo:
        out["increment"] = "n/a"
    else:
        r = await c.put(f"/inc/{col}/{doc['id']}", json={"field": "n", "range": 2}, headers=h)
        after = await sudo_get(server, col, doc["id"])
        if r.status_code == 200:
            out["increment"] = "done" if r.text == "true" and after == {**doc, "n": 3} else f"200 stored {after}"
        else:
            out["increment"] = _refusal(r) if after == doc else f"{_refusal(r)} but changed"

    doc = docs["delete"]
    r = await c.delete(f"{who.db(col)}/{doc['id']}", headers=h)
    after = await sudo_get(server, col, doc["id"])
    if r.status_code == 200 and r.text == "1":
        out["delete"] = "done" if after is None else "1 but still there"
    elif r.status_code == 200 and r.text == "0":
        out["delete"] = "0" if after == doc else "0 but changed"
    else:
        out["delete"] = _refusal(r) if after == doc else f"{_refusal(r)} but changed"

    doc = docs["bulk_update"]
    body = {"update": {"changed": True}, "clauses": [["k", "==", doc["k"]]]}
    r = await c.put(who.db(col), params={"bulk": "1"}, json=body, headers=h)
    after = await sudo_get(server, col, doc["id"])
    if r.status_code == 200 and r.text == "1":
        out["bulk_update"] = "done" if after == {**doc, "changed": True} else f"1 stored {after}"
    elif r.status_code == 200 and r.text == "0":
        out["bulk_update"] = "0" if after == doc else "0 but changed"
    else:
        out["bulk_update"] = _refusal(r) if after == doc else f"{_refusal(r)} but changed"

    doc = docs["bulk_delete"]
    r = await c.delete(who.db(col), params={"bulk": "1", "x": b64([["k", "==", doc["k"]]])}, headers=h)
    after = await sudo_get(server, col, doc["id"])
    if r.status_code == 200 and r.text == "1":
        out["bulk_delete"] = "done" if after is None else "1 but still there"
    elif r.status_code == 200 and r.text == "0":
        out["bulk_delete"] = "0" if after == doc else "0 but changed"
    else:
        out["bulk_delete"] = _refusal(r) if after == doc else f"{_refusal(r)} but changed"

    if await sudo_get(server, col, docs["read"]["id"]) != docs["read"]:  # writes aimed elsewhere
        out["read document"] = "changed"
    return out


@pytest.mark.parametrize(("kind", "caller"), CASES, ids=[f"{k}-{c}" for k, c in CASES])
async def test_permission_matrix(server: Server, kind: str, caller: str) -> None:
    c = server.client
    a1, a2, b = await accounts_ab(c)
    prefix, suffix, _, _ = MATRIX[kind]
    col = unique_col(prefix, suffix)
    base = await server.services.tenancy.base(DEV_PK)
    docs: dict[str, dict[str, Any]] = {}
    for op in ["read", *WRITES]:
        docs[op] = await create(c, a1.token, col, {"k": uuid.uuid4().hex, "n": 1, "op": op})
    # B's own document sits beside A1's: it never counts as A1's
    await create(c, b.token, col, {"k": "b-own", "n": 1})
    word = "w" + uuid.uuid4().hex[:10]
    await server.services.documents.index_text(base, col, docs["read"]["id"], f"matrix {word}")

    who = await caller_of(server, caller, a1, a2, b)
    actual = await read_outcomes(server, who, col, docs["read"], word)
    actual.update(await write_outcomes(server, who, col, docs))
    assert actual == expected(kind, caller)


async def test_root_token_on_db_count(server: Server) -> None:
    """The CLI's ``backend db count`` posts to /db/count/ with the ROOT token (spec 07 section 2:
    MUST accept; decision 12: served). Root counts every document, of every account."""
    c = server.client
    a1, _, b = await accounts_ab(c)
    col = unique_col()
    await create(c, a1.token, col, {"done": True})
    await create(c, b.token, col, {"done": True})
    await create(c, b.token, col, {"done": False})
    r = await c.post(f"/db/count/{col}", content=b"null", headers=root(server))
    assert assert_json(r) == {"count": 3}
    r = await c.post(f"/db/count/{col}", json=[["done", "==", True]], headers=root(server))
    assert assert_json(r) == {"count": 2}


async def test_matrix_table_matches_the_bitwise_rule() -> None:
    """The table above agrees with the permission parser the server uses."""
    from sbserver.services.permissions import Level, permission_of

    names = {Level.OWNER: OWNER, Level.ACCOUNT: ACCOUNT, Level.EVERYONE: EVERYONE}
    for prefix, suffix, read, write in MATRIX.values():
        perm = permission_of(f"{prefix}x{suffix}")
        assert (names[perm.read], names[perm.write]) == (read, write), (prefix, suffix)


# KEEP_PERM_COL_NAME set: suffixes are stripped from the stored name (decision 7)


@pytest.fixture(params=STORE_KINDS)
def stripping_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    kind = request.param
    pg_url = request.getfixturevalue("pg_url") if kind == "pg" else None
    settings: Settings = make_settings(kind, tmp_path, pg_url, keep_perm_col_name=False)
    return settings


@pytest_asyncio.fixture
async def stripping(stripping_settings: Settings) -> AsyncIterator[Server]:
    """An in-process app that strips permission suffixes from collection names."""
    app = create_app(stripping_settings)
    app.state.services.tenancy.announce = lambda text: None
    async with app.router.lifespan_context(app):
        dev = await app.state.services.tenancy.dev_app()
        assert dev is not None
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"SB-PUBLIC-KEY": DEV_PK}
        ) as client:
            yield Server(app, client, dev, stripping_settings.data_store)


async def test_stripping_refuses_a_looser_suffix(stripping: Server) -> None:
    server = stripping
    c = server.client
    a1, a2, b = await accounts_ab(c)
    name = unique_col("notes")
    doc = await create(c, a1.token, f"{name}_700_", {"secret": "a1 only"})
    own_a2 = await create(c, a2.token, f"{name}_700_", {"secret": "a2 only"})
    # the same stored collection under the first suffix
    assert assert_json(await c.get(f"/db/{name}_700_/{doc['id']}", headers=auth(a1.token))) == doc
    page = assert_json(await c.get(f"/db/{name}_700_", headers=auth(a2.token)))
    assert page["results"] == [own_a2]
    # a looser suffix on the same name is refused with 403, whoever asks
    for member in (a1, a2, b):
        h = auth(member.token)
        assert_error(await c.get(f"/db/{name}_766_", headers=h), 403)
        assert_error(await c.get(f"/db/{name}_766_/{doc['id']}", headers=h), 403)
        assert_error(await c.post(f"/query/{name}_766_", json=[], headers=h), 403)
        assert_error(await c.put(f"/db/{name}_766_/{doc['id']}", json={"secret": "x"}, headers=h), 403)
        assert_error(await c.delete(f"/db/{name}_766_/{doc['id']}", headers=h), 403)
    assert_error(await c.get(f"/db/{name}_744_", headers=auth(b.token)), 403)
    # the bare name shows only what the first suffix (700) allows
    for member, visible in ((a1, [doc]), (a2, [own_a2]), (b, [])):
        r = await c.get(f"/db/{name}", headers=auth(member.token))
        if r.status_code == 200:
            assert r.json()["results"] == visible, member.email
        else:
            assert_error(r, 403)
        r = await c.get(f"/db/{name}/{doc['id']}", headers=auth(member.token))
        if member is a1 and r.status_code == 200:
            assert r.json() == doc
        else:
            assert r.status_code in (403, 404), r.text
    # nothing was changed through the refused names
    assert await sudo_get(server, f"{name}_700_", doc["id"]) == doc
    # the stored name has no suffix
    names = assert_json(await c.get("/sudolistall/", headers=root(server)))
    assert name in names and f"{name}_700_" not in names


async def test_stripping_allows_a_stricter_or_equal_suffix(stripping: Server) -> None:
    server = stripping
    c = server.client
    a1, a2, b = await accounts_ab(c)
    name = unique_col("posts")
    doc = await create(c, a1.token, f"{name}_764_", {"t": 1})
    # equal suffix: everyone reads, the account writes
    assert assert_json(await c.get(f"/db/{name}_764_/{doc['id']}", headers=auth(b.token))) == doc
    r = await c.put(f"/db/{name}_764_/{doc['id']}", json={"t": 2}, headers=auth(a2.token))
    assert assert_json(r) == {**doc, "t": 2}
    # a stricter suffix is not refused; spec 03 section 2: the remembered first suffix (764)
    # governs the permission checks whatever suffix names the collection
    r = await c.get(f"/db/{name}_700_/{doc['id']}", headers=auth(a1.token))
    assert assert_json(r) == {**doc, "t": 2}
    r = await c.get(f"/db/{name}_700_/{doc['id']}", headers=auth(b.token))
    assert assert_json(r) == {**doc, "t": 2}
    r = await c.put(f"/db/{name}_700_/{doc['id']}", json={"t": 9}, headers=auth(b.token))
    assert_error(r, 403, "not authorized")
    # a looser one is refused
    assert_error(await c.put(f"/db/{name}_766_/{doc['id']}", json={"t": 3}, headers=auth(b.token)), 403)
    assert await sudo_get(server, f"{name}_764_", doc["id"]) == {**doc, "t": 2}
