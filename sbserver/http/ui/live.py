"""The live pages of the admin UI: the app's channels with presence counts, and one channel live.

``/ui/live`` lists the channels that have members now (all processes: the bus counts them) and
refreshes itself by htmx polling; it is a plain page without JavaScript. ``/ui/live/<channel>``
(or ``/ui/live?channel=``) shows one channel: ``static/js/live.js`` reads
``/ui/live/stream?channel=``, a Server-Sent Events stream of that channel for the signed-in admin,
and adds each message as a row (as text, never as HTML).

The page cannot hold the root token (the session cookie is HttpOnly and sealed), so the stream is
the UI's own: authenticated by the session cookie, it joins the channel through the broker as the
app's root would (same topic, so it works across processes on Redis, and counts in presence).
It ends when the browser leaves, or within ``CHECK_SECONDS`` of the session ending (sign-out,
password change, the 48-hour limit), with a last ``error`` envelope saying why. While the page
is open its presence polling keeps the session's idle clock fresh, as any other page would.

``POST /ui/live/send`` publishes a message to a channel as the app's root, like ``/publish``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from sbserver.errors import BadRequest, SBError, Unauthorized, client_message, is_internal
from sbserver.http.realtime import EventStream
from sbserver.http.request import request_id, services
from sbserver.http.responses import error as error_line
from sbserver.http.ui.session import (
    ABSOLUTE_SECONDS,
    SESSION_COOKIE,
    Admin,
    SignedOut,
    admin_of,
    check_csrf,
    form_text,
    not_activity,
    open_session,
    page,
    redirect,
)
from sbserver.http.ui.session import render as render_page
from sbserver.services.realtime import Broker, Connection, error
from sbserver.services.tokens import root_token

CHECK_SECONDS = 3.0  # how soon an open stream notices that its session ended
MAX_CHANNEL = 200
MAX_DATA = 64_000
LIST_LIMIT = 500
RESERVED = ("stream", "send")  # /ui/live/<these> are routes: such channels open as ?channel=
Ended = Callable[[], Awaitable[str]]


def broker(request: Request) -> Broker:
    b: Broker = services(request).broker
    return b


def channel_url(channel: str) -> str:
    """The page of one channel."""
    if channel in RESERVED:
        return "/ui/live?" + urlencode({"channel": channel})
    return "/ui/live/" + quote(channel, safe="")


def _channel(raw: str) -> str:
    channel = raw.strip()
    if not channel:
        raise BadRequest("no channel was specified: type a channel name such as lobby or db-<collection>")
    if len(channel) > MAX_CHANNEL:
        raise BadRequest(f"channel name too long: at most {MAX_CHANNEL} characters")
    return channel


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    return render_page(request, name, {"active": "live", **context}, status)


async def _db_channels(request: Request, admin: Admin) -> list[str]:
    """``db-<collection>`` for the app's collections: suggestions for the channel field."""
    try:
        names = await services(request).documents.collections(admin.base)
    except SBError:
        return []
    return sorted(f"db-{name}" for name in names if "sb_" not in name)


@page
async def list_channels(request: Request) -> Response:
    """``GET /ui/live``: the channels with members and their counts; ``?channel=`` opens one."""
    admin = await admin_of(request)
    _polled(request)
    if request.query_params.get("channel", "").strip():
        return await _channel_page(request, admin, _channel(request.query_params["channel"]))
    found = await broker(request).channels(admin.base, LIST_LIMIT)
    rows = [
        {"name": name, "count": count, "url": channel_url(name)}
        for name, count in sorted(found.items(), key=lambda item: (-item[1], item[0]))
    ]
    context = {"rows": rows, "suggestions": await _db_channels(request, admin), "limit": LIST_LIMIT}
    return render(request, "ui/live_list.html", context)


@page
async def view_channel(request: Request) -> Response:
    """``GET /ui/live/<channel>``: one channel, live."""
    admin = await admin_of(request)
    _polled(request)
    return await _channel_page(request, admin, _channel(request.path_params["channel"]))


def _polled(request: Request) -> None:
    """The pages' own htmx refreshes are not the admin's activity: an open page still goes idle."""
    if request.headers.get("hx-request") == "true":
        not_activity(request)


async def _channel_page(request: Request, admin: Admin, channel: str) -> Response:
    context = {
        "channel": channel,
        "url": channel_url(channel),
        "presence": await broker(request).presence(admin.base, channel),
        "stream_url": "/ui/live/stream?" + urlencode({"channel": channel}),
        "is_db": channel.lower().startswith("db-"),
        "suggestions": await _db_channels(request, admin),
        "sent": "",
        "send_error": "",
    }
    return render(request, "ui/live_channel.html", context)


# --- the stream --------------------------------------------------------------------------------


class LiveStream(EventStream):
    """The UI's SSE stream of one channel: ends, with a last ``error`` envelope, once ``ended``
    gives a reason (checked every ``CHECK_SECONDS``)."""

    def __init__(self, broker: Broker, conn: Connection, keepalive: float, ended: Ended) -> None:
        super().__init__(broker, conn, keepalive)
        self.ended = ended

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        guard = asyncio.ensure_future(self._guard())
        try:
            await super().__call__(scope, receive, send)
        finally:
            guard.cancel()

    async def _guard(self) -> None:
        while not self.conn.closed:
            await asyncio.sleep(CHECK_SECONDS)
            reason = await self.ended()
            if reason:
                self.conn.end(error(reason))
                return


def _session_end(request: Request, admin: Admin) -> Ended:
    """Why the session behind this request has ended since ('' while it lasts)."""
    svc = services(request)
    session = open_session(svc.settings.app_secret, request.cookies.get(SESSION_COOKIE, ""))
    assert session is not None  # admin_of has just opened it

    async def ended() -> str:
        if time.time() - session.issued > ABSOLUTE_SECONDS:
            return "your admin session has expired: sign in again"
        try:
            if await svc.identities.session_ended(session.ident()):
                return "you signed out of the admin pages: sign in again"
            await svc.identities.root(admin.base, root_token(session.user_id, session.account_id, session.user_token))
        except (BadRequest, Unauthorized):
            return "your admin session has ended (the password changed or the user was removed): sign in again"
        except SBError:
            return ""  # the store is unreachable: keep streaming, ask again later
        return ""

    return ended


async def stream(request: Request) -> Response:
    """``GET /ui/live/stream?channel=``: the channel's messages and database events as SSE.

    401 (plain text) without a live session: an ``EventSource`` gives up instead of following a
    redirect to the sign-in page."""
    try:
        admin = await admin_of(request)
        channel = _channel(request.query_params.get("channel", ""))
        b = broker(request)
        conn = await b.watch(admin.base, admin.identity, channel)
    except SignedOut:
        return error_line("not signed in to the admin pages: sign in at /", 401)
    except SBError as exc:
        return error_line(client_message(exc, request_id(request)), exc.status, request_id(request))
    keepalive = services(request).settings.sse_keepalive_seconds
    return LiveStream(b, conn, keepalive, _session_end(request, admin))


# --- sending -----------------------------------------------------------------------------------


@page
async def send(request: Request) -> Response:
    """``POST /ui/live/send`` (``csrf``, ``channel``, ``type``, ``data``): publish as the app's
    root, like ``/publish``. 303 back to the channel; from htmx, a one-line status fragment."""
    admin = await admin_of(request)
    form = await request.form()
    check_csrf(admin, form)
    htmx = request.headers.get("hx-request") == "true"
    kind = form_text(form, "type", 200).strip()
    data = form_text(form, "data", MAX_DATA + 1)
    try:
        channel = _channel(form_text(form, "channel", MAX_CHANNEL + 1))
        if not kind:
            raise BadRequest("no message type: type one, such as chan_in or test")
        if len(data) > MAX_DATA:
            raise BadRequest(f"message too large: at most {MAX_DATA} characters")
        try:
            await broker(request).publish(admin.base, channel, kind, data, "user-msg", admin.identity)
        except SBError as exc:
            if not is_internal(exc):
                exc.message = f"unable to publish: {exc.message}"  # keeps its status (a limit is a 429)
            raise
    except SBError as exc:
        if not htmx:
            raise
        return render(request, "ui/live_sent.html", {"ok": False, "text": client_message(exc)}, exc.status)
    text = f"Sent a {kind} message to {channel}."
    if htmx:
        return render(request, "ui/live_sent.html", {"ok": True, "text": text})
    return redirect(request, channel_url(channel), text)


routes = [
    Route("/ui/live", list_channels, methods=["GET"]),
    Route("/ui/live/stream", stream, methods=["GET"]),
    Route("/ui/live/send", send, methods=["POST"]),
    Route("/ui/live/{channel:path}", view_channel, methods=["GET"]),
]
