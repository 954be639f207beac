"""The realtime test kit: real server processes, SSE and WebSocket clients, apps and users.

SSE needs a real socket (an in-process ASGI transport buffers the stream), so every realtime test
talks to a ``python -m sbserver server`` process started by :func:`running_server`, which reuses
the compat suite's helpers (free port, clean environment, readiness probe, stop).

Both clients keep what they receive in an :class:`Inbox`: ``expect(type, **fields)`` returns the
first envelope of that type and fields (earlier non-matching ones stay pending for later calls),
``silent()`` asserts that nothing new arrives for a short while. Every envelope a test reads is
checked for the seven keys of the wire format.

:func:`kill_redis_clients` cuts a process's Redis connections the way an outage would
(``CLIENT KILL`` from another client), limited to that process so parallel workers are spared.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.compat.conftest import START_TIMEOUT, _free_port, _server_env, _stop, _wait_until_ready
from tests.compat.support import tail

KEYS = {"sid", "type", "data", "channel", "token", "auth", "base"}
AUTH_KEYS = {"accountId", "userId", "email", "role"}
TIMEOUT = 5.0
PASSWORD = "rt-pw-123456"


def unique(prefix: str = "ch") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def unique_email(prefix: str = "rt") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@realtime.example.com"


# --- server processes ---------------------------------------------------------------------


@dataclass
class Server:
    """A running server process: its URL, bus kind, pid and log."""

    url: str
    bus: str
    pid: int
    log_path: Path

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http") :] + "/ws"

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)


@contextlib.contextmanager
def running_server(workdir: Path, env: Mapping[str, str], bus: str = "memory") -> Iterator[Server]:
    """``backend server`` on a free port with the compat suite's environment plus ``env``."""
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "server.log"
    full_env = _server_env("sqlite", "")
    full_env.update(env)
    for attempt in range(3):
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "sbserver", "server", "--port", str(port), "--data-dir", str(data_dir)]
        with log_path.open("ab") as log:
            log.write(f"\n--- attempt {attempt + 1}: {' '.join(cmd)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                cmd, cwd=workdir, env=full_env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        why = _wait_until_ready(proc, url, time.monotonic() + START_TIMEOUT)
        if not why:
            break
        _stop(proc)
        if why == "exited" and "address already in use" in tail(log_path, 20).lower():
            continue
        pytest.fail(f"the realtime server did not start ({why}):\n{tail(log_path)}", pytrace=False)
    else:
        pytest.fail(f"no free port for the realtime server:\n{tail(log_path)}", pytrace=False)
    try:
        yield Server(url=url, bus=bus, pid=proc.pid, log_path=log_path)
    finally:
        _stop(proc)


# --- apps and users -----------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    email: str
    jwt: str
    user_id: str
    account_id: str

    @property
    def inner(self) -> str:
        """The ``<userId>|<userToken>`` inside the JWT (what WebSocket ``auth`` answers)."""
        claims = jwt_claims(self.jwt)
        return str(claims["token"])


@dataclass
class App:
    """An app (base) of a server: its public key, root token and some users made on demand."""

    pk: str
    root: str
    users: list[User] = field(default_factory=list)


def jwt_claims(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return claims


def forge_jwt(claims: Mapping[str, Any], secret: bytes = b"not-the-server-secret") -> str:
    """An HS256 JWT with the given claims, signed with a secret the server does not know."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(dict(claims)).encode())
    sig = b64(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


async def new_app(http: httpx.AsyncClient, url: str) -> App:
    r = await http.get(
        url + "/account/init",
        params={"email": unique_email("owner"), "ui": "1"},
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 200, f"/account/init answered {r.status_code}: {r.text}"
    body = r.json()
    return App(pk=body["pk"], root=body["rootToken"])


async def register(http: httpx.AsyncClient, url: str, pk: str, email: str | None = None) -> User:
    email = email or unique_email()
    r = await http.post(url + "/register", json={"email": email, "password": PASSWORD}, headers={"SB-PUBLIC-KEY": pk})
    assert r.status_code == 200, f"/register answered {r.status_code}: {r.text}"
    return await whoami(http, url, pk, email, r.json())


async def login(http: httpx.AsyncClient, url: str, pk: str, email: str, password: str = PASSWORD) -> User:
    r = await http.post(url + "/login", json={"email": email, "password": password}, headers={"SB-PUBLIC-KEY": pk})
    assert r.status_code == 200, f"/login answered {r.status_code}: {r.text}"
    return await whoami(http, url, pk, email, r.json())


async def whoami(http: httpx.AsyncClient, url: str, pk: str, email: str, jwt: str) -> User:
    r = await http.get(url + "/me", headers={"SB-PUBLIC-KEY": pk, "Authorization": f"Bearer {jwt}"})
    assert r.status_code == 200, f"/me answered {r.status_code}: {r.text}"
    me = r.json()
    return User(email=email, jwt=jwt, user_id=me["userId"], account_id=me["accountId"])


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

    async def silent(self, timeout: float = 0.6, ignore: tuple[str, ...] = ("joined",)) -> None:
        """Nothing but ``ignore`` types is pending or arrives within ``timeout``."""
        left = [e for e in self.pending if e["type"] not in ignore]
        assert not left, f"{self.name}: unexpected {left}"
        deadline = time.monotonic() + timeout
        while (env := await self._take(deadline - time.monotonic())) is not None:
            assert env["type"] in ignore, f"{self.name}: unexpected {env}"
            self.pending.append(env)

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


# --- a test's view of one server ----------------------------------------------------------


class Realtime:
    """One test on one server: an app, users on demand, and every client it opened (closed at the end)."""

    def __init__(self, server: Server, app: App) -> None:
        self.server = server
        self.app = app
        self.http = httpx.AsyncClient(timeout=15.0)
        self._clients: list[SSEClient | WSClient] = []

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pk(self) -> str:
        return self.app.pk

    async def user(self, index: int = 0) -> User:
        """The app's ``index``-th user (registered once per server session)."""
        while len(self.app.users) <= index:
            self.app.users.append(await register(self.http, self.url, self.pk))
        return self.app.users[index]

    async def new_user(self) -> User:
        return await register(self.http, self.url, self.pk)

    async def sse(
        self, user: User | None = None, join: tuple[str, ...] = (), pk: str | None = None, url: str | None = None
    ) -> SSEClient:
        client = SSEClient(url or self.url, pk or self.pk)
        self._clients.append(client)
        await client.open()
        if user is not None:
            await client.auth(user)
        for channel in join:
            await client.join(channel)
        return client

    async def ws(
        self, user: User | None = None, join: tuple[str, ...] = (), query: str = "", url: str | None = None
    ) -> WSClient:
        client = WSClient(url or self.server.ws_url)
        self._clients.append(client)
        await client.open(query)
        if user is not None:
            await client.auth(user)
        for channel in join:
            await client.join(channel)
        return client

    def track(self, client: SSEClient | WSClient) -> None:
        self._clients.append(client)

    def headers(self, token: str | None = None, pk: str | None = None) -> dict[str, str]:
        h = {"SB-PUBLIC-KEY": pk or self.pk}
        if token:
            h["Authorization"] = f"Bearer {token}"
        return h

    async def ping(self) -> None:
        r = await self.http.get(self.url + "/ping")
        assert r.status_code == 200 and r.text == "true", f"/ping answered {r.status_code}: {r.text}"

    async def presence(self, client: SSEClient | WSClient, channel: str, want: str, timeout: float = TIMEOUT) -> None:
        """Ask ``presence`` until the count is ``want`` (leaving is asynchronous)."""
        deadline = time.monotonic() + timeout
        while True:
            await client.send("presence", channel)
            reply = await client.expect("presence")
            if reply["data"] == want or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert reply["data"] == want, f"presence of {channel}: {reply}, want {want!r}"

    async def aclose(self) -> None:
        for client in self._clients:
            await client.close()
        await self.http.aclose()


# --- Redis outages ------------------------------------------------------------------------


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def local_ports_to(pid: int, remote_port: int) -> set[int]:
    """The local ports of ``pid``'s TCP connections to ``remote_port`` (Linux /proc)."""
    inodes = _socket_inodes(pid)
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                cols = line.split()
                local, remote, inode = cols[1], cols[2], cols[9]
                if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == remote_port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


async def kill_redis_clients(redis_url: str, pid: int, types: tuple[str, ...] = ("pubsub", "normal")) -> int:
    """``CLIENT KILL TYPE <type>`` restricted to ``pid``'s connections; returns how many were killed."""
    import redis.asyncio as aioredis

    admin = aioredis.from_url(redis_url)
    try:
        me = await admin.client_id()
        port = admin.connection_pool.connection_kwargs.get("port", 6379)
        ours = local_ports_to(pid, int(port))
        killed = 0
        for kind in types:
            for client in await admin.client_list(_type=kind):
                addr_port = int(str(client["addr"]).rsplit(":", 1)[1])
                if addr_port in ours and int(client["id"]) != me:
                    killed += await admin.client_kill_filter(_id=client["id"], skipme=True)
        return killed
    finally:
        await admin.aclose()
