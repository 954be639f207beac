"""The database browser of the admin UI (spec 08 §2): ``/ui/db`` and its document pages.

Every call goes through ``DocumentService`` as the signed-in admin's root identity, inside the
admin's own base: another app's collections and documents are simply not found. Client mistakes
(a bad filter, a value that is not the chosen type) render the page with the reason and a 4xx.
"""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from sbserver.errors import BadRequest, InvalidJSON, NotFound, SBError, client_message
from sbserver.http.request import parse_json, services
from sbserver.http.ui.session import admin_of, check_csrf, page, page_number, pager
from sbserver.http.ui.session import render as render_page
from sbserver.services.documents import SYSTEM_FIELDS, Page

PAGE_SIZE = 50
CELL_CHARS = 80
TYPES = ("string", "int", "float", "bool", "json")


def hidden(col: str) -> bool:
    """Internal collections (names containing ``sb_``, as the spec says) are not listed; the
    service refuses to browse or write the ``sb_*`` ones."""
    return "sb_" in col


def shown(value: Any, limit: int = CELL_CHARS) -> str:
    """A value as one line of text for a table cell."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def type_of(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "json"


def editable(value: Any) -> str:
    """The text of a value in its edit box: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def typed(raw: str, kind: str) -> Any:
    """The form's ``value`` read as ``type``; 400 with the reason when it is not one."""
    if kind == "string":
        return raw
    text = raw.strip()
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise BadRequest(f"invalid int value {text[:40]!r}: use digits, e.g. 42 or -7") from None
    if kind == "float":
        try:
            number = float(text)
        except ValueError:
            raise BadRequest(f"invalid float value {text[:40]!r}: use a number, e.g. 3.14") from None
        if not math.isfinite(number):
            raise BadRequest(f"invalid float value {text[:40]!r}: NaN and infinities cannot be stored")
        return number
    if kind == "bool":
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise BadRequest(f"invalid bool value {text[:40]!r}: use true or false")
        return lowered == "true"
    if kind == "json":
        try:
            return parse_json(text.encode())
        except InvalidJSON as exc:
            raise BadRequest(f"invalid json value: {exc.message.removeprefix('invalid JSON body: ')}") from None
    raise BadRequest(f"invalid type {kind[:20]!r}: use one of {', '.join(TYPES)}")


def _doc_url(doc_id: str, col: str) -> str:
    return f"/ui/db/{quote(doc_id, safe='')}?{urlencode({'col': col})}"


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    return render_page(request, name, {"active": "db", **context}, status)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _fields_of(raw: str) -> list[str]:
    return [f for f in raw.replace(",", " ").split() if f][:50]


@page
async def browse(request: Request) -> Response:
    """``/ui/db``: collections with counts, and one collection's documents (GET params or POST form)."""
    admin = await admin_of(request)
    if request.method == "POST":
        params = await _form(request)
        check_csrf(admin, params)
    else:
        params = dict(request.query_params)
    docs = services(request).documents
    names = [c for c in await docs.collections(admin.base) if not hidden(c)]
    counts: list[tuple[str, int | None]] = []
    for name in names:
        try:
            counts.append((name, await docs.count(admin.identity, admin.base, name, None)))
        except SBError:
            counts.append((name, None))
    col = params.get("col", "").strip() or (names[0] if names else "")
    sortby = params.get("sortby", "").strip() or "id"
    desc = params.get("desc", "1") != "0"
    query = params.get("query", "").strip()
    fields = _fields_of(params.get("fields", ""))
    page_no = page_number(params.get("page"))
    state = {"col": col, "sortby": sortby, "desc": "1" if desc else "0", "query": query, "fields": " ".join(fields)}
    context: dict[str, Any] = {
        "collections": counts,
        "state": state,
        "error": "",
        "rows": [],
        "columns": [],
        "total": 0,
        "pages": [],
        "page_no": page_no,
    }
    status = 200
    if col:
        try:
            clauses = parse_json(query.encode()) if query else []
        except InvalidJSON as exc:
            clauses = None
            context["error"] = f"invalid filter: {exc.message.removeprefix('invalid JSON body: ')}"
            status = 400
        if clauses is not None:
            try:
                result = await docs.query(
                    admin.identity, admin.base, col, clauses, Page(page_no, PAGE_SIZE, desc, sortby)
                )
            except SBError as exc:
                context["error"] = client_message(exc)
                status = exc.status
            else:
                context.update(_table(result, col, fields, state))
    return render(request, "ui/db_list.html", context, status=status)


def _table(result: dict[str, Any], col: str, fields: list[str], state: dict[str, str]) -> dict[str, Any]:
    found: list[dict[str, Any]] = result["results"]
    if fields:
        columns = ["id", *[f for f in fields if f != "id"]]
    else:
        columns = ["id", "accountId", *[k for k in (found[0] if found else {}) if k not in ("id", "accountId")]]
    rows = [
        {"url": _doc_url(str(doc.get("id", "")), col), "cells": [shown(doc.get(c, "")) for c in columns]}
        for doc in found
    ]
    total = int(result["total"])
    last = max(1, math.ceil(total / PAGE_SIZE))
    current = int(result["page"])
    pages = pager(current, last, lambda n: "/ui/db?" + urlencode({**state, "page": n}))
    return {"rows": rows, "columns": columns, "total": total, "pages": pages}


@page
async def document(request: Request) -> Response:
    """``/ui/db/<id>?col=``: the document's fields, each an edit form."""
    admin = await admin_of(request)
    col = request.query_params.get("col", "")
    doc_id = request.path_params["id"]
    if not col:
        raise BadRequest("missing collection: use /ui/db/<id>?col=<collection>")
    doc = await services(request).documents.get(admin.identity, admin.base, col, doc_id)
    rows = [
        {
            "field": k,
            "value": editable(v),
            "type": type_of(v),
            "system": k in SYSTEM_FIELDS,
            "multiline": isinstance(v, (dict, list)) or (isinstance(v, str) and ("\n" in v or len(v) > 80)),
        }
        for k, v in sorted(doc.items(), key=lambda kv: kv[0] not in SYSTEM_FIELDS)
    ]
    return render(
        request,
        "ui/db_doc.html",
        {"col": col, "doc_id": doc_id, "rows": rows, "types": TYPES, "back": "/ui/db?" + urlencode({"col": col})},
    )


@page
async def save(request: Request) -> Response:
    """``POST /ui/db/save``: one field set to ``value`` read as ``type``; 303 to the document."""
    admin = await admin_of(request)
    form = await _form(request)
    check_csrf(admin, form)
    doc_id, col = form.get("id", ""), form.get("col", "")
    field = form.get("field", "").strip()
    if not doc_id or not col:
        raise BadRequest("missing id or col: the form must carry the document id and its collection")
    if not field:
        raise BadRequest("missing field: name the field to set")
    if field in SYSTEM_FIELDS:
        raise BadRequest(f"field {field!r} is set by the server and cannot be changed")
    value = typed(form.get("value", ""), form.get("type", "string"))
    await services(request).documents.update(admin.identity, admin.base, col, doc_id, {field: value})
    return RedirectResponse(_doc_url(doc_id, col), status_code=303)


@page
async def new_document(request: Request) -> Response:
    """``/ui/db/new?col=``: a JSON object to create; POST creates it and 303 to its page."""
    admin = await admin_of(request)
    if request.method == "GET":
        col = request.query_params.get("col", "")
        return render(request, "ui/db_new.html", {"col": col, "body": "{\n  \n}", "error": ""})
    form = await _form(request)
    check_csrf(admin, form)
    col, body = form.get("col", "").strip(), form.get("body", "")
    try:
        if not col:
            raise BadRequest("missing collection: name the collection to create the document in")
        try:
            data = parse_json(body.encode())
        except InvalidJSON as exc:
            raise BadRequest(f"invalid document: {exc.message.removeprefix('invalid JSON body: ')}") from None
        if not isinstance(data, dict):
            raise BadRequest('invalid document: expected a JSON object, e.g. {"title": "hello"}')
        created = await services(request).documents.create(admin.identity, admin.base, col, data)
    except SBError as exc:
        context = {"col": col, "body": body, "error": client_message(exc)}
        return render(request, "ui/db_new.html", context, status=exc.status)
    return RedirectResponse(_doc_url(str(created["id"]), col), status_code=303)


@page
async def delete_document(request: Request) -> Response:
    """``/ui/db/del/<id>?col=``: GET asks for confirmation, POST deletes and 303 to the collection."""
    admin = await admin_of(request)
    doc_id = request.path_params["id"]
    docs = services(request).documents
    if request.method == "GET":
        col = request.query_params.get("col", "")
        if not col:
            raise BadRequest("missing collection: use /ui/db/del/<id>?col=<collection>")
        doc = await docs.get(admin.identity, admin.base, col, doc_id)
        preview = [(k, shown(v)) for k, v in doc.items()][:12]
        return render(request, "ui/db_delete.html", {"col": col, "doc_id": doc_id, "preview": preview})
    form = await _form(request)
    check_csrf(admin, form)
    col = form.get("col", "") or request.query_params.get("col", "")
    if not col:
        raise BadRequest("missing collection: the form must carry col")
    if not await docs.delete(admin.identity, admin.base, col, doc_id):
        raise NotFound("document not found")
    return RedirectResponse("/ui/db?" + urlencode({"col": col}), status_code=303)


routes = [
    Route("/ui/db", browse, methods=["GET", "POST"]),
    Route("/ui/db/new", new_document, methods=["GET", "POST"]),
    Route("/ui/db/save", save, methods=["POST"]),
    Route("/ui/db/del/{id}", delete_document, methods=["GET", "POST"]),
    Route("/ui/db/{id}", document, methods=["GET"]),
]
