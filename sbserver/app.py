"""``create_app(settings)``: the one place where routes, middleware, backends and lifespan meet."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from sbserver.backends.bus import Bus, create_bus
from sbserver.backends.cache import Cache, create_cache
from sbserver.backends.mail import Mailer, create_mailer
from sbserver.backends.storage import Store, create_store
from sbserver.errors import SBError, client_message, is_internal
from sbserver.http import (
    accounts,
    apps,
    documents,
    extras,
    functions,
    mail,
    metrics,
    misc,
    oauth,
    openapi,
    pages,
    realtime,
    storage,
    tasks,
    ui,
)
from sbserver.http import cache as sudo_cache
from sbserver.http.metrics import metrics_on
from sbserver.http.middleware import CorsPolicy, Edge
from sbserver.http.request import request_id
from sbserver.http.responses import error
from sbserver.logs import ACTIVITY
from sbserver.services.container import Services, build_services
from sbserver.settings import Settings

log = logging.getLogger("sbserver")
HERE = Path(__file__).parent


async def _sb_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SBError)
    rid = request_id(request)
    if is_internal(exc):  # driver text goes to the log under the request id, never to the client
        log.error("request %s: %s %s failed: %s", rid, request.method, request.url.path, exc.message, exc_info=exc)
    return error(client_message(exc, rid), exc.status, rid)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    text = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail).lower())
    response = error(text, exc.status_code)
    if exc.headers and "Allow" in exc.headers:  # a 405 names the methods the route has
        response.headers["Allow"] = exc.headers["Allow"]
    return response


async def _crash(request: Request, exc: Exception) -> Response:
    rid = request_id(request)
    log.error("request %s: unhandled error on %s %s", rid, request.method, request.url.path, exc_info=exc)
    return error(client_message(exc, rid), 500, rid)


def build_routes() -> list[BaseRoute]:
    return [
        *mail.routes,  # before the /sudo/{rest} catch-all of documents
        *sudo_cache.routes,  # likewise
        *documents.routes,  # the busiest, and no other route starts like them
        *pages.routes,
        *ui.routes,  # the admin pages, /ui/...
        *misc.routes,
        *accounts.routes,
        *apps.routes,
        *realtime.routes,
        *functions.routes,
        *tasks.routes,
        *storage.routes,
        *extras.routes,
        *oauth.routes,
        *openapi.routes,
        *metrics.routes,
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]


def create_app(
    settings: Settings,
    store: Store | None = None,
    cache: Cache | None = None,
    mailer: Mailer | None = None,
    bus: Bus | None = None,
) -> Starlette:
    """Wire a server. Backends default to what the settings ask for; tests may pass their own."""
    services: Services = build_services(
        settings,
        store or create_store(settings),
        cache or create_cache(settings),
        bus or create_bus(settings),
        mailer or create_mailer(settings),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # each part is stopped (in reverse order) only if it started: a failing start closes what
        # opened before it (the store's pool and threads when Redis is down, say)
        async with AsyncExitStack() as started:
            for start, stop in (
                (services.store.open, services.store.close),
                (services.cache.open, services.cache.close),
                (services.bus.open, services.bus.close),
                (services.files.provider.open, services.files.provider.close),
                (services.broker.start, services.broker.stop),
                (None, services.http.aclose),
                (None, services.render.close),  # the browser, if a render started one
                (services.functions.start, services.functions.stop),
                (services.tasks.start, services.tasks.stop),
            ):
                if start is not None:
                    await start()
                started.push_async_callback(stop)
            if settings.is_dev and settings.create_dev_app:
                await services.tenancy.ensure_dev_app()
            yield

    app = Starlette(
        routes=build_routes(),
        middleware=[
            Middleware(
                Edge,
                cors=CorsPolicy(services.tenancy, dev=settings.is_dev),
                activity=ACTIVITY,
                # each request's count in /metrics, when served
                metrics=services.metrics if metrics_on(settings) else None,
                limit=settings.max_body_bytes,
                # uploads have their own limit (SB_UPLOAD_MAX_BYTES), enforced as the file streams in
                exempt=storage.OWN_LIMIT,
            ),
        ],
        exception_handlers={SBError: _sb_error, HTTPException: _http_error, Exception: _crash},
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.templates = Jinja2Templates(directory=HERE / "templates")
    return app
