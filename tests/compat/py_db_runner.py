"""Run one database scenario against a live server with the real PyPI client ``staticbackend==0.1.1``.

    .venv-pyclient/bin/python py_db_runner.py <scenario> <server-url> <public-key> [params-json]

(SB_URL, SB_PK and SB_PARAMS are read when an argument is missing.) Runs in its own virtualenv
like py_client_runner.py, so it imports nothing from sbserver or the tests.
Prints ONE JSON line: each client call as {"ok": true, "value": ...} or
{"ok": false, "error": <exception class>, "message": ...}, and {"status", "contentType", "body"}
for the raw requests made beside the client. Assertions live in pytest (test_py_database.py).

The client's database calls (``LoginState.database``, staticbackend/database.py), all sending
the session token of the logged-in user:

    create_document(repo, data)          POST   /db/<repo>         -> the answer (dict, or the error text)
    list_documents(repo, page, size, desc) GET  /db/<repo>         -> DocumentResults; page/size/desc are NOT sent
    get_document(repo, doc_id)           GET    /db/<repo>/<id>    -> dict; any text answer -> RecordNotFoundError
    update_document(repo, doc_id, doc)   PUT    /db/<repo>/<id>    -> dict; any text answer -> RecordNotFoundError
    delete_document(repo, doc_id)        DELETE /db/<repo>/<id>    -> int(answer)
    query(repo, filters, page, size, desc) POST /db/<repo>         -> the answer: it never reaches /query/

Any 401 raises AuthenticationError before the answer is looked at.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import httpx
from staticbackend import Config, StaticBackend

DEV_ROOT_ALIAS = "safe-to-use-in-dev-root-token"
DEV_ADMIN_EMAIL = "admin@dev.com"
DEV_ADMIN_PASSWORD = "devpw1234"


class Scenario:
    def __init__(self, url: str, pk: str) -> None:
        self.url = url
        self.pk = pk

    def client(self, pk: str | None = None, root_token: str = DEV_ROOT_ALIAS) -> StaticBackend:
        return StaticBackend(Config(api_token=pk or self.pk, root_token=root_token, endpoint=self.url))

    def raw(
        self,
        method: str,
        path: str,
        *,
        token: str = "",
        body: Any = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One request outside the client."""
        headers = {"SB-PUBLIC-KEY": self.pk}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        r = httpx.request(method, self.url + path, headers=headers, json=body, params=params, timeout=30)
        ctype = r.headers.get("content-type", "")
        decoded: Any = r.json() if ctype == "application/json" else r.text
        return {"status": r.status_code, "contentType": ctype, "body": decoded}

    def count(self, col: str) -> int:
        """Every document of the collection, whoever owns it (root token, /sudo/ list)."""
        page = self.raw("GET", f"/sudo/{col}", token=DEV_ROOT_ALIAS, params={"size": "1000"})
        body = page["body"]
        return int(body["total"]) if isinstance(body, dict) else -1


def attempt(call: Callable[[], Any]) -> dict[str, Any]:
    try:
        value = call()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    if hasattr(value, "dict"):  # pydantic 1 models (DocumentResults)
        value = {"model": type(value).__name__, **value.dict()}
    return {"ok": True, "value": value}


def crud(s: Scenario, email: str, password: str, col: str) -> dict[str, Any]:
    state = s.client().user.register(email, password)
    db = state.database
    body = {"title": "buy milk", "done": False, "n": 1, "tags": ["a"], "nested": {"x": 1.5}}
    created = attempt(lambda: db.create_document(col, body))
    doc_id = created["value"]["id"] if created["ok"] and isinstance(created["value"], dict) else "missing"
    created_not_object = attempt(lambda: db.create_document(col, [body]))  # type: ignore[arg-type]
    got = attempt(lambda: db.get_document(col, doc_id))
    updated = attempt(lambda: db.update_document(col, doc_id, {"done": True, "extra": None, "nested": {"y": 2}}))
    got_after_update = attempt(lambda: db.get_document(col, doc_id))
    deleted = attempt(lambda: db.delete_document(col, doc_id))
    deleted_again = attempt(lambda: db.delete_document(col, doc_id))
    got_after_delete = attempt(lambda: db.get_document(col, doc_id))
    raw_got_after_delete = s.raw("GET", f"/db/{col}/{doc_id}", token=state.token)
    update_after_delete = attempt(lambda: db.update_document(col, doc_id, {"done": False}))
    return {
        "token": state.token,
        "created": created,
        "createdNotObject": created_not_object,
        "got": got,
        "updated": updated,
        "gotAfterUpdate": got_after_update,
        "deleted": deleted,
        "deletedAgain": deleted_again,
        "gotAfterDelete": got_after_delete,
        "rawGotAfterDelete": raw_got_after_delete,
        "updateAfterDelete": update_after_delete,
    }


def listing(s: Scenario, email: str, password: str, col: str, n: int) -> dict[str, Any]:
    state = s.client().user.register(email, password)
    db = state.database
    ids = [db.create_document(col, {"i": i})["id"] for i in range(n)]
    return {
        "ids": ids,
        "default": attempt(lambda: db.list_documents(col)),
        # The client accepts page/size/desc but never sends them.
        "paged": attempt(lambda: db.list_documents(col, page=2, size=10, desc=True)),
        "rawPaged": s.raw("GET", f"/db/{col}", token=state.token, params={"page": "2", "size": "10", "desc": "1"}),
        "neverWritten": attempt(lambda: db.list_documents(f"{col}never")),
    }


def query(s: Scenario, email: str, password: str, col: str) -> dict[str, Any]:
    state = s.client().user.register(email, password)
    db = state.database
    token = state.token
    for doc in ({"name": "a", "done": True}, {"name": "b", "done": False}):
        db.create_document(col, doc)
    before = s.count(col)
    # The documented shape: a list of clauses. The client posts it to /db/<repo> (create).
    as_clauses = attempt(lambda: db.query(col, [["done", "==", True]]))  # type: ignore[list-item]
    after_clauses = s.count(col)
    # What the annotation says (List[Dict]): still a list, still posted to /db/<repo>.
    as_dicts = attempt(lambda: db.query(col, [{"field": "done", "op": "==", "value": True}]))
    after_dicts = s.count(col)
    # A single object is a valid create body: the "query" stores it as a new document.
    as_object = attempt(lambda: db.query(col, {"done": True}))  # type: ignore[arg-type]
    after_object = s.count(col)
    # What the query should have been: POST /query/<repo>.
    real_query = s.raw("POST", f"/query/{col}", token=token, body=[["done", "==", True]])
    return {
        "before": before,
        "asClauses": as_clauses,
        "afterClauses": after_clauses,
        "asDicts": as_dicts,
        "afterDicts": after_dicts,
        "asObject": as_object,
        "afterObject": after_object,
        "realQuery": real_query,
    }


def permissions(s: Scenario, owner: str, member: str, other: str, password: str, col: str) -> dict[str, Any]:
    """owner and member share an account, other has its own; see test_py_database.py."""
    sb = s.client()
    owner_state = sb.user.register(owner, password)
    owner_db = owner_state.database
    added = s.raw("POST", "/account/users", token=owner_state.token, body={"email": member, "password": password})
    member_db = sb.user.login(member, password).database
    other_db = sb.user.register(other, password).database
    admin_db = sb.user.login(DEV_ADMIN_EMAIL, DEV_ADMIN_PASSWORD).database

    private_col, account_col = f"{col}_700_", col
    secret = owner_db.create_document(private_col, {"secret": "owner only"})
    shared = owner_db.create_document(account_col, {"note": "account"})
    sid, aid = secret["id"], shared["id"]

    def reads(db: Any) -> dict[str, Any]:
        return {
            "get": attempt(lambda: db.get_document(private_col, sid)),
            "list": attempt(lambda: db.list_documents(private_col)),
        }

    def writes(db: Any) -> dict[str, Any]:
        return {
            "update": attempt(lambda: db.update_document(private_col, sid, {"secret": "changed"})),
            "delete": attempt(lambda: db.delete_document(private_col, sid)),
        }

    result = {
        "added": added,
        "secret": secret,
        "shared": shared,
        "ownerReads": reads(owner_db),
        "memberReads": reads(member_db),
        "otherReads": reads(other_db),
        "adminReads": reads(admin_db),
        "memberWrites": writes(member_db),
        "otherWrites": writes(other_db),
        "memberGetsAccountDoc": attempt(lambda: member_db.get_document(account_col, aid)),
        "memberUpdatesAccountDoc": attempt(lambda: member_db.update_document(account_col, aid, {"note": "x"})),
        "rawMemberUpdatesAccountDoc": s.raw(
            "PUT", f"/db/{account_col}/{aid}", token=member_db.token, body={"note": "x"}
        ),
        "memberDeletesAccountDoc": attempt(lambda: member_db.delete_document(account_col, aid)),
        "otherGetsAccountDoc": attempt(lambda: other_db.get_document(account_col, aid)),
    }
    result["ownerReadsAfter"] = [
        attempt(lambda: owner_db.get_document(private_col, sid)),
        attempt(lambda: owner_db.get_document(account_col, aid)),
    ]
    return result


def bad_session(s: Scenario, col: str) -> dict[str, Any]:
    """A LoginState whose token the server refuses (400) or that has none (401)."""
    from staticbackend.user import LoginState

    sb = s.client()
    client = sb._client
    garbage = LoginState(client, "not-a-session-token").database
    missing = LoginState(client, None).database  # type: ignore[arg-type]
    return {
        "garbageGet": attempt(lambda: garbage.get_document(col, "x")),
        "garbageCreate": attempt(lambda: garbage.create_document(col, {"a": 1})),
        "rawGarbageGet": s.raw("GET", f"/db/{col}/x", token="not-a-session-token"),
        "missingGet": attempt(lambda: missing.get_document(col, "x")),
        "missingCreate": attempt(lambda: missing.create_document(col, {"a": 1})),
        "count": s.count(col),
    }


SCENARIOS: dict[str, Callable[..., dict[str, Any]]] = {
    "crud": crud,
    "listing": listing,
    "query": query,
    "permissions": permissions,
    "bad_session": bad_session,
}


def main(argv: list[str]) -> int:
    args = argv[1:]
    scenario = args[0] if args else ""
    url = args[1] if len(args) > 1 else os.environ.get("SB_URL", "")
    pk = args[2] if len(args) > 2 else os.environ.get("SB_PK", "")
    params = json.loads((args[3] if len(args) > 3 else os.environ.get("SB_PARAMS", "")) or "{}")
    if scenario not in SCENARIOS:
        sys.stderr.write(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}\n")
        return 2
    if not url or not pk:
        sys.stderr.write("usage: py_db_runner.py <scenario> <server-url> <public-key> [params-json]\n")
        return 2
    result = SCENARIOS[scenario](Scenario(url, pk), **params)
    sys.stdout.write(json.dumps({"scenario": scenario, **result}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
