"""Operational routes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sbserver.errors import SBError
from sbserver.http.request import services
from sbserver.http.responses import boolean


async def ping(request: Request) -> Response:
    if not await services(request).store.ping():
        raise SBError("connection failed to database, I'm down.")
    return boolean(True)


async def stripe(request: Request) -> Response:
    return boolean(True)


routes = [
    Route("/ping", ping, methods=["GET", "POST", "HEAD"]),
    Route("/stripe", stripe, methods=["POST"]),
]
