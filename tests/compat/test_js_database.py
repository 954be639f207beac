"""The database calls of the real ``@staticbackend/js`` client (js/db.mjs) against a real server.

Runs on every store kind (the ``live_server`` fixture). The client answers ``{ok, content}``:
``ok`` is false for any status above 299 and ``content`` is then the plain-text error body
(spec 02 section 1.2). Where the status matters, the runner also makes the request with
``fetch``. Statuses follow decision 3 of spec/00-index.md: an unknown or unreadable document
is 404 ``document not found`` (upstream 500), readable but not writable is 403
``not authorized`` (upstream 500), a refused delete answers ``0``.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import _run_runner
from tests.compat.support import MISSING_AUTH, PASSWORD, LiveServer, Runner, unique_email

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
NOT_FOUND = "document not found\n"
NOT_AUTHORIZED = "not authorized\n"


@pytest.fixture
def run_db(js_client_dir: Path, live_server: LiveServer) -> Runner:
    """``run_db(scenario, **params)`` -> the JSON js/db.mjs printed."""
    node = shutil.which("node") or "node"

    def run(scenario: str, **params: Any) -> dict[str, Any]:
        return _run_runner([node, str(js_client_dir / "db.mjs")], live_server, scenario, params)

    return run


def unique_col(prefix: str = "jsdb") -> str:
    """A collection no other test uses (no permission suffix: callers add their own)."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def ok(result: dict[str, Any]) -> Any:
    assert result["ok"] is True, f"the client call failed: {result['content']!r}"
    return result["content"]


def refused(result: dict[str, Any]) -> str:
    assert result["ok"] is False, f"the client call should have failed: {result['content']!r}"
    content: str = result["content"]
    return content


def page(result: dict[str, Any]) -> dict[str, Any]:
    """A paged answer ``{page, size, total, results}``."""
    content: dict[str, Any] = ok(result)
    assert set(content) == {"page", "size", "total", "results"}, content
    assert isinstance(content["results"], list), content
    return content


def names(result: dict[str, Any]) -> list[str]:
    return [d["name"] for d in page(result)["results"]]


def without_system(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("id", "accountId")}


def test_create_get_update_delete(run_db: Runner) -> None:
    col = unique_col()
    out = run_db("crud", email=unique_email("js-db-crud"), password=PASSWORD, col=col)
    body = {"title": "buy milk", "done": False, "n": 1, "tags": ["a"], "nested": {"x": 1.5}}

    created = ok(out["created"])
    assert without_system(created) == body
    assert UUID.match(created["id"]), created
    assert created["accountId"], created
    raw = out["rawCreated"]
    assert (raw["status"], raw["contentType"]) == (201, "application/json"), raw
    assert refused(out["createdNotObject"]).startswith("invalid body"), out["createdNotObject"]

    assert ok(out["got"]) == created
    # the unknown id is skipped, not an error (spec 03 section 8)
    assert ok(out["byIds"]) == [created]

    # a shallow merge: nested objects replaced whole, null stored, other keys kept
    expected = {**created, "done": True, "extra": None, "nested": {"y": 2}}
    assert ok(out["updated"]) == expected
    assert ok(out["gotAfterUpdate"]) == expected
    assert ok(out["increased"]) is True
    assert ok(out["gotAfterIncrease"]) == {**expected, "n": 5}
    new_id = ok(out["newId"])
    assert isinstance(new_id, str) and UUID.match(new_id) and new_id != created["id"]

    assert ok(out["deleted"]) == 1
    assert ok(out["deletedAgain"]) == 0
    assert refused(out["gotAfterDelete"]) == NOT_FOUND
    assert out["rawGotAfterDelete"] == {
        "status": 404,
        "contentType": "text/plain; charset=utf-8",
        "body": NOT_FOUND,
    }
    assert refused(out["updateAfterDelete"]) == NOT_FOUND
    assert refused(out["getWithoutToken"]) == MISSING_AUTH
    assert out["rawGetWithoutToken"]["status"] == 401


def test_create_bulk_and_list_paging(run_db: Runner) -> None:
    col, n = unique_col(), 23
    out = run_db("list_paging", email=unique_email("js-db-list"), password=PASSWORD, col=col, n=n)
    assert ok(out["bulk"]) is True

    everything = page(out["all"])
    assert (everything["page"], everything["size"], everything["total"]) == (1, 25, n)
    assert sorted(d["i"] for d in everything["results"]) == list(range(n))
    asc_ids = out["idsAll"]
    assert len(set(asc_ids)) == n

    pages = [page(p) for p in out["pages"]]
    assert [(p["page"], p["size"], p["total"], len(p["results"])) for p in pages] == [
        (1, 10, n, 10),
        (2, 10, n, 10),
        (3, 10, n, 3),
        (4, 10, n, 0),
    ]
    # the pages cut the one ascending order into pieces: every document once
    assert [d["id"] for p in pages for d in p["results"]] == asc_ids

    desc = [page(p) for p in out["descPages"]]
    assert [len(p["results"]) for p in desc] == [10, 10, 3, 0]
    assert [d["id"] for p in desc for d in p["results"]] == asc_ids[::-1]

    # the client sends `size` only when it is above 1, so size 1 reaches the server as 25
    size_one = page(out["sizeOne"])
    assert (size_one["page"], size_one["size"], size_one["total"], size_one["results"]) == (2, 25, n, [])

    assert page(out["neverWritten"]) == {"page": 1, "size": 25, "total": 0, "results": []}

    # one bad element refuses the whole bulk: nothing of it is stored (spec 02 section 4.2 SHOULD)
    assert refused(out["bulkWithNonObject"]).startswith("invalid body"), out["bulkWithNonObject"]
    assert ok(out["countAfterBadBulk"]) == {"count": n}

    # documents created one by one list in creation order, and in reverse with desc
    assert out["idsSeqAsc"] == out["ordered"]
    assert out["idsSeqDesc"] == out["ordered"][::-1]


QUERY_DOCS = [
    {"name": "a", "n": 1, "tag": "x", "tags": ["red", "blue"], "done": True, "address": {"city": "Montreal"}},
    {"name": "b", "n": 5, "tag": "y", "tags": ["green"], "done": False, "address": {"city": "Laval"}},
    {"name": "c", "n": 10, "tag": "z", "tags": [], "done": True},
    {"name": "d", "n": 3, "tag": "w", "done": False},
]


def test_query_and_count(run_db: Runner) -> None:
    col = unique_col()
    out = run_db("query", email=unique_email("js-db-query"), password=PASSWORD, col=col, docs=QUERY_DOCS)
    assert ok(out["created"]) is True
    everything = page(out["all"])
    assert sorted(names(out["all"])) == ["a", "b", "c", "d"]
    assert [without_system(d) for d in sorted(everything["results"], key=lambda d: d["name"])] == QUERY_DOCS

    assert sorted(names(out["eqBool"])) == ["a", "c"]
    assert names(out["eqString"]) == ["b"]
    assert sorted(names(out["gtNumber"])) == ["b", "c"], "numbers compare numerically (10 > 4)"
    assert sorted(names(out["gtNumericString"])) == ["b", "c"], "a numeric string compares as a number"
    assert sorted(names(out["inList"])) == ["a", "c"]
    assert names(out["inScalarOnArray"]) == ["b"]
    assert sorted(names(out["inListOnArray"])) == ["a", "b"]
    assert sorted(names(out["notIn"])) == ["b", "d"]
    assert names(out["anded"]) == ["c"]
    assert names(out["nested"]) == ["a"]
    assert page(out["none"])["total"] == 0 and page(out["none"])["results"] == []

    order = [d["id"] for d in everything["results"]]
    paged = page(out["paged"])
    assert (paged["page"], paged["size"], paged["total"]) == (2, 2, 4)
    assert [d["id"] for d in paged["results"]] == order[2:4]
    paged_desc = page(out["pagedDesc"])
    assert (paged_desc["page"], paged_desc["size"], paged_desc["total"]) == (1, 2, 4)
    assert [d["id"] for d in paged_desc["results"]] == order[::-1][:2]

    bad_op = "the 1 query clause's operator: =~ is not supported at the moment\n"
    assert refused(out["badOperator"]) == bad_op
    assert out["rawBadOperator"] == {"status": 400, "contentType": "text/plain; charset=utf-8", "body": bad_op}
    assert refused(out["badClause"]) == (
        "the 1 query clause did not contains the required 3 parameters (field, operator, value)\n"
    )

    assert ok(out["countAll"]) == {"count": 4}
    assert ok(out["countFiltered"]) == {"count": 2}
    assert ok(out["countNone"]) == {"count": 0}
    assert ok(out["countNeverWritten"]) == {"count": 0}
    assert page(out["queryNeverWritten"]) == {"page": 1, "size": 25, "total": 0, "results": []}


# Its Base64 has both '+' and '/': the client does not URL-encode `x`, so '+' arrives as a
# space the server must turn back (spec 02 section 4.9).
BULK_MARKER = "mkr???>"


def test_update_bulk_and_delete_bulk(run_db: Runner) -> None:
    x = base64.b64encode(json.dumps([["tag", "==", BULK_MARKER]], separators=(",", ":")).encode()).decode()
    assert "+" in x and "/" in x, x
    col = unique_col()
    out = run_db("bulk_writes", email=unique_email("js-db-bulk"), password=PASSWORD, col=col, marker=BULK_MARKER)
    assert ok(out["created"]) is True
    assert out["x"] == x

    assert ok(out["updatedBulk"]) == 2
    updated = page(out["afterUpdate"])
    assert sorted(without_system(d)["n"] for d in updated["results"]) == [1, 2]
    for doc in updated["results"]:
        # merged, not replaced (upstream SQLite replaced the data; spec 03 section 10)
        assert without_system(doc) == {
            "title": "keep",
            "done": True,
            "tag": BULK_MARKER,
            "n": doc["n"],
            "archived": True,
        }
    assert ok(out["updatedNone"]) == 0
    assert refused(out["badUpdateClause"]) == "the 1 query clause's operator: ~ is not supported at the moment\n"

    assert ok(out["deletedBulk"]) == 3
    left = page(out["afterDelete"])
    assert left["total"] == 1 and without_system(left["results"][0])["tag"] == "other"
    assert ok(out["deletedAgain"]) == 0
    assert ok(out["deletedAll"]) == 1, "an empty clause list deletes every writable document"
    assert ok(out["countAfter"]) == {"count": 0}


def test_permissions_through_the_client(run_db: Runner) -> None:
    col = unique_col()
    out = run_db(
        "permissions",
        owner=unique_email("js-db-owner"),
        member=unique_email("js-db-member"),
        other=unique_email("js-db-other"),
        password=PASSWORD,
        col=col,
    )
    ok(out["added"])
    ok(out["memberLogin"])
    ok(out["adminLogin"])
    secret, shared, public = ok(out["secret"]), ok(out["shared"]), ok(out["open"])
    empty_page = {"page": 1, "size": 25, "total": 0, "results": []}

    # `_700_`: only the owner (and the app's admin) read it
    for who in ("ownerReads", "adminReads"):
        reads = out[who]
        assert ok(reads["get"]) == secret, who
        assert page(reads["list"])["results"] == [secret], who
        assert page(reads["query"])["results"] == [secret], who
        assert ok(reads["count"]) == {"count": 1}, who
        assert ok(reads["byIds"]) == [secret], who
    for who in ("memberReads", "otherReads"):  # same account, other account
        reads = out[who]
        assert refused(reads["get"]) == NOT_FOUND, who
        assert page(reads["list"]) == empty_page, who
        assert page(reads["query"]) == empty_page, who
        assert ok(reads["count"]) == {"count": 0}, who
        assert ok(reads["byIds"]) == [], who
    assert out["rawOtherGet"]["status"] == 404, out["rawOtherGet"]
    for who in ("memberWrites", "otherWrites"):
        writes = out[who]
        assert refused(writes["update"]) == NOT_FOUND, who
        assert ok(writes["updateBulk"]) == 0, who
        assert ok(writes["delete"]) == 0, who
        assert ok(writes["deleteBulk"]) == 0, who
    assert refused(out["anonymousGet"]) == MISSING_AUTH
    assert out["rawAnonymousGet"]["status"] == 401

    # default (740): the account reads, only the owner writes
    assert ok(out["memberGetsAccountDoc"]) == shared
    assert refused(out["memberUpdatesAccountDoc"]) == NOT_AUTHORIZED
    assert out["rawMemberUpdatesAccountDoc"] == {
        "status": 403,
        "contentType": "text/plain; charset=utf-8",
        "body": NOT_AUTHORIZED,
    }
    assert ok(out["memberDeletesAccountDoc"]) == 0
    assert refused(out["otherGetsAccountDoc"]) == NOT_FOUND

    # `_744_`: everyone reads, only the owner writes
    assert ok(out["otherGetsPublicDoc"]) == public
    assert refused(out["otherUpdatesPublicDoc"]) == NOT_AUTHORIZED
    assert ok(out["otherDeletesPublicDoc"]) == 0

    # every refused write left the documents as they were
    assert [ok(r) for r in out["ownerReadsAfter"]] == [secret, shared, public]
    assert ok(out["ownerUpdates"]) == {**secret, "secret": "owner changed it"}
    assert ok(out["ownerDeletes"]) == 1


def test_search_finds_documents_indexed_by_a_function(run_db: Runner) -> None:
    col = unique_col()
    fn_name = f"index-{uuid.uuid4().hex[:10]}"
    out = run_db(
        "search",
        owner=unique_email("js-db-search"),
        other=unique_email("js-db-search-other"),
        password=PASSWORD,
        col=col,
        fnName=fn_name,
    )
    first, second = ok(out["first"]), ok(out["second"])
    assert out["fnAdd"]["status"] == 200, f"POST /fn/add (root token) answered {out['fnAdd']}"
    for run in out["fnRuns"]:
        assert run["status"] == 200, f"POST /fn/sudoexec/{fn_name} answered {run}"
    # both runs succeeded (they are recorded after the answer; the runner waits up to 5 s)
    assert out["fnInfo"]["status"] == 200, out["fnInfo"]
    history = json.loads(out["fnInfo"]["body"])["history"]
    assert [h["success"] for h in history] == [True, True], history

    assert ok(out["both"]) == [first]
    assert ok(out["fuzzy"]) == [first], "edit distance 1, case-insensitive (spec 03 section 13)"
    assert ok(out["montreal"]) == [second]
    assert ok(out["everyKeyword"]) == [], "every keyword must match"
    assert ok(out["nothing"]) == []
    assert ok(out["otherCollection"]) == []
    assert ok(out["otherUser"]) == [], "results are loaded with the caller's read permission"
    assert ok(out["deleted"]) == 1
    assert ok(out["afterDelete"]) == [], "a deleted document drops out of the results"
    assert out["fnDel"]["status"] == 200
