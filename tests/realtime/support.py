"""The realtime test kit: real server processes, SSE and WebSocket clients, apps and users.

SSE needs a real socket (an in-process ASGI transport buffers the stream), so every realtime test
talks to a ``python -m sbserver server`` process started by :func:`running_server`, which reuses
the compat suite's helpers (free port, clean environment, readiness probe, stop).

:class:`Realtime` is a test's handle on one server: an app, users made on demand, and the
clients of ``clients.py`` it opened (closed when the test ends).

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

from tests.compat.conftest import START_TIMEOUT, _free_port, _server_env, _stop, _wait_until_ready
from tests.compat.support import tail
from tests.realtime.clients import TIMEOUT, SSEClient, WSClient

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
        if why == "exited" and "already in use" in tail(log_path, 20).lower():
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
