"""Admin pages of the app's accounts: accounts, their users, OAuth provider keys, the app itself.

- ``GET /ui/accounts``: every account (id linking to its users, email, created);
- ``GET /ui/users/{account_id}``: the users of one account (404 page for an id of no account of
  this app, another app's included);
- ``GET /ui/logins``, ``POST /ui/enable-login`` (``provider``, ``apikey``, ``apisecret``): the
  app's OAuth provider keys, saved through the OAuth service (the secret sealed, never shown);
- ``GET|POST /ui/my-account/``: the app and its tenant (no billing on this server).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sbserver.errors import SBError
from sbserver.http.request import services
from sbserver.http.ui.session import admin_of, check_csrf, form_text, page, render
from sbserver.services.oauth import PROVIDERS

ADDED = "OAuth provider successfully added"
NO_BILLING = "Billing is not part of this server: there is no plan to manage and nothing to pay."


@page
async def accounts(request: Request) -> Response:
    admin = await admin_of(request)
    found = await services(request).accounts.all_accounts(admin.identity, admin.base)
    rows = sorted(found, key=lambda a: a.created, reverse=True)
    return render(request, "accounts.html", {"active": "accounts", "accounts": rows})


@page
async def users(request: Request) -> Response:
    admin = await admin_of(request)
    account_id = request.path_params["account_id"]
    found = await services(request).accounts.users_in(admin.identity, admin.base, account_id)
    return render(request, "users.html", {"active": "accounts", "account_id": account_id, "users": found})


async def _logins_page(
    request: Request, flash: str = "", kind: str = "success", status: int = 200, provider: str = ""
) -> Response:
    admin = await admin_of(request)
    configs = await services(request).oauth.configs(admin.base)
    context = {
        "active": "accounts",
        "configs": configs,
        "providers": sorted(PROVIDERS),
        "selected": provider,
        "callback": (services(request).settings.app_url or str(request.base_url)).rstrip("/") + "/oauth/callback",
    }
    if flash:
        context.update(flash=flash, flash_kind=kind)
    return render(request, "logins.html", context, status=status)


@page
async def logins(request: Request) -> Response:
    return await _logins_page(request)


@page
async def enable_login(request: Request) -> Response:
    admin = await admin_of(request)
    form = await request.form()
    check_csrf(admin, form)
    provider = form_text(form, "provider", 40).strip().lower()
    body = {"clientId": form_text(form, "apikey", 2000), "clientSecret": form_text(form, "apisecret", 2000)}
    try:
        await services(request).oauth.configure(admin.base, provider, body)
    except SBError as exc:
        if exc.status >= 500:
            raise
        return await _logins_page(request, exc.message, "danger", exc.status, provider)
    return await _logins_page(request, ADDED, provider=provider)


@page
async def my_account(request: Request) -> Response:
    admin = await admin_of(request)
    if request.method == "POST":
        check_csrf(admin, await request.form())
        return render(request, "my_account.html", {"active": "my-account", "flash": NO_BILLING, "flash_kind": "info"})
    return render(request, "my_account.html", {"active": "my-account"})


routes: list[BaseRoute] = [
    Route("/ui/accounts", accounts, methods=["GET"]),
    Route("/ui/users/{account_id}", users, methods=["GET"]),
    Route("/ui/logins", logins, methods=["GET"]),
    Route("/ui/enable-login", enable_login, methods=["POST"]),
    Route("/ui/my-account", my_account, methods=["GET", "POST"]),
    Route("/ui/my-account/", my_account, methods=["GET", "POST"]),
]
