"""An app's own settings, read and replaced with its root token: ``/account/origins``.

``GET`` answers ``{"origins": [...], "server": [...]}``: the app's list of allowed browser origins
(stored as the base's ``whitelist``) and the server-wide ones every app accepts
(``SB_CORS_ORIGINS``, ``APP_URL``). ``POST {"origins": [...]}`` replaces the app's list and answers
the same shape. This process sees the change at once; other server processes within 10 seconds.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sbserver.errors import InvalidJSON
from sbserver.http.request import json_body, root_of, services
from sbserver.http.responses import ok


async def origins(request: Request) -> Response:
    base, _ = await root_of(request)
    tenancy = services(request).tenancy
    if request.method == "POST":
        body = await json_body(request)
        if not isinstance(body, dict) or "origins" not in body:
            raise InvalidJSON('invalid JSON body: expected {"origins": ["https://app.example", ...]}')
        base = await tenancy.set_origins(base, body["origins"])
    return ok({"origins": list(base.whitelist), "server": list(tenancy.server_origins())})


routes = [
    Route("/account/origins", origins, methods=["GET", "POST"]),
]
