"""The one pure ASGI middleware (``Edge``): request ids, timing (metrics and the activity
line), CORS, and the request-body size limit.

CORS in dev mode is StaticBackend's: any ``Origin`` is reflected. In prod mode a browser origin is
answered only when an app accepts it (``TenancyService.accepts_origin``): a preflight carries no
public key value, so it passes when the origin is on the server-wide list or on at least one app's
list (or on the list of the app its ``sbpk`` query names); the real request then gets
``Access-Control-Allow-Origin`` only when the app of its ``SB-PUBLIC-KEY`` (or ``sbpk``, or ``pk``
cookie) accepts the origin, or, without a key, when the server-wide list does.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from http.cookies import SimpleCookie
from typing import NamedTuple
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sbserver.errors import PayloadTooLarge, SBError
from sbserver.http.metrics import template_of
from sbserver.http.request import REQUEST_ID
from sbserver.logs import Activity
from sbserver.services.metrics import Metrics
from sbserver.services.tenancy import TenancyService

_VARY = [
    (b"vary", b"Origin"),
    (b"vary", b"Access-Control-Request-Method"),
    (b"vary", b"Access-Control-Request-Headers"),
]
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


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


class _Heads(NamedTuple):
    """The request headers the edge reads: the first ``X-Request-Id`` and ``Content-Length``,
    the last of the others (b"" when absent)."""

    request_id: bytes
    origin: bytes
    request_method: bytes
    request_headers: bytes
    cookie: bytes
    content_length: bytes


def _heads(scope: Scope) -> _Heads:
    rid: bytes | None = None
    origin = method = headers = cookie = length = b""
    for k, v in scope["headers"]:
        if k == b"x-request-id":
            rid = v if rid is None else rid
        elif k == b"origin":
            origin = v
        elif k == b"access-control-request-method":
            method = v
        elif k == b"access-control-request-headers":
            headers = v
        elif k == b"cookie":
            cookie = v
        elif k == b"content-length":
            length = length or v
    return _Heads(rid or b"", origin, method, headers, cookie, length)


class CorsPolicy:
    """Which origins a request may be answered to.

    ``dev``: any origin (upstream's behaviour). Otherwise ``tenancy`` decides; a preflight for an
    origin no list holds gets 403 with the reason, a real request simply no
    ``Access-Control-Allow-Origin`` (the browser then keeps the answer from the page).
    """

    def __init__(self, tenancy: TenancyService | None = None, dev: bool = True) -> None:
        self.tenancy = tenancy
        self.dev = dev or tenancy is None

    async def accepts(self, scope: Scope, origin: str, cookie: bytes, preflight: bool) -> bool:
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


class Edge:
    """Every request's way in and out, in one layer (one wrapper of ``send``, where a layer per
    concern would add one per concern to every response):

    * its id: a sane incoming ``X-Request-Id`` (1-64 of ``A-Za-z0-9._:-``) or a new one, kept in
      the scope for the logs and sent back as ``X-Request-Id``;
    * its timing: counted in ``metrics`` (by route template; None: metrics are off) and written
      as its activity line. WebSocket sessions get a line when they end (status 101 once
      accepted, else 403), no count: the connection gauges cover them;
    * CORS (``cors``): headers for accepted origins, a preflight (OPTIONS with Origin) answered
      at once;
    * the body limit: bodies over ``limit`` bytes refused with 413, by Content-Length or while
      streaming; paths in ``exempt`` (uploads) enforce a limit of their own.
    """

    def __init__(
        self,
        app: ASGIApp,
        cors: CorsPolicy,
        activity: Activity,
        metrics: Metrics | None = None,
        limit: int = 0,
        exempt: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.cors = cors
        self.activity = activity
        self.metrics = metrics
        self.limit = limit
        self.exempt = exempt
        # new ids: this process's random prefix and a counter (unique, and no system call each)
        self._prefix = secrets.token_hex(4)
        self._serial = itertools.count(1)

    def _new_id(self) -> str:
        return f"{self._prefix}{next(self._serial) & 0xFFFFFFFF:08x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        heads = _heads(scope)
        given = heads.request_id.decode("latin-1").strip()
        rid = given if _SANE_ID.fullmatch(given) else self._new_id()
        scope[REQUEST_ID] = rid
        sent = [0]  # the status sent (0: none, the app failed)
        try:
            if kind == "http":
                await self._http(scope, receive, send, sent, rid, heads)
            else:
                await self._websocket(scope, receive, send, sent)
        finally:
            self._observe(scope, kind, sent[0], time.perf_counter() - began)

    def _observe(self, scope: Scope, kind: str, status: int, seconds: float) -> None:
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

    async def _http(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        sent: list[int],
        rid: str,
        heads: _Heads,
    ) -> None:
        cors = list(_VARY)
        id_header = (b"x-request-id", rid.encode())

        async def send_edge(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent[0] = message["status"]
                headers = [*message.get("headers", []), *cors]
                if not any(k.lower() == b"x-request-id" for k, _ in headers):
                    headers.append(id_header)
                message["headers"] = headers
            await send(message)

        preflight = scope["method"] == "OPTIONS"
        if heads.origin:
            origin = heads.origin
            text = origin.decode("latin-1")
            if await self.cors.accepts(scope, text, heads.cookie, preflight):
                cors += [
                    (b"access-control-allow-origin", origin),
                    (b"access-control-allow-methods", heads.request_method.upper()),
                    (b"access-control-allow-headers", heads.request_headers),
                ]
                if preflight:
                    await _answer(send_edge, 200, b"")
                    return
            elif preflight:
                reason = (
                    f"origin {text[:200]!r} is not allowed: add it to the app's list "
                    "(POST /account/origins) or to SB_CORS_ORIGINS\n"
                )
                await _answer(send_edge, 403, reason.encode("utf-8", "replace"))
                return
        limit = self.limit
        if limit <= 0 or scope["path"] in self.exempt:
            await self.app(scope, receive, send_edge)
            return
        try:
            declared = int(heads.content_length) if heads.content_length else 0
        except ValueError:
            declared = 0
        if declared > limit:
            await _too_large(send_edge, limit)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(f"request body too large: the limit is {limit} bytes")
            return message

        await self.app(scope, limited_receive, send_edge)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, sent: list[int]) -> None:
        async def send_status(message: Message) -> None:
            if not sent[0]:
                t = message["type"]
                if t == "websocket.accept":
                    sent[0] = 101
                elif t == "websocket.close":  # before accepting: the handshake is refused
                    sent[0] = 403
                elif t == "websocket.http.response.start":
                    sent[0] = message["status"]
            await send(message)

        await self.app(scope, receive, send_status)


async def _answer(send: Send, status: int, body: bytes) -> None:
    """A preflight's answer (the CORS headers are the sender's to add)."""
    more = [(b"content-type", b"text/plain; charset=utf-8"), (b"x-content-type-options", b"nosniff")] if body else []
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*more, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


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
