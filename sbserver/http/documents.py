"""Database routes: /db/, /sudo/, /query/, /sudoquery/, /db/count/, /inc/, /newid, /search,
/sudolistall, /sudo/index, and forms.

``/db/`` and ``/sudo/`` dispatch by method and query string exactly as StaticBackend does:
POST with ``bulk`` = bulk create, with ``ids`` = get by ids, else create; PUT with ``bulk`` =
bulk update, else update; DELETE with ``bulk`` = bulk delete, else delete; GET on the
collection = list, GET on ``/{col}/{id}`` = get.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sbserver.errors import BadRequest, InvalidJSON, NotImplementedYet, Unauthorized
from sbserver.http.request import (
    base_of,
    client_address,
    fields,
    json_body,
    parse_json,
    root_of,
    services,
    user_of,
    user_or_root_of,
)
from sbserver.http.responses import boolean, ok
from sbserver.ids import new_id
from sbserver.services.documents import Page
from sbserver.types import PUBLIC_CALLER_ID, Base, Identity


def _page(request: Request, with_sort: bool = True) -> Page:
    q = request.query_params
    return Page.parse(q.get("page"), q.get("size"), q.get("desc"), q.get("sort") if with_sort else None)


def decode_filter(x: str) -> Any:
    """The clauses of a bulk delete's ``x``: Base64 (standard or URL-safe, padding optional) of
    JSON; a ``+`` that arrived as a space (clients do not URL-encode it) is restored."""
    text = x.replace(" ", "+").strip()
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, altchars=b"-_" if ("-" in text or "_" in text) else None, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"invalid x parameter: not Base64 ({exc})") from exc
    try:
        return parse_json(raw)
    except InvalidJSON as exc:
        raise BadRequest(f"invalid x parameter: {exc.message}") from exc


async def _caller(request: Request, col: str, read: bool) -> tuple[Base, Identity]:
    """The caller of a /db/ route: a session, or the anonymous public caller on pub_ reads."""
    if col.startswith("pub_") and not request.headers.get("authorization"):
        base = await base_of(request)
        if not read:
            raise Unauthorized("missing authorization HTTP header")
        return base, Identity(base.name, PUBLIC_CALLER_ID, PUBLIC_CALLER_ID, "", 0)
    return await user_of(request)


async def _optional_json(request: Request) -> Any:
    raw = await request.body()
    return parse_json(raw) if raw.strip() else None


# Names whose collection-level paths belong to other routes (spec 02 §4.15): their collections
# are reached through their id paths only, never listed or created at ``/sudo/{name}``.
RESERVED_SUDO = {"index": "create an index", "cache": "the cache", "sendmail": "send an email"}


async def not_implemented(request: Request) -> Response:
    """``/sudo/cache`` and ``/sudo/sendmail``: reserved, on every method, with or without a token."""
    name = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    raise NotImplementedYet(
        f"not implemented yet: /sudo/{name} ({RESERVED_SUDO.get(name, name)}) is not served by this server; "
        "the path is reserved and never a collection"
    )


async def _dispatch(request: Request, sudo: bool) -> Response:
    parts = request.path_params["rest"].split("/")
    col = parts[0]
    doc_id = parts[1] if len(parts) > 1 else ""
    method = request.method
    q = request.query_params
    docs = services(request).documents
    if not col:
        raise BadRequest("missing collection name: use /db/{collection}")
    if not doc_id and ((sudo and col in RESERVED_SUDO) or (not sudo and col == "count")):
        if col == "index":
            raise BadRequest("/sudo/index/ is reserved: use /sudo/index?col=<collection>&field=<field>")
        if col == "count":
            raise BadRequest("missing collection name: use /db/count/{collection}")
        return await not_implemented(request)
    if not sudo and col == "index" and method == "POST" and "col" in q and "field" in q:
        return await create_index(request)  # the Go client's SudoAddIndex posts here
    read = method == "GET" or (method == "POST" and not q.get("bulk") and "ids" in q)
    if sudo:
        base, caller = await root_of(request)
    else:
        base, caller = await _caller(request, col, read)
    if method == "POST":
        if q.get("bulk"):
            await docs.create_many(caller, base, col, await json_body(request))
            return ok(True, status=201)
        if "ids" in q:
            return ok(await docs.get_many(caller, base, col, await json_body(request)))
        return ok(await docs.create(caller, base, col, await json_body(request)), status=201)
    if method == "PUT":
        if q.get("bulk"):
            return ok(await docs.update_many(caller, base, col, await json_body(request)))
        if not doc_id:
            raise BadRequest("missing document id: use PUT /db/{collection}/{id}")
        return ok(await docs.update(caller, base, col, doc_id, await json_body(request)))
    if method == "DELETE":
        if q.get("bulk"):
            x = q.get("x", "")
            if not x:
                raise BadRequest("no filters supplied via the &x= query parameter")
            return ok(await docs.delete_many(caller, base, col, decode_filter(x)))
        if not doc_id:
            raise BadRequest("missing document id: use DELETE /db/{collection}/{id}")
        return ok(await docs.delete(caller, base, col, doc_id))
    if doc_id:
        return ok(await docs.get(caller, base, col, doc_id))
    return ok(await docs.list_page(caller, base, col, _page(request)))


async def db(request: Request) -> Response:
    return await _dispatch(request, sudo=False)


async def sudo(request: Request) -> Response:
    return await _dispatch(request, sudo=True)


async def query(request: Request) -> Response:
    col = request.path_params["col"]
    base, caller = await _caller(request, col, read=True)
    body = await json_body(request)
    return ok(await services(request).documents.query(caller, base, col, body, _page(request)))


async def sudo_query(request: Request) -> Response:
    base, caller = await root_of(request)
    body = await json_body(request)
    return ok(await services(request).documents.query(caller, base, request.path_params["col"], body, _page(request)))


async def count(request: Request) -> Response:
    base, caller = await user_or_root_of(request)
    n = await services(request).documents.count(caller, base, request.path_params["col"], await _optional_json(request))
    return ok({"count": n})


async def increment(request: Request) -> Response:
    base, caller = await user_of(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise InvalidJSON('invalid JSON body: expected {"field": "name", "range": 1}')
    lowered = {str(k).lower(): v for k, v in body.items()}
    await services(request).documents.increment(
        caller,
        base,
        request.path_params["col"],
        request.path_params["id"],
        lowered.get("field", ""),
        lowered.get("range"),
    )
    return boolean(True)


async def newid(request: Request) -> Response:
    await user_of(request)
    return ok(new_id())


async def search(request: Request) -> Response:
    base, caller = await user_of(request)
    col, keywords = fields(await json_body(request), "col", "keywords")
    return ok(await services(request).documents.search(caller, base, col, keywords))


async def list_collections(request: Request) -> Response:
    base, _ = await root_of(request)
    return ok(await services(request).documents.collections(base))


async def create_index(request: Request) -> Response:
    base, _ = await root_of(request)
    q = request.query_params
    col, field = q.get("col", ""), q.get("field", "")
    if request.method == "GET" and col:  # the indexed fields of a collection (upstream has no GET)
        return ok(await services(request).documents.indexes(base, col))
    if request.method != "POST":
        raise NotImplementedYet("method not implemented")
    if not col or not field:
        raise BadRequest("missing col or field query parameter: use /sudo/index?col=<collection>&field=<field>")
    await services(request).documents.create_index(base, col, field)
    return boolean(True)


async def post_form(request: Request) -> Response:
    base = await base_of(request)
    await services(request).limits.from_address("postform", base.name, client_address(request))
    pairs: list[tuple[str, str]] = list(request.query_params.multi_items())
    ctype = request.headers.get("content-type", "")
    if "json" in ctype:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise BadRequest("invalid form body: expected a JSON object of fields")
        for k, v in body.items():
            pairs.append((str(k), v if isinstance(v, str) else str(v) if not isinstance(v, (dict, list)) else ""))
    elif "form-urlencoded" in ctype or "multipart/form-data" in ctype or not ctype:
        try:
            form = await request.form(max_files=0, max_fields=1000)
        except Exception as exc:  # malformed multipart / urlencoded bodies
            raise BadRequest(f"invalid form body: {exc}") from exc
        pairs += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    else:
        raise BadRequest(f"invalid form body: unsupported content type {ctype[:60]!r}")
    await services(request).forms.submit(base, request.path_params["form"], pairs)
    return boolean(True)


async def list_forms(request: Request) -> Response:
    base, _ = await root_of(request)
    return ok(await services(request).forms.submissions(base, request.query_params.get("name", "")))


ALL = ["GET", "POST", "PUT", "DELETE"]
EVERY = [*ALL, "HEAD", "PATCH", "OPTIONS"]

routes = [
    Route("/db/count/{col}", count, methods=["POST", "GET", "PUT"]),
    Route("/db/{rest:path}", db, methods=ALL),
    Route("/query/{col}", query, methods=["POST"]),
    Route("/sudoquery/{col}", sudo_query, methods=["POST"]),
    Route("/inc/{col}/{id}", increment, methods=["PUT", "POST"]),
    Route("/newid", newid, methods=["GET", "POST"]),
    Route("/search", search, methods=["POST"]),
    Route("/sudolistall", list_collections, methods=["GET", "POST"]),
    Route("/sudolistall/", list_collections, methods=["GET", "POST"]),
    Route("/sudo/index", create_index, methods=ALL),
    Route("/sudo/{rest:path}", sudo, methods=ALL),
    Route("/postform/{form}", post_form, methods=["POST"]),
    Route("/form", list_forms, methods=["GET"]),
]
