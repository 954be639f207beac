"""The database calls of the real PyPI client ``staticbackend==0.1.1`` (py_db_runner.py).

Runs on every store kind, in .venv-pyclient like test_py_client.py. What the client does with
the answers (staticbackend/database.py and base.py):

* a 401 raises ``AuthenticationError``; otherwise a JSON answer is returned decoded and a
  text answer is returned as the text, whatever the status;
* ``get_document`` and ``update_document`` turn ANY text answer into ``RecordNotFoundError``,
  so "not found" (404), "not authorized" (403) and a bad token (400) look the same;
* ``list_documents(repo, page, size, desc)`` never sends its paging arguments: it always gets
  the first 25 documents in ascending order;
* ``query(repo, filters)`` posts ``filters`` to ``/db/<repo>``, the CREATE route, not to
  ``/query/<repo>``. A clause list (the documented shape, or the ``List[Dict]`` of its
  annotation) is not an object, so the server refuses it with 400 ``invalid body`` and the
  client returns that text as if it were the result: no document is created and nothing is
  queried. Only an object passed as ``filters`` is stored, as a new document. That is the
  client's defect, not the server's; the tests pin what actually happens.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import HERE, _run_runner
from tests.compat.support import BAD_SESSION_PREFIX, PASSWORD, LiveServer, Runner, unique_email

PY_DB_RUNNER = HERE / "py_db_runner.py"
NOT_FOUND = "document not found\n"


@pytest.fixture
def run_db(pyclient_python: Path, live_server: LiveServer) -> Runner:
    """``run_db(scenario, **params)`` -> the JSON py_db_runner.py printed."""

    def run(scenario: str, **params: Any) -> dict[str, Any]:
        return _run_runner([str(pyclient_python), str(PY_DB_RUNNER)], live_server, scenario, params)

    return run


def unique_col(prefix: str = "pydb") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def value(call: dict[str, Any]) -> Any:
    assert call["ok"] is True, f"the client raised {call.get('error')}: {call.get('message')}"
    return call["value"]


def raised(call: dict[str, Any], error: str) -> str:
    assert call["ok"] is False, f"the client should have raised {error}, got {call.get('value')!r}"
    assert call["error"] == error, call
    message: str = call["message"]
    return message


def results(call: dict[str, Any]) -> dict[str, Any]:
    """A ``DocumentResults`` model, as the runner reports it."""
    got: dict[str, Any] = value(call)
    assert got.pop("model") == "DocumentResults", got
    assert set(got) == {"page", "size", "total", "results"}, got
    return got


def test_create_get_update_delete(run_db: Runner) -> None:
    col = unique_col()
    out = run_db("crud", email=unique_email("py-db-crud"), password=PASSWORD, col=col)
    body = {"title": "buy milk", "done": False, "n": 1, "tags": ["a"], "nested": {"x": 1.5}}

    created = value(out["created"])
    assert {k: v for k, v in created.items() if k not in ("id", "accountId")} == body
    assert created["id"] and created["accountId"], created
    # a non-object body: the server's 400 text comes back as the "document"
    assert value(out["createdNotObject"]).startswith("invalid body"), out["createdNotObject"]

    assert value(out["got"]) == created
    expected = {**created, "done": True, "extra": None, "nested": {"y": 2}}
    assert value(out["updated"]) == expected
    assert value(out["gotAfterUpdate"]) == expected

    assert value(out["deleted"]) == 1
    assert value(out["deletedAgain"]) == 0
    assert raised(out["gotAfterDelete"], "RecordNotFoundError") == f"Record {created['id']} not found"
    assert out["rawGotAfterDelete"] == {"status": 404, "contentType": "text/plain; charset=utf-8", "body": NOT_FOUND}
    raised(out["updateAfterDelete"], "RecordNotFoundError")


def test_list_documents_ignores_its_paging_arguments(run_db: Runner) -> None:
    col, n = unique_col(), 27
    out = run_db("listing", email=unique_email("py-db-list"), password=PASSWORD, col=col, n=n)
    ids = out["ids"]
    default = results(out["default"])
    assert (default["page"], default["size"], default["total"]) == (1, 25, n)
    assert [d["id"] for d in default["results"]] == ids[:25], "ascending creation order"
    assert [d["i"] for d in default["results"]] == list(range(25))

    # page=2, size=10, desc=True are accepted by the client and never sent
    assert results(out["paged"]) == default
    # the server does page when asked: the same request made directly
    raw = out["rawPaged"]
    assert raw["status"] == 200, raw
    assert (raw["body"]["page"], raw["body"]["size"], raw["body"]["total"]) == (2, 10, n)
    assert [d["id"] for d in raw["body"]["results"]] == ids[::-1][10:20]

    assert results(out["neverWritten"]) == {"page": 1, "size": 25, "total": 0, "results": []}


def test_query_posts_to_the_create_route(run_db: Runner) -> None:
    col = unique_col()
    out = run_db("query", email=unique_email("py-db-query"), password=PASSWORD, col=col)
    assert out["before"] == 2

    # a clause list is not a document: 400 `invalid body`, returned as text, nothing created
    assert value(out["asClauses"]).startswith("invalid body"), out["asClauses"]
    assert out["afterClauses"] == 2
    assert value(out["asDicts"]).startswith("invalid body"), out["asDicts"]
    assert out["afterDicts"] == 2

    # an object is a document: the "query" creates it and answers it
    stored = value(out["asObject"])
    assert {k: v for k, v in stored.items() if k not in ("id", "accountId")} == {"done": True}
    assert stored["id"], stored
    assert out["afterObject"] == 3

    # the route the client should have used answers the query (and now sees the stray document)
    real = out["realQuery"]
    assert real["status"] == 200, real
    assert real["body"]["total"] == 2
    assert sorted(d["id"] for d in real["body"]["results"] if "name" not in d) == [stored["id"]]
    assert [d["name"] for d in real["body"]["results"] if "name" in d] == ["a"]


def test_permissions_through_the_client(run_db: Runner) -> None:
    col = unique_col()
    out = run_db(
        "permissions",
        owner=unique_email("py-db-owner"),
        member=unique_email("py-db-member"),
        other=unique_email("py-db-other"),
        password=PASSWORD,
        col=col,
    )
    assert out["added"]["status"] == 200, out["added"]
    secret, shared = out["secret"], out["shared"]

    # `_700_`: only the owner (and the app's admin) read it
    for who in ("ownerReads", "adminReads"):
        assert value(out[who]["get"]) == secret, who
        listed = results(out[who]["list"])
        assert (listed["total"], listed["results"]) == (1, [secret]), who
    for who in ("memberReads", "otherReads"):
        raised(out[who]["get"], "RecordNotFoundError")
        assert results(out[who]["list"]) == {"page": 1, "size": 25, "total": 0, "results": []}, who
    for who in ("memberWrites", "otherWrites"):
        raised(out[who]["update"], "RecordNotFoundError")
        assert value(out[who]["delete"]) == 0, who

    # default (740): the account reads, only the owner writes; the client reports the
    # server's 403 `not authorized` as RecordNotFoundError (it maps any text answer)
    assert value(out["memberGetsAccountDoc"]) == shared
    raised(out["memberUpdatesAccountDoc"], "RecordNotFoundError")
    raw = out["rawMemberUpdatesAccountDoc"]
    assert (raw["status"], raw["body"]) == (403, "not authorized\n"), raw
    assert value(out["memberDeletesAccountDoc"]) == 0
    raised(out["otherGetsAccountDoc"], "RecordNotFoundError")

    assert [value(r) for r in out["ownerReadsAfter"]] == [secret, shared]


def test_bad_or_missing_session(run_db: Runner) -> None:
    out = run_db("bad_session", col=unique_col())
    # a token that is not a JWT: 400 (as upstream), which the client reads as "not found" ...
    raised(out["garbageGet"], "RecordNotFoundError")
    assert out["rawGarbageGet"]["status"] == 400
    assert out["rawGarbageGet"]["body"].startswith(BAD_SESSION_PREFIX), out["rawGarbageGet"]
    # ... or returns as the created "document"
    assert value(out["garbageCreate"]).startswith(BAD_SESSION_PREFIX), out["garbageCreate"]
    # no token at all: 401, the client's AuthenticationError
    raised(out["missingGet"], "AuthenticationError")
    raised(out["missingCreate"], "AuthenticationError")
    assert out["count"] == 0, "nothing was stored"
