"""OAuth sign-in (spec 02 §9) and each app's provider keys; the flow is in services/oauth.py.

- ``GET /oauth/login?provider&reqid&sbpk``: 307 to the provider (400 bad reqid or unknown
  provider, 404 provider not configured for the app, 409 reqid already used);
- ``GET|POST /oauth/callback[/...]``: the provider's answer; 200 a page that closes the window,
  or 400 with the reason (nothing is created);
- ``GET /oauth/get-user?reqid``: ``false`` until the user is signed in, then
  ``{token,email,name,first,last,avatarUrl}`` (for ``RESULT_TTL`` seconds);
- ``GET /account/oauth`` and ``GET|PUT|DELETE /account/oauth/{provider}`` (root): the app's keys.
"""

from __future__ import annotations

import base64
import hashlib

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from sbserver.errors import BadRequest
from sbserver.http.request import base_of, json_body, root_of, services
from sbserver.http.responses import boolean, ok

CLOSE_SCRIPT = "window.close()"
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(CLOSE_SCRIPT.encode()).digest()).decode()
SIGNED_IN_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Signed in</title></head>'
    f"<body><p>You are signed in: this window can be closed.</p><script>{CLOSE_SCRIPT}</script></body></html>"
)
PAGE_HEADERS = {
    "Content-Security-Policy": f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH}'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def callback_url(request: Request) -> str:
    """Where the provider sends the browser back: ``<APP_URL>/oauth/callback``."""
    root = services(request).settings.app_url or str(request.base_url)
    return root.rstrip("/") + "/oauth/callback"


async def login(request: Request) -> Response:
    base = await base_of(request)
    q = request.query_params
    url = await services(request).oauth.begin(base, q.get("provider", ""), q.get("reqid", ""), callback_url(request))
    return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})


async def callback(request: Request) -> Response:
    params = request.query_params
    if request.method == "POST" and not request.url.query:
        try:
            form = await request.form()
        except (ValueError, KeyError, AssertionError) as exc:
            raise BadRequest("invalid form body") from exc
        values = {k: v for k, v in form.items() if isinstance(v, str)}
    else:
        values = dict(params)
    await services(request).oauth.complete(
        values.get("state", ""), values.get("code", ""), values.get("error", ""), values.get("error_description", "")
    )
    return Response(SIGNED_IN_PAGE, media_type="text/html", headers=PAGE_HEADERS)


async def get_user(request: Request) -> Response:
    base = await base_of(request)
    found = await services(request).oauth.result(base, request.query_params.get("reqid", ""))
    return boolean(False) if found is None else ok(found)


async def providers(request: Request) -> Response:
    base, _ = await root_of(request)
    return ok(await services(request).oauth.configs(base))


async def provider(request: Request) -> Response:
    base, _ = await root_of(request)
    name = request.path_params["provider"]
    svc = services(request).oauth
    if request.method == "GET":
        return ok(await svc.config(base, name))
    if request.method == "DELETE":
        await svc.remove(base, name)
        return boolean(True)
    return ok(await svc.configure(base, name, await json_body(request)))


routes = [
    Route("/oauth/login", login, methods=["GET"]),
    Route("/oauth/callback", callback, methods=["GET", "POST"]),
    Route("/oauth/callback/{rest:path}", callback, methods=["GET", "POST"]),
    Route("/oauth/get-user", get_user, methods=["GET"]),
    Route("/account/oauth", providers, methods=["GET"]),
    Route("/account/oauth/{provider}", provider, methods=["GET", "PUT", "POST", "DELETE"]),
]
