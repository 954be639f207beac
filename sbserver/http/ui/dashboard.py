"""``GET /ui``: the app at a glance."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sbserver.http.ui.session import admin_of, page, render


@page
async def dashboard(request: Request) -> Response:
    await admin_of(request)
    return render(request, "dashboard.html", {"active": "dashboard"})


routes: list[BaseRoute] = [
    Route("/ui", dashboard, methods=["GET"]),
    Route("/ui/", dashboard, methods=["GET"]),
]
