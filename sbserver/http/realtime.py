"""Realtime transports: ``GET /sse/connect`` + ``POST /sse/msg``, ``/ws``, and ``/publish``."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from sbserver.errors import BadRequest, Forbidden, PayloadTooLarge, SBError
from sbserver.http.request import base_of, bearer, fields, json_body, parse_json, services, user_or_root_of
from sbserver.http.responses import boolean
from sbserver.services.realtime import Broker, Connection, error, normalize
from sbserver.types import Base

DB_TYPES = ("db_created", "db_updated", "db_deleted")
GOING_AWAY = 1001  # WebSocket close code: the server is stopping


def broker(request: Request | WebSocket) -> Broker:
    b: Broker = request.app.state.services.broker
    return b


class EventStream(Response):
    """An SSE stream: ``data: <json>\\n\\n`` per envelope, flushed at once; keep-alive comments."""

    def __init__(self, broker: Broker, conn: Connection, keepalive: float) -> None:
        super().__init__(media_type="text/event-stream")
        self.broker, self.conn, self.keepalive = broker, conn, keepalive

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        conn = self.conn

        async def watch_disconnect() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    conn.close()
                    return

        watcher = asyncio.ensure_future(watch_disconnect())
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream"),
                        (b"cache-control", b"no-cache"),
                        (b"connection", b"keep-alive"),
                        (b"x-accel-buffering", b"no"),
                    ],
                }
            )
            while True:
                batch = await conn.next_batch(self.keepalive)
                if batch is None:
                    break
                chunk = b"".join(b"data: " + p + b"\n\n" for p in batch) if batch else b": ping\n\n"
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass
        finally:
            watcher.cancel()
            await self.broker.disconnect(conn)


async def sse_connect(request: Request) -> Response:
    base = await base_of(request)
    b = broker(request)
    try:
        conn = b.connect("sse", base)
    except SBError as exc:  # connection limit: say so on the stream, then close it
        return Response(
            b"data: " + error(exc.message) + b"\n\n",
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    return EventStream(b, conn, services(request).settings.sse_keepalive_seconds)


async def sse_msg(request: Request) -> Response:
    base = await base_of(request)
    limit = services(request).settings.realtime_max_message
    raw = await request.body()
    if len(raw) > limit + 1024:
        raise PayloadTooLarge(f"message too large: the limit is {limit} bytes")
    token = bearer(request) if request.headers.get("authorization") else ""
    await broker(request).from_http(base, parse_json(raw), token)
    return boolean(True)


async def ws_endpoint(ws: WebSocket) -> None:
    svc = ws.app.state.services
    b: Broker = svc.broker
    base: Base | None = None
    pk = ws.query_params.get("sbpk") or ws.headers.get("sb-public-key") or ""
    await ws.accept()
    if pk:
        try:
            base = await svc.tenancy.base(pk)
        except SBError as exc:
            await ws.send_text(error(exc.message).decode())
            await ws.close(code=1008)
            return
    try:
        conn = b.connect("ws", base)
    except SBError as exc:  # the connection limit (1013: try again later), or the server is stopping
        await ws.send_text(error(exc.message).decode())
        await ws.close(code=GOING_AWAY if b.closing else 1013)
        return
    limit = svc.settings.realtime_max_message

    async def write() -> None:
        while True:
            batch = await conn.next_batch(3600)
            if batch is None:
                break
            for payload in batch:
                await ws.send_text(payload.decode())
        if ws.client_state == WebSocketState.CONNECTED:  # ended by the server: stopping, or the client fell behind
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=GOING_AWAY if conn.going_away else 1008), 5.0)

    writer = asyncio.ensure_future(write())
    try:
        while True:
            text = await ws.receive_text()
            if len(text) > limit + 1024:
                conn.push(error(f"message too large: the limit is {limit} bytes"))
                continue
            try:
                cmd = normalize(parse_json(text.encode()))
            except SBError as exc:
                conn.push(error(exc.message))
                continue
            await b.from_socket(conn, cmd)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        await b.disconnect(conn)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer


async def publish(request: Request) -> Response:
    base, ident = await user_or_root_of(request)
    body: Any = await json_body(request)
    channel, kind = fields(body, "channel", "type")
    if not channel:
        raise BadRequest("no channel was specified")
    if not ident.is_root and (channel.lower().startswith("db-") or kind in DB_TYPES):
        raise Forbidden("you cannot write to database channel")
    data = body.get("data") if isinstance(body, dict) else None
    try:
        await broker(request).publish(base, channel, kind, data, "user-msg", ident)
    except SBError as exc:
        raise SBError(f"unable to publish: {exc.message}") from exc
    return boolean(True)


routes = [
    Route("/sse/connect", sse_connect, methods=["GET"]),
    Route("/sse/msg", sse_msg, methods=["POST"]),
    Route("/publish", publish, methods=["POST"]),
    Route("/publish-message", publish, methods=["POST"]),
    WebSocketRoute("/ws", ws_endpoint),
]
