"""``backend proxy [-p 8099]``: a local reverse proxy to the configured server.

Every request to ``http://localhost:<port>`` goes as is to the host ``region`` names (method, path,
query, headers, body; ``X-Forwarded-Host`` set to the original ``Host``), and the answer comes back
as is, streamed (SSE works). WebSocket connections are relayed both ways. Handy to try a front end
against a remote server without changing its configuration. A server that cannot be reached gives
``502`` with the reason.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

from sbserver.cli.client import error
from sbserver.cli.config import load
from sbserver.cli.server import port_problem

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("proxy", help="relay local requests to the configured server")
    p.add_argument("-p", "--port", type=int, default=8099, help="port for the proxy (default 8099)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.set_defaults(run=run)


def self_loop(target: str, host: str, port: int) -> bool:
    """Would the proxy forward to itself?"""
    parts = urlsplit(target)
    local = {"localhost", "127.0.0.1", "::1", "0.0.0.0", host}
    default = 443 if parts.scheme == "https" else 80
    return (parts.hostname or "") in local and (parts.port or default) == port


def build_app(target: str) -> Any:
    """A Starlette app relaying HTTP and WebSocket requests to ``target``."""
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response, StreamingResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    http = httpx.AsyncClient(base_url=target, timeout=httpx.Timeout(30.0, read=None))

    def unreachable(exc: Exception) -> Response:
        return PlainTextResponse(f"proxy: cannot reach {target}: {exc or type(exc).__name__}\n", status_code=502)

    async def relay(request: Request) -> Response:
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        headers.append(("X-Forwarded-Host", request.headers.get("host", "")))
        upstream = http.build_request(
            request.method,
            request.url.path,
            params=request.url.query,
            headers=headers,
            content=await request.body(),
        )
        try:
            answer = await http.send(upstream, stream=True)
        except httpx.HTTPError as exc:
            return unreachable(exc)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in answer.aiter_raw():
                    yield chunk
            except httpx.HTTPError:
                pass  # the server closed mid-answer: end ours too
            finally:
                await answer.aclose()

        kept = {k: v for k, v in answer.headers.multi_items() if k.lower() not in HOP_BY_HOP}
        return StreamingResponse(body(), status_code=answer.status_code, headers=kept)

    async def relay_socket(socket: WebSocket) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        url = "ws" + target[len("http") :] + socket.url.path + (f"?{socket.url.query}" if socket.url.query else "")
        forwarded = {"X-Forwarded-Host": socket.headers.get("host", "")}
        try:
            remote = await connect(url, additional_headers=forwarded, open_timeout=10)
        except Exception as exc:  # refused, TLS, a refused handshake: all end the same way
            await socket.close(code=1011, reason=f"proxy: cannot reach {target}: {exc}"[:120])
            return
        await socket.accept()

        async def inward() -> None:
            with contextlib.suppress(WebSocketDisconnect, ConnectionClosed):
                while True:
                    message = await socket.receive()
                    if message["type"] == "websocket.disconnect":
                        return
                    await remote.send(message.get("text") or message.get("bytes") or "")

        async def outward() -> None:
            with contextlib.suppress(ConnectionClosed, RuntimeError):
                async for data in remote:
                    if isinstance(data, str):
                        await socket.send_text(data)
                    else:
                        await socket.send_bytes(data)

        tasks = [asyncio.create_task(inward()), asyncio.create_task(outward())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        await remote.close()
        with contextlib.suppress(RuntimeError):
            await socket.close()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await http.aclose()

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    return Starlette(
        routes=[Route("/{path:path}", relay, methods=methods), WebSocketRoute("/{path:path}", relay_socket)],
        lifespan=lifespan,
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    try:
        cfg = load(args.config)
    except Exception as exc:  # an unreadable config file
        error(f"cannot read the config file: {' '.join(str(exc).split())}")
        return 1
    if not cfg.region:
        error("missing a region: run `backend login` (or set REGION=<url>) to name the server to proxy to")
        return 1
    target = cfg.host
    if self_loop(target, args.host, args.port):
        error(f"the proxy on port {args.port} would forward to itself ({target}): choose another port with -p")
        return 1
    busy = port_problem(args.host, args.port)
    if busy:
        error(f"the proxy cannot start: {busy}")
        return 1
    print(f"Proxy server started at: http://localhost:{args.port}", flush=True)
    print(f"forwarding every request to {target}; press CTRL+C to stop", flush=True)
    config = uvicorn.Config(
        build_app(target), host=args.host, port=args.port, log_level="warning", access_log=False, ws="auto"
    )

    class Proxy(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # stop on Ctrl-C or SIGTERM and exit 0 (uvicorn would re-raise the signal once stopped)
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self.handle_exit)
            yield

    with contextlib.suppress(KeyboardInterrupt):
        Proxy(config).run()
    return 0
