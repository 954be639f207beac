"""Realtime clients: SSE over httpx streaming, WebSocket with ``websockets``.

Both keep what they receive in an :class:`Inbox`: ``expect(type, **fields)`` returns the first
envelope of that type and fields (earlier non-matching ones stay pending for later calls). Every
envelope a test reads is checked for the seven keys of the wire format.

A check that something does NOT arrive never waits a fixed time: ``nothing_before(marker, ...)``
has the server send a marker on the path the unwanted envelope would have taken, after it, and
asserts that nothing but the allowed types came first. The server orders each path:

- replies to one connection's commands: in the order it handled them (a WebSocket's frames one
  after the other; a ``POST /sse/msg`` is handled before it is answered), so an ``echo`` sent
  after the command in question answers after anything that command pushed
  (``nothing_before_echo``);
- messages published on channels by one process: in publish order, on the in-process bus and on
  Redis (one publisher connection per process; a subscriber connection receives in that order),
  so a ``chan_in`` posted after the command in question (``nothing_before_chan_in``), or a
  later ``/publish``, arrives after anything that command published;
- database events of one collection: on its ``db-<col>`` channel in write order, so a later
  write the subscriber may read arrives after the event that must not.

The delayed ``joined`` broadcast of an SSE ``join`` is published JOINED_DELAY after the join:
only another ``join`` made later orders after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

if TYPE_CHECKING:
    from tests.realtime.support import User

KEYS = {"sid", "type", "data", "channel", "token", "auth", "base"}
AUTH_KEYS = {"accountId", "userId", "email", "role"}
TIMEOUT = 5.0


# --- clients ------------------------------------------------------------------------------


def check_envelope(env: Any) -> dict[str, Any]:
    """A server->client envelope has exactly the seven keys, ``auth`` its four, strings elsewhere."""
    assert isinstance(env, dict), f"not a JSON object: {env!r}"
    assert set(env) == KEYS, f"envelope keys {sorted(env)} != {sorted(KEYS)}: {env}"
    assert isinstance(env["auth"], dict) and set(env["auth"]) == AUTH_KEYS, f"bad auth object: {env}"
    for key in KEYS - {"auth"}:
        assert isinstance(env[key], str), f"{key} is not a string: {env}"
    return env


def assert_error(env: dict[str, Any], text: str | None = None, startswith: str = "") -> None:
    """An ``error`` envelope: the reason in ``data``, every other field empty (spec 04 §8)."""
    assert env["type"] == "error", env
    assert env["data"] and env["data"].startswith(startswith), env
    if text is not None:
        assert env["data"] == text, env
    assert env["sid"] == env["channel"] == env["token"] == env["base"] == "", env


def matches(env: dict[str, Any], type: str | None, fields: Mapping[str, Any]) -> bool:
    return (type is None or env.get("type") == type) and all(env.get(k) == v for k, v in fields.items())


class Inbox:
    """What a connection received, in order (``log``), with pending envelopes for ``expect``."""

    def __init__(self) -> None:
        self.log: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.closed = asyncio.Event()
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.name = "client"

    def _put(self, env: Any) -> None:
        if isinstance(env, dict):
            self.log.append(env)
        self._queue.put_nowait(env)

    async def _take(self, timeout: float) -> dict[str, Any] | None:
        try:
            env = await asyncio.wait_for(self._queue.get(), max(timeout, 0.001))
        except TimeoutError:
            return None
        return check_envelope(env)

    async def next(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        if self.pending:
            return self.pending.pop(0)
        env = await self._take(timeout)
        assert env is not None, f"{self.name}: nothing received within {timeout}s"
        return env

    async def expect(self, type: str | None = None, timeout: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """The first envelope (pending or new) of ``type`` with ``fields``; others stay pending."""
        for i, old in enumerate(self.pending):
            if matches(old, type, fields):
                return self.pending.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            env = await self._take(deadline - time.monotonic())
            if env is None:
                raise AssertionError(
                    f"{self.name}: no {type or 'envelope'} {dict(fields)} within {timeout}s; "
                    f"got instead: {self.pending[-8:]}; problems: {self.problems[-3:]}"
                )
            if matches(env, type, fields):
                return env
            self.pending.append(env)

    async def send(self, type: str, data: Any = "", channel: str = "", token: str | None = None) -> None:
        """Send one command on this connection (each transport has its own way)."""
        raise NotImplementedError

    async def nothing_before(
        self,
        marker: Awaitable[object] | None,
        type: str,
        where: Callable[[dict[str, Any]], bool] | None = None,
        ignore: tuple[str, ...] = ("joined",),
        timeout: float = TIMEOUT,
        **fields: Any,
    ) -> dict[str, Any]:
        """Nothing but ``ignore`` types arrives before the marker: the first envelope of ``type``
        with ``fields`` (and for which ``where`` holds). Returns the marker.

        ``marker`` (awaited once what is already pending was checked; None when something sent
        earlier is the marker) must make the server send the marker on the path the unwanted
        envelope would take, after it (see the module docstring). Envelopes of ``ignore`` types
        stay pending for later calls.
        """
        left = [e for e in self.pending if e["type"] not in ignore]
        assert not left, f"{self.name}: unexpected {left}"
        if marker is not None:
            await marker
        deadline = time.monotonic() + timeout
        while True:
            env = await self._take(deadline - time.monotonic())
            if env is None:
                raise AssertionError(
                    f"{self.name}: the marker {type} {dict(fields)} did not come within {timeout}s; "
                    f"pending: {self.pending[-8:]}; problems: {self.problems[-3:]}"
                )
            if matches(env, type, fields) and (where is None or where(env)):
                return env
            assert env["type"] in ignore, f"{self.name}: unexpected {env} before the marker {type} {dict(fields)}"
            self.pending.append(env)

    async def nothing_before_echo(self, ignore: tuple[str, ...] = ("joined",)) -> None:
        """Nothing but ``ignore`` types is pushed to this connection before the reply to an
        ``echo`` sent now: covers replies to every command this connection sent before."""
        data = f"mark-{uuid.uuid4().hex[:12]}"
        await self.nothing_before(self.send("echo", data), "echo", ignore=ignore, data=f"echo: {data}")

    async def nothing_before_chan_in(self, channel: str, data: str = "", ignore: tuple[str, ...] = ("joined",)) -> str:
        """Post ``data`` (a fresh mark by default) into ``channel`` (which this connection joined):
        its ``ok`` and then its ``chan_out`` are the next envelopes but ``ignore`` types. Covers
        replies to this connection's earlier commands and every earlier message this process
        published on ``channel``. Returns ``data``, for the other members' ``nothing_before``."""
        data = data or f"mark-{uuid.uuid4().hex[:12]}"
        await self.nothing_before(self.send("chan_in", data, channel=channel), "ok", ignore=ignore, data="")
        await self.nothing_before(None, "chan_out", ignore=ignore, data=data, channel=channel)
        return data

    def clear(self) -> None:
        """Forget everything received so far (pending and queued)."""
        self.pending.clear()
        while not self._queue.empty():
            self._queue.get_nowait()


class SSEClient(Inbox):
    """``GET /sse/connect`` read with httpx streaming; commands go through ``POST /sse/msg``."""

    def __init__(self, url: str, pk: str) -> None:
        super().__init__()
        self.url, self.pk = url, pk
        self.post_url = url
        self.sid = ""
        self.token = ""
        self.comments: list[bytes] = []
        self.response: httpx.Response | None = None
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None))
        self._stream: Any = None
        self._reader: asyncio.Task[None] | None = None
        self.name = "sse"

    async def open(self, **request: Any) -> SSEClient:
        """Connect (``request`` overrides how the public key is sent) and read ``init``."""
        if not request:
            request = {"params": {"sbpk": self.pk}}
        self._stream = self.http.stream("GET", self.url + "/sse/connect", **request)
        self.response = await self._stream.__aenter__()
        assert self.response.status_code == 200, f"/sse/connect answered {self.response.status_code}"
        self._reader = asyncio.ensure_future(self._read())
        init = await self.next()
        assert init["type"] == "init" and init["data"], f"first event is not init: {init}"
        self.sid = init["data"]
        self.name = f"sse {self.sid[-6:]}"
        return self

    async def _read(self) -> None:
        assert self.response is not None
        buf = b""
        try:
            async for chunk in self.response.aiter_raw():
                buf += chunk
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    if block.startswith(b":"):
                        self.comments.append(block)
                    elif block.startswith(b"data: ") and b"\n" not in block:
                        try:
                            self._put(json.loads(block[6:]))
                        except ValueError:
                            self.problems.append(f"not JSON: {block[:200]!r}")
                    else:
                        self.problems.append(f"bad SSE framing: {block[:200]!r}")
        except (httpx.HTTPError, asyncio.CancelledError):
            pass
        finally:
            self.closed.set()

    async def post(self, body: Any, via: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"SB-PUBLIC-KEY": self.pk, **kwargs.pop("headers", {})}
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        if isinstance(body, (bytes, str)):
            return await self.http.post((via or self.post_url) + "/sse/msg", content=body, headers=headers, **kwargs)
        return await self.http.post((via or self.post_url) + "/sse/msg", json=body, headers=headers, **kwargs)

    async def send(
        self,
        type: str,
        data: Any = "",
        channel: str = "",
        token: str | None = None,
        sid: str | None = None,
        via: str | None = None,
    ) -> None:
        body = {
            "sid": self.sid if sid is None else sid,
            "token": self.token if token is None else token,
            "type": type,
            "data": data,
            "channel": channel,
        }
        r = await self.post(body, via=via)
        assert r.status_code == 200, f"POST /sse/msg {body} answered {r.status_code}: {r.text}"
        assert r.headers["content-type"] == "application/json", r.headers
        assert r.text == "true", r.text

    async def auth(self, user: User) -> None:
        await self.send("auth", user.jwt, token=user.jwt)
        reply = await self.expect("token")
        assert reply["data"] == user.jwt, reply
        self.token = user.jwt

    async def join(self, channel: str) -> None:
        await self.send("join", channel)
        await self.expect("ok", data=channel)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        if self._stream is not None:
            with contextlib.suppress(Exception):
                await self._stream.__aexit__(None, None, None)
        await self.http.aclose()


class WSClient(Inbox):
    """``/ws`` with the ``websockets`` package; a reader task fills the inbox."""

    def __init__(self, ws_url: str) -> None:
        super().__init__()
        self.ws_url = ws_url
        self.sid = ""
        self.token = ""
        self.ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        self.name = "ws"

    async def open(self, query: str = "", read: bool = True, rcvbuf: int = 0, **kwargs: Any) -> WSClient:
        """Connect; ``read=False`` leaves every frame unread, ``rcvbuf`` shrinks the socket's receive buffer."""
        if rcvbuf:
            # A small fixed buffer (no autotuning up to tcp_rmem's max) makes a non-reading client
            # push back on the server after a few frames instead of tens of megabytes.
            host, port = self.ws_url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
            kwargs["sock"] = sock
        self.ws = await websockets.connect(self.ws_url + query, open_timeout=5, max_size=None, **kwargs)
        if read:
            self._reader = asyncio.ensure_future(self._read())
            init = await self.next()
            assert init["type"] == "init" and init["data"], f"first frame is not init: {init}"
            self.sid = init["data"]
            self.name = f"ws {self.sid[-6:]}"
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for frame in self.ws:
                try:
                    self._put(json.loads(frame))
                except ValueError:
                    self.problems.append(f"not JSON: {frame[:200]!r}")
        except (websockets.ConnectionClosed, asyncio.CancelledError):
            pass
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()

    async def send_raw(self, frame: str) -> None:
        assert self.ws is not None
        await self.ws.send(frame)

    async def send(self, type: str, data: Any = "", channel: str | None = None, token: str | None = None) -> None:
        cmd: dict[str, Any] = {"sid": self.sid, "token": self.token if token is None else token, "type": type}
        cmd["data"] = data
        if channel is not None:
            cmd["channel"] = channel
        await self.send_raw(json.dumps(cmd))

    async def auth(self, user: User) -> None:
        """``auth`` exactly as the WebSocket-era npm client sends it (``token: null``)."""
        await self.send_raw(json.dumps({"sid": self.sid, "token": None, "type": "auth", "data": user.jwt}))
        reply = await self.expect("token")
        assert reply["data"] == user.inner, f"WS auth must answer the inner token, got {reply}"
        self.token = reply["data"]

    async def join(self, channel: str) -> None:
        await self.send("join", channel)
        await self.expect("joined", data=channel)

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 1)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
