"""The web pages: create an app at ``/``, and ``/account/init`` for the CLI and the form."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from sbserver.errors import SBError
from sbserver.http.request import client_address, services
from sbserver.http.responses import ok
from sbserver.http.ui.session import FLASH_COOKIE, take_flash
from sbserver.services.tenancy import DEV_SIGNUP_TEXT


def templates(request: Request) -> Jinja2Templates:
    t: Jinja2Templates = request.app.state.templates
    return t


async def index(request: Request) -> Response:
    kind, flash = take_flash(request)  # left by the admin pages: signed out, session expired
    response = templates(request).TemplateResponse(
        request, "index.html", {"error": "", "email": "", "flash": flash, "flash_kind": kind}
    )
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


async def account_init(request: Request) -> Response:
    settings = services(request).settings
    await services(request).limits.from_address("init", "server", client_address(request))
    if request.method == "GET":
        q = request.query_params
        email = q.get("email", "")
        from_cli = not q.get("ui")
        memory_mode = q.get("mem") == "1" and settings.is_dev
        flag = settings.activate_flag
        bypass = bool(flag) and q.get("x", "").lower() == flag.lower()
    else:
        form = await request.form()
        value = form.get("email", "")
        email = value if isinstance(value, str) else ""
        from_cli = memory_mode = bypass = False
    tenancy = services(request).tenancy
    if wants_json(request) or from_cli or bypass:
        app = await tenancy.init_account(email, memory_mode, from_cli, bypass)
        if wants_json(request) or (bypass and not from_cli):
            return ok(app.credentials())
        return ok(DEV_SIGNUP_TEXT)
    try:
        app = await tenancy.init_account(email, memory_mode, from_cli, bypass)
    except SBError as exc:
        return templates(request).TemplateResponse(
            request, "index.html", {"error": exc.message, "email": email}, status_code=exc.status
        )
    return templates(request).TemplateResponse(
        request,
        "created.html",
        {"pk": app.base.id, "email": app.email, "password": app.password, "root_token": app.root_token},
    )


routes = [
    Route("/", index, methods=["GET"]),
    Route("/account/init", account_init, methods=["GET", "POST"]),
]
