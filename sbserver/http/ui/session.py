"""Signing in to the admin pages, the session cookie, CSRF, and rendering a page.

Two ways in, both posting to ``/ui/login``: the app's public key with its root token (the spec's
form), or the public key with an administrator's email and password (a user of role >= 100).

The session lives in two cookies, named as the spec names them: ``pk`` (the public key) and
``token``, which here holds a *sealed* session, never the root token itself: AES-GCM under a key
derived from APP_SECRET (``crypto.SecretBox``, purpose ``UI_SESSIONS``), so the server alone can
read or make one. It holds the public key, the admin's user id and secret token (a password change
or a reset ends the session at once, as for every token), a CSRF secret, when it was issued and when
it was last seen. Both cookies are HttpOnly, SameSite=Strict, Path=/, Secure over https. A session
ends after ``SB_UI_IDLE_MINUTES`` without a page (default 30) and 48 hours after sign-in.

Handlers use ``page`` (the wrapper that turns "not signed in" into a 303 to ``/`` and a refused
action into the error page), ``admin_of``, ``check_csrf`` and ``render``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import orjson
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from sbserver.crypto import PREFIX, SecretBox
from sbserver.errors import BadRequest, NotFound, SBError, Unauthorized, client_message, is_internal
from sbserver.http.request import client_address, request_id, services
from sbserver.services.accounts import BAD_LOGIN
from sbserver.services.identity import DEV_ROOT_ALIAS
from sbserver.services.tokens import root_token
from sbserver.types import ROLE_ROOT, Base, Identity

log = logging.getLogger("sbserver.ui")

UI_SESSIONS = b"sbserver ui sessions v1"
_COOKIE_TEXT = re.compile(r"[A-Za-z0-9_-]+")
PK_COOKIE = "pk"
SESSION_COOKIE = "token"
FLASH_COOKIE = "sb_flash"
ABSOLUTE_SECONDS = 48 * 3600
REFRESH_SECONDS = 30  # a page re-seals the cookie (new last-seen) at most this often
NO_APP = "This app does not exists"  # sic: the spec's text
BAD_TOKEN = "invalid public key / token"
NOT_ADMIN = "this user is not an administrator of this app"
HOME = "/"
AFTER_LOGIN = "/ui/accounts"

Handler = Callable[[Request], Awaitable[Response]]


# --- the session -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """What the ``token`` cookie carries, sealed."""

    pk: str
    user_id: str
    account_id: str
    user_token: str
    csrf: str
    issued: float
    seen: float

    def ident(self) -> str:
        """A name for this session that reveals nothing of it (the key of its sign-out)."""
        return hashlib.sha256(self.csrf.encode()).hexdigest()[:32]

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "pk": self.pk,
                "uid": self.user_id,
                "aid": self.account_id,
                "ut": self.user_token,
                "csrf": self.csrf,
                "iat": self.issued,
                "seen": self.seen,
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> Session | None:
        try:
            data = orjson.loads(raw)
            return cls(
                str(data["pk"]),
                str(data["uid"]),
                str(data["aid"]),
                str(data["ut"]),
                str(data["csrf"]),
                float(data["iat"]),
                float(data["seen"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


def new_session(pk: str, ident: Identity, now: float | None = None) -> Session:
    now = time.time() if now is None else now
    return Session(pk, ident.user_id, ident.account_id, ident.user_token, secrets.token_urlsafe(24), now, now)


def _box(app_secret: bytes) -> SecretBox:
    return SecretBox(app_secret, UI_SESSIONS)


def seal_session(app_secret: bytes, session: Session) -> str:
    """The ``token`` cookie's value for ``session`` (tests use it to make an old session)."""
    sealed = _box(app_secret).seal(session.to_json().decode(), "ui")
    return sealed[len(PREFIX) :].rstrip("=")  # a bare cookie value: no quotes needed


def open_session(app_secret: bytes, value: str) -> Session | None:
    """The session a cookie holds, or None when it is not one this server sealed."""
    if not value or len(value) > 4096 or not _COOKIE_TEXT.fullmatch(value):
        return None
    try:
        return Session.from_json(_box(app_secret).open(PREFIX + value + "=" * (-len(value) % 4), "ui"))
    except SBError:
        return None


def expired(session: Session, idle_seconds: float, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    return now - session.seen > idle_seconds or now - session.issued > ABSOLUTE_SECONDS or session.issued > now + 60


# --- who is signed in --------------------------------------------------------------------------


@dataclass(frozen=True)
class Admin:
    """The signed-in administrator of one app: every page acts as ``identity`` inside ``base``."""

    base: Base
    identity: Identity
    pk: str
    csrf: str
    email: str


class SignedOut(Exception):
    """No session, an expired or revoked one: the page answers 303 to ``/``."""

    def __init__(self, flash: str = "") -> None:
        super().__init__(flash)
        self.flash = flash


class Refused(SBError):
    """An action refused before it ran (a missing or wrong CSRF token)."""

    status = 403


_ADMIN = "sb.ui.admin"
_SESSION = "sb.ui.session"


def _boxed_secret(request: Request) -> bytes:
    return services(request).settings.app_secret


def _idle_seconds(request: Request) -> float:
    return services(request).settings.ui_idle_minutes * 60.0


async def admin_of(request: Request) -> Admin:
    """The signed-in admin, verified against the store on every request; ``SignedOut`` otherwise."""
    hit = request.scope.get(_ADMIN)
    if isinstance(hit, Admin):
        return hit
    session = open_session(_boxed_secret(request), request.cookies.get(SESSION_COOKIE, ""))
    if session is None:
        raise SignedOut()
    if expired(session, _idle_seconds(request)):
        raise SignedOut("Your session has expired: please sign in again.")
    svc = services(request)
    if await svc.identities.session_ended(session.ident()):
        raise SignedOut()
    try:
        base = await svc.tenancy.base(session.pk)
    except NotFound as exc:  # the app was removed (a store that is down is an error page, not a sign-out)
        raise SignedOut(NO_APP) from exc
    try:  # the user still exists, is still an admin, and still has the secret the session was made with
        ident = await svc.identities.root(base, root_token(session.user_id, session.account_id, session.user_token))
    except (BadRequest, Unauthorized) as exc:
        raise SignedOut(
            "Your session has ended (the password changed or the user was removed): sign in again."
        ) from exc
    admin = Admin(base, ident, session.pk, session.csrf, ident.email)
    request.scope[_ADMIN] = admin
    request.scope[_SESSION] = session
    return admin


def not_activity(request: Request) -> None:
    """This request (a page's own poll) does not count as the admin's activity: ``page`` will not
    renew the session's last-seen time for it, so a page left open still goes idle."""
    request.scope.pop(_SESSION, None)


def check_csrf(admin: Admin, form: FormData | Mapping[str, Any], header: str = "") -> None:
    """Refuse (403, nothing done) a form whose ``csrf`` field is missing or not this session's.

    ``header``: the ``X-CSRF-Token`` of an htmx request (the layout sends it), used when the form
    has no ``csrf`` field."""
    given = form.get("csrf", "") or header
    if not isinstance(given, str) or not given or not hmac.compare_digest(given.encode(), admin.csrf.encode()):
        raise Refused("this form is out of date or was not sent from this admin page (CSRF check failed): reload it")


def page_number(raw: str | None) -> int:
    """A ``page`` query parameter as a page number (1 when absent or not a number)."""
    try:
        return max(1, min(int(raw or "1"), 1_000_000))
    except ValueError:
        return 1


def pager(current: int, last: int, url_of: Callable[[int], str]) -> list[dict[str, Any]]:
    """The links of ``ui/pager.html``: the first and last pages and two either side of
    ``current`` (none when there is one page)."""
    if last <= 1:
        return []
    numbers = sorted({1, last, *range(max(1, current - 2), min(last, current + 2) + 1)})
    return [{"no": n, "url": url_of(n), "current": n == current} for n in numbers]


def form_text(form: FormData, name: str, limit: int = 100_000) -> str:
    """A text field of a form ('' when absent or a file)."""
    value = form.get(name, "")
    return value[:limit] if isinstance(value, str) else ""


# --- cookies and responses ---------------------------------------------------------------------


def _cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def set_session_cookies(response: Response, request: Request, session: Session) -> None:
    left = max(1, int(ABSOLUTE_SECONDS - (time.time() - session.issued)))
    _cookie(response, request, PK_COOKIE, session.pk, left)
    _cookie(response, request, SESSION_COOKIE, seal_session(_boxed_secret(request), session), left)


def clear_session_cookies(response: Response, request: Request) -> None:
    for name in (PK_COOKIE, SESSION_COOKIE):
        _cookie(response, request, name, "", 0)


def set_flash(response: Response, request: Request, message: str, kind: str = "success") -> None:
    """A one-line message the next page shows (after a redirect)."""
    _cookie(response, request, FLASH_COOKIE, quote(f"{kind}:{message[:300]}"), 60)


def take_flash(request: Request) -> tuple[str, str]:
    """(kind, message) of the pending flash, or ('', '')."""
    raw = unquote(request.cookies.get(FLASH_COOKIE, ""))
    kind, _, message = raw.partition(":")
    if kind not in ("success", "danger", "info") or not message:
        return "", ""
    return kind, message


def redirect(request: Request, url: str, flash: str = "", kind: str = "success") -> Response:
    response = RedirectResponse(url, status_code=303)
    if flash:
        set_flash(response, request, flash, kind)
    return response


def templates(request: Request) -> Jinja2Templates:
    t: Jinja2Templates = request.app.state.templates
    return t


def render(
    request: Request, template_name: str, context: Mapping[str, Any] | None = None, status: int = 200
) -> Response:
    """A page of ``templates/ui/``: ``admin``, ``csrf``, ``active`` (the nav key) and the flash are added.

    ``context`` may set ``flash`` (a message) and ``flash_kind`` (success, danger, info) itself."""
    admin = request.scope.get(_ADMIN)
    ctx: dict[str, Any] = {"admin": admin, "csrf": admin.csrf if isinstance(admin, Admin) else "", "active": ""}
    kind, message = take_flash(request)
    if message:
        ctx.update(flash=message, flash_kind=kind)
    ctx.update(context or {})
    name = template_name if template_name.startswith("ui/") else f"ui/{template_name}"
    response = templates(request).TemplateResponse(request, name, ctx, status_code=status)
    if message:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def error_page(request: Request, reason: str, status: int) -> Response:
    return render(request, "error.html", {"reason": reason, "status": status}, status=status)


def page(handler: Handler) -> Handler:
    """Wrap an admin page: signed out → 303 to ``/`` (for htmx, ``HX-Redirect`` to it); an ``SBError`` → the error page with its
    reason and status (internal errors: a generic line with the request id, details in the log);
    the session's last-seen time is refreshed on the way out."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            response = await handler(request)
        except SignedOut as out:
            response = redirect(request, HOME, out.flash, "danger") if out.flash else redirect(request, HOME)
            clear_session_cookies(response, request)
            if request.headers.get("hx-request") == "true":
                # htmx (a page's poll) follows a 303 itself and would put the sign-in page inside
                # the part it refreshes: it is told to load the sign-in page as a whole page
                response.headers["HX-Redirect"] = response.headers["location"]
                del response.headers["location"]
                response.status_code = 200
            return response
        except SBError as exc:
            rid = request_id(request)
            if is_internal(exc):
                log.error(
                    "request %s: %s %s failed: %s", rid, request.method, request.url.path, exc.message, exc_info=exc
                )
            response = error_page(request, client_message(exc, rid), exc.status)
        except Exception as exc:  # a bug: the page says so with the request id, the log has the rest
            rid = request_id(request)
            log.error("request %s: unhandled error on %s %s", rid, request.method, request.url.path, exc_info=exc)
            response = error_page(request, client_message(exc, rid), 500)
        session = request.scope.get(_SESSION)
        if isinstance(session, Session) and time.time() - session.seen > REFRESH_SECONDS:
            fresh = dataclasses.replace(session, seen=time.time())
            set_session_cookies(response, request, fresh)
        return response

    return wrapped


# --- the routes --------------------------------------------------------------------------------


def _same_origin(request: Request) -> bool:
    """A form post from another site is refused (SameSite cookies do not protect a sign-in)."""
    origin = request.headers.get("origin", "")
    if not origin or origin == "null":
        return not origin
    parts = urlsplit(origin)
    return parts.netloc == request.url.netloc


def login_page(request: Request, message: str, status: int, pk: str = "", email: str = "") -> Response:
    return templates(request).TemplateResponse(
        request,
        "index.html",
        {"error": "", "email": "", "login_error": message, "login_pk": pk, "login_email": email},
        status_code=status,
    )


async def login(request: Request) -> Response:
    """``POST /ui/login``: ``pk`` and ``token`` (root token), or ``pk``, ``email`` and ``password``."""
    if not _same_origin(request):
        return login_page(request, "sign-in refused: the form was not sent from this server's page", 403)
    form = await request.form()
    pk = form_text(form, "pk", 200).strip()
    token = form_text(form, "token", 1000).strip()
    email = form_text(form, "email", 320).strip()
    password = form_text(form, "password", 1000)
    svc = services(request)
    if not pk:
        return login_page(request, NO_APP, 400, pk, email)
    try:
        base = await svc.tenancy.base(pk)
    except SBError:
        return login_page(request, NO_APP, 400, pk, email)
    try:
        if email or password:
            jwt = await svc.accounts.login(base, email, password, client_address(request))
            ident = await svc.identities.session(base, jwt)
            if ident.role < ROLE_ROOT:
                return login_page(request, NOT_ADMIN, 403, pk, email)
        else:
            if token.count("|") != 2 and token != DEV_ROOT_ALIAS:
                return login_page(request, BAD_TOKEN, 400, pk)
            ident = await svc.identities.root(base, token)
    except SBError as exc:
        if exc.status == 429:
            return login_page(request, exc.message, 429, pk, email)
        message = BAD_LOGIN if (email or password) else BAD_TOKEN
        return login_page(request, message, 401 if email or password else 400, pk, email)
    response = RedirectResponse(AFTER_LOGIN, status_code=303)
    set_session_cookies(response, request, new_session(base.id, ident))
    return response


async def _logout(request: Request) -> Response:
    admin = await admin_of(request)
    check_csrf(admin, await request.form())
    session = request.scope.pop(_SESSION, None)
    if isinstance(session, Session):  # the sealed value stops working everywhere, not just here
        await services(request).identities.end_session(session.ident(), ABSOLUTE_SECONDS)
    response = redirect(request, HOME, "You are signed out.", "info")
    clear_session_cookies(response, request)
    return response


logout = page(_logout)


routes: list[BaseRoute] = [
    Route("/ui/login", login, methods=["POST"]),
    Route("/ui/logout", logout, methods=["POST"]),
]
