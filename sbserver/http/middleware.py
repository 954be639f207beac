"""Pure ASGI middleware: request ids, CORS, and the request-body size limit.

CORS in dev mode is StaticBackend's: any ``Origin`` is reflected. In prod mode a browser origin is
answered only when an app accepts it (``TenancyService.accepts_origin``): a preflight carries no
public key value, so it passes when the origin is on the server-wide list or on at least one app's
list (or on the list of the app its ``sbpk`` query names); the real request then gets
``Access-Control-Allow-Origin`` only when the app of its ``SB-PUBLIC-KEY`` (or ``sbpk``, or ``pk``
cookie) accepts the origin, or, without a key, when the server-wide list does.
"""

from __future__ import annotations

import re
import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sbserver.errors import PayloadTooLarge, SBError
from sbserver.http.request import REQUEST_ID
from sbserver.services.tenancy import TenancyService

_VARY = [
    (b"vary", b"Origin"),
    (b"vary", b"Access-Control-Request-Method"),
    (b"vary", b"Access-Control-Request-Headers"),
]
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class RequestId:
    """Give every request an id: a sane incoming ``X-Request-Id`` (1-64 of ``A-Za-z0-9._:-``) or a
    new one; it is kept in the scope for the logs and sent back as ``X-Request-Id``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = ""
        for k, v in scope["headers"]:
            if k == b"x-request-id":
                text = v.decode("latin-1").strip()
                rid = text if _SANE_ID.fullmatch(text) else ""
                break
        rid = rid or secrets.token_hex(8)
        scope[REQUEST_ID] = rid
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"x-request-id" for k, _ in headers):
                    headers.append(header)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


def _public_key(scope: Scope, cookie: bytes) -> str:
    """The public key a request names, as ``http.request.public_key`` reads it."""
    for k, v in scope["headers"]:
        if k == b"sb-public-key" and v:
            return v.decode("latin-1")
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("sbpk"):
        return query["sbpk"][0]
    if cookie:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie.decode("latin-1"))
        except Exception:  # a malformed Cookie header names no key
            return ""
        if "pk" in jar:
            return jar["pk"].value
    return ""


class CORS:
    """Add CORS headers for accepted origins; answer a preflight (OPTIONS with Origin) at once.

    ``dev``: reflect any origin (upstream's behaviour). Otherwise ``tenancy`` decides; a preflight
    for an origin no list holds gets 403 with the reason, a real request simply no
    ``Access-Control-Allow-Origin`` (the browser then keeps the answer from the page).
    """

    def __init__(self, app: ASGIApp, tenancy: TenancyService | None = None, dev: bool = True) -> None:
        self.app = app
        self.tenancy = tenancy
        self.dev = dev or tenancy is None

    async def _accepted(self, scope: Scope, origin: str, cookie: bytes, preflight: bool) -> bool:
        if self.dev:
            return True
        assert self.tenancy is not None
        pk = _public_key(scope, cookie)
        if pk:
            try:
                base = await self.tenancy.base(pk)
            except SBError:  # unknown or inactive app, or the store is down: the route will say so
                base = None
            if base is not None:
                return self.tenancy.accepts_origin(base, origin)
        if preflight:
            return await self.tenancy.any_app_accepts(origin)
        return self.tenancy.server_accepts(origin)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = b""
        req_method = b""
        req_headers = b""
        cookie = b""
        for k, v in scope["headers"]:
            if k == b"origin":
                origin = v
            elif k == b"access-control-request-method":
                req_method = v
            elif k == b"access-control-request-headers":
                req_headers = v
            elif k == b"cookie":
                cookie = v
        extra = list(_VARY)
        preflight = scope["method"] == "OPTIONS"
        if origin:
            text = origin.decode("latin-1")
            if await self._accepted(scope, text, cookie, preflight):
                extra += [
                    (b"access-control-allow-origin", origin),
                    (b"access-control-allow-methods", req_method.upper()),
                    (b"access-control-allow-headers", req_headers),
                ]
                if preflight:
                    await _answer(send, 200, b"", extra)
                    return
            elif preflight:
                reason = (
                    f"origin {text[:200]!r} is not allowed: add it to the app's list "
                    "(POST /account/origins) or to SB_CORS_ORIGINS\n"
                )
                await _answer(send, 403, reason.encode("utf-8", "replace"), extra)
                return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_cors)


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    more = [(b"content-type", b"text/plain; charset=utf-8"), (b"x-content-type-options", b"nosniff")] if body else []
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, *more, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413, by Content-Length or while streaming.
    Paths in ``exempt`` (uploads) enforce a limit of their own."""

    def __init__(self, app: ASGIApp, limit: int, exempt: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.limit <= 0 or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        limit = self.limit
        for k, v in scope["headers"]:
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await _too_large(send, limit)
                    return
                break
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(f"request body too large: the limit is {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)


async def _too_large(send: Send, limit: int) -> None:
    body = f"request body too large: the limit is {limit} bytes\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"x-content-type-options", b"nosniff"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
