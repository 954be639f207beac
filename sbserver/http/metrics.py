"""``GET /metrics`` and the middleware that times every request for it and for the log.

Who may scrape (settings, read once):

* ``SB_METRICS_TOKEN`` set: anyone sending ``Authorization: Bearer <token>``; any other request
  gets 401 (the token is compared in constant time);
* no token, ``SB_METRICS_LOCAL`` on (the default in dev mode only): loopback clients; others get
  403. Behind a reverse proxy on the same host every client looks like loopback: use a token;
* neither: metrics are off, ``/metrics`` answers 404 and requests are not counted.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from functools import lru_cache

from prometheus_client import generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sbserver.errors import Forbidden, NotFound, Unauthorized
from sbserver.http.request import REQUEST_ID, services
from sbserver.logs import Activity
from sbserver.services.metrics import UNMATCHED, Metrics
from sbserver.settings import Settings

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CATCH_ALL = "{rest:path}"
# the templates of the catch-all routes (/db/{rest:path}, /sudo/{rest:path}) by the number of
# segments the rest holds, as the OpenAPI document names them
_BY_DEPTH = ("{collection}", "{collection}/{id}")


@lru_cache(maxsize=64)
def _refined(template: str, depth: int) -> str:
    return template[: -len(CATCH_ALL)] + _BY_DEPTH[depth] if depth < len(_BY_DEPTH) else template


def template_of(scope: Scope) -> str:
    """The template of the route that served the request (``unmatched``: none did)."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    template: str = route.path
    if template.endswith(CATCH_ALL):
        rest = scope.get("path_params", {}).get("rest", "")
        return _refined(template, rest.strip("/").count("/") if isinstance(rest, str) else 9)
    return template


def metrics_on(settings: Settings) -> bool:
    return bool(settings.metrics_token) or settings.metrics_local


@lru_cache(maxsize=256)
def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_access(request: Request, settings: Settings) -> None:
    """Refuse a scrape the settings do not allow (see the module's docstring)."""
    token = settings.metrics_token
    if token:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), f"Bearer {token}".encode()):
            raise Unauthorized("metrics need Authorization: Bearer <the SB_METRICS_TOKEN value>")
        return
    if not settings.metrics_local:
        raise NotFound("metrics are off: set SB_METRICS_TOKEN (or SB_METRICS_LOCAL=1 for loopback scrapers)")
    host = request.client.host if request.client else ""
    if not is_loopback(host):
        raise Forbidden("metrics are served to loopback clients only: set SB_METRICS_TOKEN to scrape from elsewhere")


async def metrics_page(request: Request) -> Response:
    svc = services(request)
    check_access(request, svc.settings)
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE)


routes = [Route("/metrics", metrics_page, methods=["GET"])]


class Observe:
    """Time every request: count it in ``metrics`` (by route template; None: metrics are off) and
    write its activity line. Sits inside ``RequestId`` (it reads the id from the scope).

    WebSocket sessions get a line when they end (status 101 once accepted, else 403), no count:
    the connection gauges cover them.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics | None, activity: Activity) -> None:
        self.app = app
        self.metrics = metrics
        self.activity = activity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if not status:
                t = message["type"]
                if t == "http.response.start":
                    status = message["status"]
                elif t == "websocket.accept":
                    status = 101
                elif t == "websocket.close":  # before accepting: the handshake is refused
                    status = 403
                elif t == "websocket.http.response.start":
                    status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - began
            status = status or 500  # nothing was sent: it failed, the server's error page follows
            template = template_of(scope)
            method = scope["method"] if kind == "http" else "WS"
            if self.metrics is not None and kind == "http":
                self.metrics.request(method, template, status, seconds)
            if self.activity.on:  # the path as sent (still percent-encoded), formatted later
                path = scope.get("raw_path") or scope["path"]
                self.activity.request(
                    method, path, status, seconds, scope.get(REQUEST_ID, ""), template, scope.get("client")
                )
