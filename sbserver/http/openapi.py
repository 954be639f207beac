"""The OpenAPI 3.1 document of every route, served at ``GET /openapi.json``.

The document is data: ``document()`` builds one dict (each operation says its access level in
``x-sb-access``: none, base, user, root or user-or-root), ``openapi_json`` serves it, encoded once.
tests/http/test_openapi.py checks it against ``app.build_routes()`` both ways, so a route added
without a documented path (or a documented path whose route went away) fails the tests.

Catch-all routes are documented by the paths clients call: ``/db/{rest:path}`` as
``/db/{collection}`` and ``/db/{collection}/{id}``, ``/sudo/{rest:path}`` likewise, the static
mount as ``/static/{path}``. Errors are one line of plain text ending with a newline (spec 02
§1.2), never JSON.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

NONE, BASE, USER, ROOT, USER_OR_ROOT = "none", "base", "user", "root", "user-or-root"
ANY = ("get", "post", "put", "delete", "patch")
OPERATORS = ["==", "=", "!=", "<>", ">", "<", ">=", "<=", "in", "!in", "nin"]

_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    NONE: [],
    BASE: [{"publicKey": []}],
    USER: [{"publicKey": [], "sessionToken": []}],
    ROOT: [{"publicKey": [], "rootToken": []}],
    USER_OR_ROOT: [{"publicKey": [], "sessionToken": []}, {"publicKey": [], "rootToken": []}],
}

# Errors each access level can answer before the handler runs.
_AUTH_ERRORS: dict[str, dict[str, str]] = {
    NONE: {},
    BASE: {
        "401": "missing public key (`invalid StaticBackend public key`)",
        "404": "unknown public key (`error finding database '<pk>': ...`)",
    },
    USER: {
        "400": "malformed or forged token, or an Authorization header that is not `Bearer <token>`",
        "401": "missing public key or missing Authorization header",
        "404": "unknown public key",
    },
}
_AUTH_ERRORS[ROOT] = {**_AUTH_ERRORS[USER], "403": "the token is not the app's root token"}
_AUTH_ERRORS[USER_OR_ROOT] = _AUTH_ERRORS[ROOT]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "success") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict[str, Any], required: bool = True, media: str = "application/json") -> dict[str, Any]:
    return {"required": required, "content": {media: {"schema": schema}}}


def _query(name: str, description: str, schema: dict[str, Any] | None = None, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


def _op(
    summary: str,
    access: str,
    ok: dict[str, Any] | None = None,
    *,
    status: str = "200",
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    errors: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {status: ok if ok is not None else _json(_ref("True"))}
    for code, text in {**_AUTH_ERRORS[access], **(errors or {})}.items():
        responses[code] = {"$ref": "#/components/responses/Error"} if not text else _error(text)
    op: dict[str, Any] = {
        "summary": summary,
        "x-sb-access": access,
        "security": _SECURITY[access],
        "responses": responses,
    }
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
    if extra:
        op.update(extra)
    return op


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain; charset=utf-8": {"schema": _ref("ErrorLine")}}}


def _sendmail() -> dict[str, Any]:
    """``/sudo/sendmail`` (spec 02 §7.1); never a collection: other methods answer 501."""
    text = {"type": "string"}
    names = ("from", "fromName", "to", "toName", "subject", "replyTo", "htmlBody", "textBody", "body")
    return {
        "post": _op(
            "send an email from the app (body: HTML, its text derived; or htmlBody and/or textBody)",
            ROOT,
            body=_body({"type": "object", "properties": {name: text for name in names}, "required": ["to"]}),
            errors={
                "400": "invalid JSON, a missing or invalid address, a line break in a header field, an empty body",
                "413": "HTML and text bodies over 1 MiB together",
                "429": "the app sent SB_MAIL_PER_APP emails in the window",
            },
        ),
        **_every(
            ("get", "put", "delete", "patch", "options"),
            _op("not served", NONE, errors={"501": "method not implemented (send with POST)"}),
        ),
    }


def _every(methods: tuple[str, ...], op: dict[str, Any]) -> dict[str, Any]:
    return {m: op for m in methods}


_PAGE_PARAMS = [
    _query("page", "page number, from 1 (default 1)", {"type": "integer", "minimum": 1}),
    _query("size", "page size (default 25)", {"type": "integer", "minimum": 1}),
    _query("desc", "any non-empty value sorts newest first", {"type": "string"}),
]
_SORT = _query("sort", "field to sort by", {"type": "string"})
_COL = _path("collection", "collection name; a permission suffix (_ro_, _rw_, _pub_ ...) is part of it")
_ID = _path("id", "document id")
_CLAUSE_ERRORS = {"400": "invalid body, invalid JSON, or an invalid clause (unknown operator, bad field name)"}
_DOC_ERRORS = {
    "400": "invalid JSON, or a body that is not an object",
    "403": "the caller may not write this collection or document",
    "404": "no such document, or not readable by the caller",
    "413": "body larger than MAX_BODY_BYTES",
}


def _schemas() -> dict[str, Any]:
    string = {"type": "string"}
    return {
        "True": {"type": "boolean"},
        "ErrorLine": {"type": "string", "pattern": "^[^\\n]+\\n$", "description": "one line + newline"},
        "Credentials": {
            "type": "object",
            "properties": {"email": string, "password": string},
            "required": ["email", "password"],
        },
        "Token": {"type": "string", "description": "a session token (JWT), as a JSON string"},
        "Identity": {
            "type": "object",
            "properties": {
                "id": string,
                "userId": string,
                "accountId": string,
                "email": string,
                "role": {"type": "integer"},
            },
            "required": ["userId", "accountId", "email", "role"],
        },
        "User": {
            "type": "object",
            "properties": {
                "id": string,
                "accountId": string,
                "email": string,
                "role": {"type": "integer"},
                "created": string,
            },
            "required": ["id", "accountId", "email", "role"],
        },
        "NewApp": {
            "type": "object",
            "properties": {"pk": string, "rootToken": string, "pw": string},
            "required": ["pk", "rootToken", "pw"],
        },
        "Document": {
            "type": "object",
            "properties": {"id": string, "accountId": string},
            "additionalProperties": True,
            "description": "the stored fields plus id and accountId",
        },
        "NewDocument": {"type": "object", "additionalProperties": True},
        "Page": {
            "type": "object",
            "properties": {
                "page": {"type": "integer"},
                "size": {"type": "integer"},
                "total": {"type": "integer"},
                "results": {"type": "array", "items": _ref("Document")},
            },
            "required": ["page", "size", "total", "results"],
        },
        "Clause": {
            "type": "array",
            "prefixItems": [string, {"type": "string", "enum": OPERATORS}, {}],
            "minItems": 3,
            "maxItems": 3,
            "description": "[field, operator, value]",
        },
        "Clauses": {"type": ["array", "null"], "items": _ref("Clause")},
        "BulkUpdate": {
            "type": "object",
            "properties": {"update": {"type": "object"}, "clauses": _ref("Clauses")},
            "required": ["update", "clauses"],
        },
        "Increment": {
            "type": "object",
            "properties": {"field": string, "range": {"type": "integer"}},
            "required": ["field", "range"],
        },
        "Search": {"type": "object", "properties": {"col": string, "keywords": string}, "required": ["col"]},
        "Count": {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]},
        "Origins": {
            "type": "object",
            "properties": {"origins": {"type": "array", "items": string}, "server": {"type": "array", "items": string}},
            "required": ["origins"],
        },
        "Envelope": {
            "type": "object",
            "description": "a realtime command (spec 04 §1); missing keys and null are empty strings",
            "properties": {
                "sid": string,
                "type": string,
                "data": {},
                "channel": string,
                "token": {"type": ["string", "null"]},
            },
        },
        "Publish": {
            "type": "object",
            "properties": {"channel": string, "type": string, "data": {}},
            "required": ["channel", "type"],
        },
        "FunctionAdd": {
            "type": "object",
            "properties": {"name": string, "trigger": string, "code": string, "secrets": string},
            "required": ["name", "trigger", "code"],
        },
        "FunctionUpdate": {
            "type": "object",
            "properties": {"id": string, "name": string, "trigger": string, "code": string, "secrets": string},
            "required": ["id", "trigger", "code"],
        },
        "FunctionRun": {
            "type": "object",
            "properties": {
                "id": string,
                "functionId": string,
                "version": {"type": "integer"},
                "started": string,
                "completed": string,
                "success": {"type": "boolean"},
                "output": {"type": "array", "items": string},
            },
        },
        "Function": {
            "type": "object",
            "properties": {
                "id": string,
                "accountId": string,
                "name": string,
                "trigger": string,
                "code": string,
                "version": {"type": "integer"},
                "lastUpdated": string,
                "lastRun": string,
                "history": {"type": "array", "items": _ref("FunctionRun")},
            },
            "required": ["id", "name", "trigger", "code"],
        },
        "Limits": {
            "type": "object",
            "properties": {
                k: {"type": ["integer", "null"], "minimum": 0}
                for k in ("customRate", "eventRate", "appRate", "concurrency", "tasks")
            },
            "additionalProperties": False,
        },
        "FunctionLimits": {
            "type": "object",
            "properties": {"limits": _ref("Limits"), "own": _ref("Limits")},
            "required": ["limits", "own"],
        },
        "TaskInput": {
            "type": "object",
            "properties": {
                "name": string,
                "type": {"type": "string", "enum": ["function", "message", "http"]},
                "value": string,
                "meta": string,
                "interval": {"type": "string", "description": "cron expression (spec 06 §2)"},
                "timezone": string,
                "enabled": {"type": "boolean"},
            },
            "required": ["name", "type", "value", "interval"],
        },
        "Task": {
            "type": "object",
            "properties": {
                "id": string,
                "name": string,
                "type": string,
                "value": string,
                "meta": string,
                "interval": string,
                "last": string,
                "base": string,
                "timezone": string,
                "enabled": {"type": "boolean"},
                "next": string,
            },
            "required": ["id", "name", "type", "value", "interval", "base"],
        },
        "TaskRun": {
            "type": "object",
            "properties": {
                "id": string,
                "taskId": string,
                "due": string,
                "started": string,
                "completed": string,
                "outcome": string,
                "error": string,
                "output": {},
            },
        },
        "MagicLink": {
            "type": "object",
            "properties": {
                "fromEmail": string,
                "fromName": string,
                "email": string,
                "subject": string,
                "body": string,
                "link": string,
            },
            "required": ["email", "link"],
        },
        "ResetPassword": {
            "type": "object",
            "properties": {"email": string, "code": string, "password": string},
            "required": ["email", "code", "password"],
        },
        "ChangePassword": {
            "type": "object",
            "properties": {"email": string, "oldPassword": string, "newPassword": string},
            "required": ["email", "oldPassword", "newPassword"],
        },
    }


def _db_paths(prefix: str, access: str, who: str) -> dict[str, Any]:
    """``/db/`` and ``/sudo/``: the same operations, a session's rights or the root's."""
    bulk = _query("bulk", "any non-empty value selects the bulk operation")
    ids = _query("ids", "present (any value): the body is a list of ids to read")
    x = _query("x", "bulk delete: Base64 of the JSON clause array (standard or URL-safe alphabet)")
    by_id_post = _op(
        f"create a document ({who}); the id segment is ignored",
        access,
        _json(_ref("Document")),
        status="201",
        body=_body(_ref("NewDocument")),
        errors=_DOC_ERRORS,
    )
    return {
        f"{prefix}/{{collection}}": {
            "parameters": [_COL],
            "get": _op(f"list documents ({who})", access, _json(_ref("Page")), params=_PAGE_PARAMS),
            "post": _op(
                f"create a document, or with ?bulk= many, or with ?ids= read by ids ({who})",
                access,
                _json({"oneOf": [_ref("Document"), {"type": "array", "items": _ref("Document")}, _ref("True")]}),
                status="201",
                params=[bulk, ids],
                body=_body(
                    {
                        "oneOf": [
                            _ref("NewDocument"),
                            {"type": "array", "items": _ref("NewDocument")},
                            {"type": "array", "items": {"type": "string"}},
                        ]
                    }
                ),
                errors={**_DOC_ERRORS, "400": "invalid JSON, a body of the wrong shape, or an empty ids list"},
                extra={"description": "?ids= answers 200 with the readable documents; create answers 201."},
            ),
            "put": _op(
                f"bulk update (?bulk=1): set fields on every matching document ({who})",
                access,
                _json({"type": "integer"}),
                params=[bulk],
                body=_body(_ref("BulkUpdate")),
                errors={**_CLAUSE_ERRORS, "403": "not allowed to write"},
            ),
            "delete": _op(
                f"bulk delete (?bulk=1&x=<base64 clauses>) ({who})",
                access,
                _json({"type": "integer"}),
                params=[bulk, x],
                errors={**_CLAUSE_ERRORS, "403": "not allowed to write"},
            ),
        },
        f"{prefix}/{{collection}}/{{id}}": {
            "parameters": [_COL, _ID],
            "get": _op(f"read one document ({who})", access, _json(_ref("Document")), errors=_DOC_ERRORS),
            "post": by_id_post,
            "put": _op(
                f"update one document: shallow merge ({who})",
                access,
                _json(_ref("Document")),
                body=_body(_ref("NewDocument")),
                errors=_DOC_ERRORS,
            ),
            "delete": _op(
                f"delete one document; answers the number removed ({who})",
                access,
                _json({"type": "integer"}),
                errors=_DOC_ERRORS,
            ),
        },
    }


def _account_paths() -> dict[str, Any]:
    email_q = _query("e", "the email")
    creds = _body(_ref("Credentials"))
    return {
        "/register": {
            "post": _op(
                "create an account and its owner (role 50); answers a session token",
                BASE,
                _json(_ref("Token")),
                body=creds,
                errors={"400": "invalid JSON or email", "409": "email already used in this app"},
            )
        },
        "/login": {
            "post": _op(
                "sign in; answers a session token",
                BASE,
                _json(_ref("Token")),
                body=creds,
                errors={"400": "invalid JSON", "401": "invalid email/password", "429": "too many failed logins"},
            )
        },
        "/login/magic": {
            "get": _op(
                "complete a magic link; answers a session token",
                BASE,
                _json(_ref("Token")),
                params=[_query("email", "the user's email"), _query("code", "the emailed code")],
                errors={"400": "invalid code", "429": "maximum retry reached"},
            ),
            "post": _op(
                "email a magic sign-in link",
                BASE,
                body=_body(_ref("MagicLink")),
                errors={"400": "invalid JSON or email"},
            ),
        },
        "/email": {"get": _op("whether a user has this email", BASE, params=[email_q])},
        "/me": _every(ANY, _op("the caller's identity", USER, _json(_ref("Identity")))),
        "/password/resetcode": _every(
            ANY,
            _op(
                "issue a password reset code (returned, not emailed)",
                ROOT,
                _json({"type": "string"}),
                params=[email_q],
                errors={"400": "invalid email", "404": "no such user"},
            ),
        ),
        "/password/send": {
            "post": _op(
                "email a password reset code",
                BASE,
                body=_body({"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]}),
                errors={"400": "invalid JSON or email"},
            )
        },
        "/password/reset": {
            "post": _op(
                "set a new password with a reset code; false when nothing matched",
                BASE,
                _json({"type": "boolean"}),
                body=_body(_ref("ResetPassword")),
                errors={"400": "invalid JSON or empty code"},
            )
        },
        "/user/changepw": {
            "post": _op(
                "change the caller's password",
                USER,
                body=_body(_ref("ChangePassword")),
                errors={"401": "invalid email/password"},
            )
        },
        "/sudogettoken": _every(
            ANY, _op("refused: the account id is missing", ROOT, errors={"400": "missing account id"})
        ),
        "/sudogettoken/{accountId}": {
            "parameters": [_path("accountId", "the account to impersonate")],
            **_every(
                ANY,
                _op(
                    "a session token for the oldest user of an account",
                    ROOT,
                    _json(_ref("Token")),
                    errors={"404": "the account has no user"},
                ),
            ),
        },
        "/account/users": {
            "post": _op(
                "add a user (role 0) to the caller's account",
                USER,
                _json(_ref("User")),
                body=creds,
                errors={"400": "invalid JSON or email", "409": "email already in use"},
            ),
            **_every(
                ("get", "put", "delete", "patch"),
                _op("the users of the caller's account", USER, _json({"type": "array", "items": _ref("User")})),
            ),
        },
        "/account/users/{userId}": {
            "parameters": [_path("userId", "a user of the caller's account")],
            "delete": _op(
                "remove a user of the caller's account (same or lower role)",
                USER,
                errors={"403": "permission level not high enough", "404": "no such user in the account"},
            ),
        },
        "/account/add-db": _every(
            ANY,
            _op(
                "create another app for the caller's tenant (session of a role-100 user)",
                USER,
                _json(_ref("NewApp")),
                errors={"406": "you cannot perform this action"},
            ),
        ),
        "/me/email": {
            "post": _op(
                "change the caller's own email; every other session ends, the answer is a new session token",
                USER,
                _json(_ref("Token")),
                body=_body(
                    {
                        "type": "object",
                        "properties": {
                            "email": {"type": "string"},
                            "password": {"type": "string", "description": "if given, must be the current one"},
                        },
                        "required": ["email"],
                    }
                ),
                errors={
                    "400": "invalid JSON or email",
                    "401": "invalid email/password (a wrong current password)",
                    "403": "the development app's administrator keeps its email",
                    "409": "email already in use",
                    "429": "too many failed logins",
                },
            )
        },
        "/setrole": {
            "post": _op(
                "set the role of a user (account admin: its own account's users below its role; root: any)",
                USER,
                body=_body(
                    {
                        "type": "object",
                        "properties": {
                            "email": {"type": "string"},
                            "role": {"type": "integer", "minimum": 0, "maximum": 100},
                            "accountId": {"type": "string"},
                        },
                        "required": ["email", "role"],
                    }
                ),
                errors={
                    "400": "invalid JSON, email or role",
                    "403": "not an account admin, one's own role, a role above the caller's, or the app's administrator",
                    "404": "no such user in the caller's account (or in the given account)",
                },
            )
        },
        "/account/associations": {
            "get": _op(
                "the accounts the caller belongs to (one on this server)",
                USER,
                _json(
                    {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "accountId": {"type": "string"},
                                "role": {"type": "integer"},
                                "home": {"type": "boolean"},
                            },
                        },
                    }
                ),
            )
        },
        "/account/promote": {
            "post": _op(
                "not served: multi-account membership is hosted-only",
                USER,
                errors={"501": "account promotion is not available on this server (use /setrole)"},
            )
        },
        "/account/auth": _every(ANY, _op("the root user's email", ROOT, _json({"type": "string"}))),
        "/account/portal": _every(
            ANY,
            _op(
                "billing portal URL",
                ROOT,
                _json({"type": "string"}),
                errors={"501": "billing is not configured on this server"},
            ),
        ),
        "/account/origins": {
            "get": _op("the app's allowed browser origins", ROOT, _json(_ref("Origins"))),
            "post": _op(
                "replace the app's allowed browser origins",
                ROOT,
                _json(_ref("Origins")),
                body=_body(
                    {
                        "type": "object",
                        "properties": {"origins": {"type": "array", "items": {"type": "string"}}},
                        "required": ["origins"],
                    }
                ),
                errors={"400": "invalid JSON or an invalid origin"},
            ),
        },
        "/account/init": {
            "get": _op(
                "create a tenant and its first app (CLI and Go client)",
                NONE,
                _json({"oneOf": [{"type": "string"}, _ref("NewApp")]}),
                params=[
                    _query("email", "the owner's email"),
                    _query("ui", "set: answer HTML"),
                    _query("mem", "1: memory mode (dev only)"),
                    _query("x", "activation flag"),
                ],
                errors={"400": "invalid email", "409": "email already used"},
            ),
            "post": _op(
                "create a tenant and its first app (the sign-up form)",
                NONE,
                {"description": "HTML page, or JSON with Accept: application/json", "content": {"text/html": {}}},
                body=_body(
                    {"type": "object", "properties": {"email": {"type": "string"}}},
                    media="application/x-www-form-urlencoded",
                ),
                errors={"400": "invalid email", "409": "email already used"},
            ),
        },
    }


def _sudo_cache() -> dict[str, Any]:
    """``/sudo/cache`` (spec 02 §7.2): the app's cache values and queues; never a collection."""
    text = {"type": "string"}
    limits = "a missing, over 256-character or control-character key, a value over 1 MiB"
    return {
        "get": _op(
            "read a value, or with type=queue pop the oldest queued value",
            ROOT,
            _json(text, 'the value; a queue that is empty (or was never pushed to) gives ""'),
            params=[
                _query("key", "the app's key", required=True),
                _query("type", "queue: pop from the queue named key"),
            ],
            errors={"400": limits, "404": "no such value (`key not found in cache`)"},
        ),
        "post": _op(
            "set a value (expires after 12 hours), or with type queue append it to a queue",
            ROOT,
            body=_body(
                {"type": "object", "properties": {"key": text, "value": text, "type": text}, "required": ["key"]}
            ),
            errors={"400": f"invalid JSON, a value that is not a string, {limits}, a full queue (10,000 values)"},
        ),
        **_every(
            ("put", "delete", "patch", "options"),
            _op("not served", NONE, errors={"405": "method not allowed (use GET or POST)"}),
        ),
    }


def _document_paths() -> dict[str, Any]:
    clauses = _body(_ref("Clauses"))
    return {
        **_db_paths("/db", USER, "session; pub_ collections read with the public key alone"),
        "/db/count/{collection}": {
            "parameters": [_COL],
            **_every(
                ("get", "post", "put"),
                _op(
                    "count documents matching optional clauses",
                    USER_OR_ROOT,
                    _json(_ref("Count")),
                    body=_body(_ref("Clauses"), required=False),
                    errors=_CLAUSE_ERRORS,
                ),
            ),
        },
        "/query/{collection}": {
            "parameters": [_COL],
            "post": _op(
                "filter documents",
                USER,
                _json(_ref("Page")),
                params=[*_PAGE_PARAMS, _SORT],
                body=clauses,
                errors=_CLAUSE_ERRORS,
            ),
        },
        "/sudoquery/{collection}": {
            "parameters": [_COL],
            "post": _op(
                "filter documents with the root identity",
                ROOT,
                _json(_ref("Page")),
                params=[*_PAGE_PARAMS, _SORT],
                body=clauses,
                errors=_CLAUSE_ERRORS,
            ),
        },
        "/inc/{collection}/{id}": {
            "parameters": [_COL, _ID],
            **_every(
                ("put", "post"),
                _op(
                    "add range to a numeric field",
                    USER,
                    body=_body(_ref("Increment")),
                    errors={**_DOC_ERRORS, "400": "invalid JSON, field or range, or the value is not a number"},
                ),
            ),
        },
        "/newid": _every(("get", "post"), _op("a fresh document id", USER, _json({"type": "string"}))),
        "/search": {
            "post": _op(
                "full-text search",
                USER,
                _json({"type": "array", "items": _ref("Document")}),
                body=_body(_ref("Search")),
                errors={"400": "invalid JSON or collection", "501": "full-text search is disabled"},
            )
        },
        "/sudolistall": _every(
            ("get", "post"),
            _op("the app's collection names", ROOT, _json({"type": "array", "items": {"type": "string"}})),
        ),
        "/sudolistall/": _every(
            ("get", "post"),
            _op("the app's collection names", ROOT, _json({"type": "array", "items": {"type": "string"}})),
        ),
        "/sudo/index": {
            "get": _op(
                "the indexed fields of a collection (?col=)",
                ROOT,
                _json({"type": "array", "items": {}}),
                params=[_query("col", "collection")],
                errors={"501": "method not implemented (no col)"},
            ),
            "post": _op(
                "create an index on a field",
                ROOT,
                params=[_query("col", "collection", required=True), _query("field", "field name", required=True)],
                errors={"400": "missing or invalid col or field"},
            ),
            **_every(("put", "delete"), _op("not served", ROOT, errors={"501": "method not implemented"})),
        },
        # Reserved, never collections: every method answers 501, with or without a token.
        "/sudo/cache": _sudo_cache(),
        "/sudo/cache/": _sudo_cache(),
        "/sudo/sendmail": _sendmail(),
        "/sudo/sendmail/": _sendmail(),
        **_db_paths("/sudo", ROOT, "root token"),
        "/postform/{form}": {
            "parameters": [_path("form", "form name")],
            "post": _op(
                "store a form submission",
                BASE,
                body=_body(
                    {"type": "object", "additionalProperties": {"type": "string"}},
                    media="application/x-www-form-urlencoded",
                ),
                errors={"400": "invalid form body or honeypot field present"},
            ),
        },
        "/form": {
            "get": _op(
                "form submissions, newest first",
                ROOT,
                _json({"type": "array", "items": {"type": "object"}}),
                params=[_query("name", "form name; empty: all forms")],
            )
        },
    }


def _realtime_paths() -> dict[str, Any]:
    publish = _op(
        "publish a message on a channel",
        USER_OR_ROOT,
        body=_body(_ref("Publish")),
        errors={"400": "invalid JSON or no channel", "403": "you cannot write to database channel"},
    )
    return {
        "/sse/connect": {
            "get": _op(
                "open a server-sent event stream; first event: init with the connection id",
                BASE,
                {"description": "an event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                params=[_query("sbpk", "public key (instead of the header)")],
                extra={"x-sb-stream": True},
            )
        },
        "/sse/msg": {
            "post": _op(
                "a command for an SSE connection (answers true; results arrive on the stream)",
                BASE,
                body=_body(_ref("Envelope")),
                errors={"400": "invalid JSON", "413": "message too large"},
            )
        },
        "/publish": {"post": publish},
        "/publish-message": {"post": publish},
        "/ws": {
            "get": _op(
                "WebSocket upgrade (spec 04 §5): commands are envelopes; the base comes from sbpk, "
                "SB-PUBLIC-KEY or the token the client authenticates with",
                NONE,
                {"description": "switching protocols"},
                status="101",
                params=[_query("sbpk", "public key (optional)")],
                extra={"x-sb-websocket": True},
            )
        },
    }


def _function_paths() -> dict[str, Any]:
    name = _path("name", "function name")
    empty = {"description": "success, empty body"}
    run = _op(
        "run a web-triggered function; handle(body, qs, headers)",
        USER,
        empty,
        body=_body({}, required=False),
        errors={"400": "error preparing argument", "404": "no such function"},
    )
    return {
        "/fn": {"get": _op("every function of the app", ROOT, _json({"type": "array", "items": _ref("Function")}))},
        "/fn/add": _every(
            ("post", "put"),
            _op(
                "add a function",
                ROOT,
                empty,
                body=_body(_ref("FunctionAdd")),
                errors={"400": "invalid JSON or field", "409": "function name already exists"},
            ),
        ),
        "/fn/update": _every(
            ("post", "put"),
            _op(
                "update a function",
                ROOT,
                empty,
                body=_body(_ref("FunctionUpdate")),
                errors={"400": "invalid JSON or field", "404": "no such function"},
            ),
        ),
        "/fn/del/{name}": {
            "parameters": [name],
            **_every(ANY, _op("delete a function", ROOT, empty, errors={"404": "no such function"})),
        },
        "/fn/delete/{name}": {
            "parameters": [name],
            **_every(ANY, _op("delete a function", ROOT, empty, errors={"404": "no such function"})),
        },
        "/fn/info/{name}": {
            "parameters": [name],
            "get": _op(
                "a function and its run history", ROOT, _json(_ref("Function")), errors={"404": "no such function"}
            ),
        },
        "/fn/limits": {
            "get": _op("the app's function limits in force, and its own", ROOT, _json(_ref("FunctionLimits"))),
            **_every(
                ("post", "put"),
                _op(
                    "set the app's own limits (never above the server's; null: the server's)",
                    ROOT,
                    _json(_ref("FunctionLimits")),
                    body=_body(_ref("Limits")),
                    errors={"400": "invalid JSON, unknown limit, or a value out of range"},
                ),
            ),
        },
        "/fn/exec/{name}": {"parameters": [name], **_every(ANY, run)},
        "/fn/sudoexec/{name}": {
            "parameters": [name],
            **_every(ANY, {**run, "x-sb-access": ROOT, "security": _SECURITY[ROOT], "summary": "run as root"}),
        },
    }


def _task_paths() -> dict[str, Any]:
    task_id = _path("id", "task id")
    not_found = {"404": "task not found"}
    return {
        "/task": {
            "get": _op("the app's tasks", ROOT, _json({"type": "array", "items": _ref("Task")})),
            "post": _op(
                "create a task",
                ROOT,
                _json(_ref("Task")),
                body=_body(_ref("TaskInput")),
                errors={"400": "invalid JSON, type or interval"},
            ),
        },
        "/task/{id}": {
            "parameters": [task_id],
            "get": _op("one task", ROOT, _json(_ref("Task")), errors=not_found),
            **_every(
                ("post", "put"),
                _op(
                    "replace a task and reschedule it",
                    ROOT,
                    _json(_ref("Task")),
                    body=_body(_ref("TaskInput")),
                    errors={**not_found, "400": "invalid JSON, type or interval"},
                ),
            ),
            "delete": _op("delete a task", ROOT, errors=not_found),
        },
        "/task/{id}/run": {
            "parameters": [task_id],
            "post": _op("run a task now", ROOT, _json(_ref("TaskRun")), errors=not_found),
        },
        "/task/{id}/runs": {
            "parameters": [task_id],
            "get": _op(
                "a task's recent runs", ROOT, _json({"type": "array", "items": _ref("TaskRun")}), errors=not_found
            ),
        },
    }


def _storage_paths() -> dict[str, Any]:
    string, integer = {"type": "string"}, {"type": "integer"}
    stored = {
        "type": "object",
        "properties": {k: string for k in ("id", "accountId", "name", "key", "url", "uploaded")} | {"size": integer},
        "required": ["id", "accountId", "key", "url", "size", "uploaded"],
    }
    upload_body = {
        "type": "object",
        "properties": {"file": {"type": "string", "format": "binary"}, "name": string},
        "required": ["file"],
    }
    return {
        "/storage/upload": {
            "post": _op(
                "upload a file for the caller's account (multipart part `file`, optional `name`)",
                USER_OR_ROOT,
                _json({"type": "object", "properties": {"id": string, "url": string}, "required": ["id", "url"]}),
                body=_body(upload_body, media="multipart/form-data"),
                errors={
                    "400": "not multipart, no `file` part, an empty file, an invalid name, "
                    "or a file over SB_UPLOAD_MAX_BYTES (`file size exeeded your limit: ...`)"
                },
            )
        },
        "/storage/files": {
            "get": _op(
                "a page of the caller's account's files (root: every file of the app)",
                USER_OR_ROOT,
                _json(
                    {
                        "type": "object",
                        "properties": {
                            "page": integer,
                            "size": integer,
                            "total": integer,
                            "results": {"type": "array", "items": stored},
                        },
                        "required": ["page", "size", "total", "results"],
                    }
                ),
                params=[*_PAGE_PARAMS, _query("sort", "uploaded (default) or size", {"type": "string"})],
                errors={"400": "invalid sort"},
            )
        },
        "/storage/usage": {
            "get": _op(
                "bytes and number of files of the caller's account",
                USER_OR_ROOT,
                _json(
                    {
                        "type": "object",
                        "properties": {"bytes": integer, "gb": {"type": "number"}, "count": integer},
                        "required": ["bytes", "gb", "count"],
                    }
                ),
            )
        },
        "/sudostorage/delete": _every(
            ("get", "delete"),
            _op(
                "delete a file: its record and its bytes",
                ROOT,
                params=[_query("id", "file id", required=True)],
                errors={"400": "missing id", "404": "no file of this app has this id"},
            ),
        ),
        "/localfs/{key}": {
            "parameters": [_path("key", "the file's key: <app>/<account>/<id><ext>")],
            **_every(
                ("get", "head"),
                _op(
                    "a stored file (local provider): Range (206, 416), ETag and If-None-Match (304)",
                    NONE,
                    {"description": "the file's bytes, with its content type"},
                    errors={"404": "not found", "416": "range not satisfiable"},
                ),
            ),
        },
    }


def _extra_paths() -> dict[str, Any]:
    """Spec 02 §8: resized images, rendered pages, text messages."""
    string, boolean = {"type": "string"}, {"type": "boolean"}
    stored = {"type": "object", "properties": {"id": string, "url": string}, "required": ["id", "url"]}
    resize_body = {
        "type": "object",
        "properties": {"file": {"type": "string", "format": "binary"}, "width": string, "name": string},
        "required": ["file", "width"],
    }
    render_body = {
        "type": "object",
        "properties": {"url": string, "toPDF": boolean, "fullpage": boolean},
        "required": ["url"],
    }
    rendered = {
        "type": "object",
        "properties": {"id": string, "url": string, "toPDF": boolean, "fullpage": boolean},
        "required": ["id", "url", "toPDF", "fullpage"],
    }
    sms_names = ["accountSID", "authToken", "toNumber", "fromNumber", "body"]
    return {
        "/extra/resizeimg": {
            "post": _op(
                "resize a PNG, JPEG or WebP image to `width` pixels (ratio kept) and store it as a file of the "
                "caller's account",
                USER_OR_ROOT,
                _json(stored),
                body=_body(resize_body, media="multipart/form-data"),
                errors={
                    "400": "not multipart, no `file` part, an empty file, an invalid width or name, bytes that are "
                    "not an image of the named format, an image over SB_IMAGE_MAX_BYTES or SB_IMAGE_MAX_PIXELS",
                    "500": "invalid image format: <ext> (an extension other than .png, .jpg, .jpeg, .webp)",
                },
            )
        },
        "/extra/htmltox": {
            "post": _op(
                "render a page to PDF or PNG (viewport or full page) and store it as a file of the caller's account",
                USER_OR_ROOT,
                _json(rendered),
                body=_body(render_body),
                errors={
                    "400": "invalid JSON or field types, a URL that is not http(s), an address the outbound guard "
                    "refuses, a page that fails or does not load within SB_RENDER_TIMEOUT, a result over "
                    "SB_RENDER_MAX_BYTES",
                    "429": "every render slot stayed busy for SB_RENDER_TIMEOUT",
                    "500": "no browser to render with (SB_CHROMIUM_PATH)",
                },
            )
        },
        "/extra/sms": {
            "post": _op(
                "send a text message through Twilio with the given credentials",
                ROOT,
                body=_body({"type": "object", "properties": {n: string for n in sms_names}, "required": sms_names}),
                errors={
                    "400": "invalid JSON, a missing or malformed field, a session token instead of the root token",
                    "500": "Twilio cannot be reached, or `error returned by Twilio: <its answer>`",
                },
            )
        },
    }


def _oauth_paths() -> dict[str, Any]:
    """Spec 02 §9 and the app's provider keys (services/oauth.py)."""
    string = {"type": "string"}
    provider = _path("provider", "google, github, facebook, twitter or oidc")
    options = ("authorizeUrl", "tokenUrl", "userinfoUrl", "jwksUrl", "emailsUrl", "issuer", "scope")
    shown = {
        "type": "object",
        "properties": {"provider": string, "clientId": string, "hasSecret": {"type": "boolean"}, "updated": string}
        | {name: string for name in options},
        "required": ["provider", "clientId", "hasSecret", "updated"],
    }
    user = {
        "type": "object",
        "properties": {k: string for k in ("token", "email", "name", "first", "last", "avatarUrl")},
        "required": ["token", "email"],
    }
    html = {"description": "a page that closes the window", "content": {"text/html": {"schema": string}}}
    callback = _op(
        "the provider's answer (state, code or error; a form body for POST): signs the user in by verified email",
        NONE,
        html,
        params=[_query("state", "<provider>_<reqid>_<public key>"), _query("code", "authorization code")],
        errors={
            "400": "invalid or expired state, another app's state, no code, a refusal from the provider, "
            "or no verified email",
            "404": "the provider is no longer configured",
        },
    )
    config_body = _body(
        {
            "type": "object",
            "properties": {"clientId": string, "clientSecret": string} | {name: string for name in options},
            "required": ["clientId"],
        }
    )
    return {
        "/oauth/login": {
            "get": _op(
                "start signing in with a provider: 307 to its authorization page",
                BASE,
                {"description": "redirect to the provider"},
                status="307",
                params=[
                    _query("provider", "google, github, facebook, twitter or oidc", required=True),
                    _query("reqid", "the client's id for this sign-in: 6 to 128 of A-Z a-z 0-9 -", required=True),
                    _query("sbpk", "public key (instead of the header)"),
                ],
                errors={
                    "400": "reqid too short or invalid (`reqid parameters is required to be > 5`), unknown provider",
                    "404": "`missing configuration for provider: <provider>`",
                    "409": "reqid already used",
                },
            )
        },
        "/oauth/callback": {"get": callback, "post": callback},
        "/oauth/callback/{rest}": {"parameters": [_path("rest", "ignored")], "get": callback, "post": callback},
        "/oauth/get-user": {
            "get": _op(
                "the signed-in user of a sign-in, or false while there is none",
                BASE,
                _json({"oneOf": [{"const": False}, user]}),
                params=[_query("reqid", "the reqid given to /oauth/login", required=True)],
                errors={"400": "invalid reqid"},
            )
        },
        "/account/oauth": {
            "get": _op(
                "the app's configured providers (never their secrets)", ROOT, _json({"type": "array", "items": shown})
            )
        },
        "/account/oauth/{provider}": {
            "parameters": [provider],
            "get": _op(
                "one provider's configuration (never its secret)", ROOT, _json(shown), errors={"404": "not configured"}
            ),
            **_every(
                ("put", "post"),
                _op(
                    "set a provider's keys and endpoint overrides (an empty clientSecret keeps the stored one)",
                    ROOT,
                    _json(shown),
                    body=config_body,
                    errors={
                        "400": "unknown provider or field, a missing clientId or clientSecret, a URL that is not http(s)"
                    },
                ),
            ),
            "delete": _op(
                "remove a provider's configuration", ROOT, errors={"400": "unknown provider", "404": "not configured"}
            ),
        },
    }


def _misc_paths() -> dict[str, Any]:
    html = {"description": "an HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
    ping = _op("true while the store answers", NONE, errors={"500": "connection failed to database, I'm down."})
    return {
        "/": {"get": _op("the page that creates an app", NONE, html)},
        "/ping": {"get": ping, "post": ping, "head": ping},
        "/stripe": {"post": _op("billing webhook, accepted and ignored", NONE, body=_body({}, required=False))},
        "/static/{path}": {
            "parameters": [_path("path", "a file of the web pages")],
            "get": _op("static files of the web pages", NONE, {"description": "the file"}, errors={"404": "not found"}),
        },
        "/openapi.json": {
            "get": _op("this document", NONE, _json({"type": "object"})),
        },
        "/metrics": {
            "get": _op(
                "the server's metrics, Prometheus text format (with SB_METRICS_TOKEN: Authorization: Bearer <it>)",
                NONE,
                {
                    "description": "the metrics of this process",
                    "content": {"text/plain; version=0.0.4; charset=utf-8": {"schema": {"type": "string"}}},
                },
                errors={
                    "401": "SB_METRICS_TOKEN is set and the request does not bear it",
                    "403": "no token is set and the client is not on a loopback address",
                    "404": "metrics are off (no SB_METRICS_TOKEN, SB_METRICS_LOCAL off: the default in prod)",
                },
            ),
        },
    }


_UI_NOTE = (
    " (admin web page: HTML; needs the session cookie set by POST /ui/login, else 303 to /; "
    "forms that change something carry the session's csrf field)"
)


def _ui_page(summary: str, form: tuple[str, ...] = (), params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One operation of the admin pages (``/ui``): an HTML page, 303 to ``/`` without a session."""
    html = {"description": "an HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
    body = None
    if form:
        props = {name: {"type": "string"} for name in ("csrf", *form)}
        body = _body({"type": "object", "properties": props}, required=False, media="application/x-www-form-urlencoded")
    op = _op(summary + _UI_NOTE, NONE, html, body=body, params=params, extra={"x-sb-html": True})
    op["responses"]["303"] = {"description": "not signed in, or the session expired: to /"}
    page = {"description": "the error page, with the reason", "content": html["content"]}
    for code in ("400", "403", "404"):
        op["responses"][code] = page
    return op


def _ui_paths() -> dict[str, Any]:
    """The admin pages (spec 08 §2). Each area adds its own paths here."""
    login = _ui_page(
        "sign in: pk with the root token, or pk, email and password of an admin", ("pk", "token", "email", "password")
    )
    my_account = {"get": _ui_page("the app and its tenant"), "post": _ui_page("billing (not on this server)", ())}
    dashboard = {"get": _ui_page("dashboard: counts and the last 24 h of function runs")}
    return {
        "/ui/login": {"post": login},
        "/ui/logout": {"post": _ui_page("sign out", ())},
        "/ui": dashboard,
        "/ui/": dashboard,
        "/ui/accounts": {"get": _ui_page("the app's accounts")},
        "/ui/users/{account_id}": {
            "parameters": [_path("account_id", "an account id of this app")],
            "get": _ui_page("the users of one account"),
        },
        "/ui/logins": {"get": _ui_page("the app's OAuth providers, and a form to add one")},
        "/ui/enable-login": {"post": _ui_page("save an OAuth provider's keys", ("provider", "apikey", "apisecret"))},
        "/ui/my-account": my_account,
        "/ui/my-account/": my_account,
        **_ui_data_paths(),
        **_ui_tasks_paths(),
        **_ui_forms_files_paths(),
        **_ui_live_paths(),
        **_ui_queue_paths(),
    }


def _ui_tasks_paths() -> dict[str, Any]:
    """The scheduled tasks pages of the admin UI."""
    fields = ("name", "type", "value", "interval", "meta")
    task_id = [_path("id", "a task id of this app")]
    return {
        "/ui/tasks": {"get": _ui_page("the app's scheduled tasks with their next and last run")},
        "/ui/tasks/new": {
            "get": _ui_page("the form creating a task"),
            "post": _ui_page("create and schedule a task, 303 to /ui/tasks (refused: 400 with the form)", fields),
        },
        "/ui/tasks/del/{id}": {
            "parameters": task_id,
            "get": _ui_page("asks to confirm deleting the task"),
            "post": _ui_page("delete the task and its runs, 303 to /ui/tasks", ()),
        },
        "/ui/tasks/{id}/enabled": {
            "parameters": task_id,
            "post": _ui_page("enable (true) or disable (false) the task, 303 to its page", ("enabled",)),
        },
        "/ui/tasks/{id}/run": {
            "parameters": task_id,
            "post": _ui_page("run the task now, 303 to its page with the run opened", ()),
        },
        "/ui/tasks/{id}": {
            "parameters": task_id,
            "get": _ui_page("the task's form, enable/disable, run now and its run history"),
            "post": _ui_page("save the task, 303 to its page (refused: 400 with the form)", fields),
        },
    }


def _ui_forms_files_paths() -> dict[str, Any]:
    """The forms and files pages of the admin UI."""
    page_no = _query("page", "page number (from 1)")
    return {
        "/ui/forms": {
            "get": _ui_page(
                "the app's form names and one form's submissions, newest first (the first form by default)",
                params=[_query("fn", "a form name"), page_no],
            )
        },
        "/ui/forms/del/{id}": {
            "parameters": [_path("id", "a submission id, as the forms page shows it")],
            "get": _ui_page("asks to confirm deleting the submission"),
            "post": _ui_page("delete the submission, 303 to /ui/forms?fn=<its form>", ()),
        },
        "/ui/fs": {
            "get": _ui_page(
                "the app's stored files (or one account's), newest first, with links and image previews",
                params=[_query("id", "an account id: only its files"), page_no],
            )
        },
        "/ui/fs/del/{id}": {
            "parameters": [_path("id", "a file id")],
            "get": _ui_page("asks to confirm deleting the file"),
            "post": _ui_page("delete the file's record and its stored bytes, 303 to /ui/fs", ()),
        },
    }


def _ui_live_paths() -> dict[str, Any]:
    """The live channel view and presence of the admin UI."""
    channel = _query("channel", "a channel name (db-<collection> for database events)")
    stream = _op(
        "the admin UI's event stream of one channel of the signed-in admin's app, joined as its root: "
        "the envelopes a root SSE client joined to it receives; ends when the session does",
        NONE,
        {"description": "an event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
        params=[_query("channel", "the channel to join", required=True)],
        errors={"400": "no channel, or a name too long", "401": "not signed in to the admin pages"},
        extra={"x-sb-stream": True},
    )
    return {
        "/ui/live": {
            "get": _ui_page(
                "the app's channels with members and their presence counts; with channel, that channel's live view",
                params=[channel],
            )
        },
        "/ui/live/stream": {"get": stream},
        "/ui/live/send": {
            "post": _ui_page(
                "publish a message to a channel as the app's root (like /publish), 303 to the channel",
                ("channel", "type", "data"),
            )
        },
        "/ui/live/{channel}": {
            "parameters": [_path("channel", "a channel name")],
            "get": _ui_page("one channel live: its messages and database events as they arrive, and its members"),
        },
    }


def _ui_queue_paths() -> dict[str, Any]:
    """The function queue page of the admin UI."""
    return {
        "/ui/queue": {"get": _ui_page("the function queue: pending and running jobs, recent failed runs")},
        "/ui/queue/sections": {
            "get": _ui_page("the queue page's three sections alone, which the page polls with htmx")
        },
        "/ui/queue/retry": {
            "post": _ui_page("run a failed run's function again with its kept input, 303 to /ui/queue", ("run",))
        },
    }


def _ui_data_paths() -> dict[str, Any]:
    """The database browser and the functions pages of the admin UI."""
    col = [_query("col", "a collection of this app")]
    browse = ("col", "sortby", "desc", "query", "fields", "page")
    browser_params = [
        _query(n, d)
        for n, d in zip(
            browse, ("collection", "sort field", "1/0", "JSON clauses", "fields to show", "page number"), strict=True
        )
    ]
    return {
        "/ui/db": {
            "get": _ui_page("collections with counts and a collection's documents", params=browser_params),
            "post": _ui_page("the same, from the filter form (a bad filter: 400 with its reason)", browse),
        },
        "/ui/db/new": {
            "get": _ui_page("the form creating a document", params=col),
            "post": _ui_page("create a document from a JSON object, 303 to its page", ("col", "body")),
        },
        "/ui/db/save": {
            "post": _ui_page("set one field as string/int/float/bool/json", ("id", "col", "field", "value", "type"))
        },
        "/ui/db/del/{id}": {
            "parameters": [_path("id", "a document id")],
            "get": _ui_page("asks to confirm deleting the document", params=col),
            "post": _ui_page("delete the document, 303 to /ui/db?col=", ("col",)),
        },
        "/ui/db/{id}": {
            "parameters": [_path("id", "a document id")],
            "get": _ui_page("one document: its fields, each an edit form", params=col),
        },
        "/ui/fn": {"get": _ui_page("the app's functions")},
        "/ui/fn/new": {"get": _ui_page("an empty function editor")},
        "/ui/fn/save": {
            "post": _ui_page(
                "create (id=new) or save a new version, 303 to the editor", ("id", "name", "trigger", "code")
            )
        },
        "/ui/fn/run": {"post": _ui_page("run a function now with a JSON body, 303 to its history", ("id", "body"))},
        "/ui/fn/del/{name}": {
            "parameters": [_path("name", "a function name")],
            "get": _ui_page("asks to confirm deleting the function"),
            "post": _ui_page("delete the function, 303 to /ui/fn", ()),
        },
        "/ui/fn/{id}": {
            "parameters": [_path("id", "a function id")],
            "get": _ui_page("the function editor and its run history"),
        },
    }


@cache
def document() -> dict[str, Any]:
    """The whole document. Built once; callers must not mutate it."""
    paths: dict[str, Any] = {
        **_misc_paths(),
        **_account_paths(),
        **_document_paths(),
        **_realtime_paths(),
        **_function_paths(),
        **_task_paths(),
        **_storage_paths(),
        **_extra_paths(),
        **_oauth_paths(),
        **_ui_paths(),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sbserver",
            "version": "1",
            "description": "A self-hosted backend that speaks the StaticBackend API. Errors are one line of "
            "plain text followed by a newline; successes are JSON.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "publicKey": {"type": "apiKey", "in": "header", "name": "SB-PUBLIC-KEY"},
                "sessionToken": {"type": "http", "scheme": "bearer", "description": "a user's session token"},
                "rootToken": {"type": "http", "scheme": "bearer", "description": "the app's root token"},
            },
            "schemas": _schemas(),
            "responses": {"Error": _error("an error")},
        },
    }


@cache
def _encoded() -> bytes:
    return orjson.dumps(document())


async def openapi_json(request: Request) -> Response:
    return Response(_encoded(), media_type="application/json")


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
