"""``/sudo/cache`` (spec 02 §7.2): an app's root reads and writes its cache values and queues.

``GET ?key=k`` reads a value (404 when missing), ``GET ?key=k&type=queue`` pops the oldest queued
value (``""`` when the queue is empty), ``POST {"key","value","type"}`` sets a value (12-hour
expiry) or, with ``"type": "queue"``, appends to a queue. Keys are the app's own (see
services/cache.py). The path is never a collection: other methods answer 405.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sbserver.errors import BadRequest, NotFound
from sbserver.http.request import fields, json_body, root_of, services
from sbserver.http.responses import boolean, ok
from sbserver.services.cache import AppCache

METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]


async def cache(request: Request) -> Response:
    if request.method not in ("GET", "POST"):
        # HEAD too: a GET may pop a queue, which a HEAD must not do
        raise HTTPException(405, headers={"Allow": "GET, POST"})
    base, _ = await root_of(request)
    svc = services(request)
    app_cache = AppCache(svc.cache, svc.settings)
    if request.method == "GET":
        q = request.query_params
        key = q.get("key", "")
        if not key:
            raise BadRequest("missing key: use /sudo/cache?key=<key> (add &type=queue to pop a queue)")
        if q.get("type") == "queue":
            return ok(await app_cache.pop(base.name, key) or "")
        value = await app_cache.get(base.name, key)
        if value is None:
            raise NotFound("key not found in cache")
        return ok(value)
    key, value, kind = fields(await json_body(request), "key", "value", "type")
    if kind == "queue":
        await app_cache.push(base.name, key, value)
    else:
        await app_cache.set(base.name, key, value)
    return boolean(True)


routes = [
    Route("/sudo/cache", cache, methods=METHODS),
    Route("/sudo/cache/", cache, methods=METHODS),
]
