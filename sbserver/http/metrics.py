"""``GET /metrics`` and the route templates requests are counted under (``http.middleware.Edge``
times every request).

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
from functools import lru_cache

from prometheus_client import generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from sbserver.errors import Forbidden, NotFound, Unauthorized
from sbserver.http.request import services
from sbserver.services.metrics import UNMATCHED
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
