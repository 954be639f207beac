"""The functions test kit: a root-token API wrapper, users, run-history polling, server processes.

:class:`FnApi` drives one app of one server (in-process over ASGI or a real process over TCP)
with its root token: ``add`` / ``update`` / ``info`` / ``exec`` / ``publish`` and, above all,
``runs(name, n)``, which polls ``/fn/info`` until the function has ``n`` recorded runs (history is
written after the response, and triggered runs happen in the background); ``settled(name, n)``
also waits a little longer to see that no further run comes.

Functions report what they saw through ``log(JSON.stringify(...))``; :func:`logged` reads those
lines back from a run's output.

:func:`server_process` starts ``python -m sbserver server`` on a given (or free) port and gives
its pid, so the exactly-once tests can ``kill -9`` it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.conftest import START_TIMEOUT, _free_port, _server_env, _stop, _wait_until_ready
from tests.compat.support import tail

PASSWORD = "fn-pw-123456"
JSON_TYPE = "application/json"
ZERO_TIME = "0001-01-01T00:00:00Z"
RFC3339 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"

# The founding tutorial's fn.js, verbatim (serverside-functions-tasks-example/server-side/fn.js).
# The founding tutorial's function, as the README shows it.
TUTORIAL_FN = (Path(__file__).resolve().parents[2] / "examples" / "chat" / "fn.js").read_text()

# Logs its three arguments as one JSON line.
ECHO_ARGS = "function handle(a, b, c) { log(JSON.stringify({n: arguments.length, a: a, b: b, c: c})); }"


def unique(prefix: str = "x") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def unique_email(prefix: str = "fn") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@functions.example.com"


def logged(run: Mapping[str, Any]) -> list[Any]:
    """The JSON values a run logged (lines that are not JSON are skipped)."""
    out = []
    for line in run["output"]:
        if line[:1] in '{["' or line in ("true", "false", "null") or line[:1].isdigit():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


@dataclass
class User:
    email: str
    jwt: str
    user_id: str
    account_id: str


class FnApi:
    """One app of one server, driven with its root token."""

    def __init__(self, http: httpx.AsyncClient, pk: str, root: str, url: str = "") -> None:
        self.http = http
        self.pk = pk
        self.root = root
        self.url = url  # '' when ``http`` already has a base URL

    def headers(self, token: str | None = None) -> dict[str, str]:
        h = {"SB-PUBLIC-KEY": self.pk}
        if token:
            h["Authorization"] = f"Bearer {token}"
        return h

    async def request(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {**self.headers(token), **kw.pop("headers", {})}
        return await self.http.request(method, self.url + path, headers=headers, **kw)

    # management
    async def add(self, name: str, trigger: str, code: str, **extra: Any) -> httpx.Response:
        return await self.request(
            "POST", "/fn/add", self.root, json={"name": name, "trigger": trigger, "code": code, **extra}
        )

    async def add_ok(self, name: str, trigger: str, code: str, **extra: Any) -> dict[str, Any]:
        r = await self.add(name, trigger, code, **extra)
        assert r.status_code == 200, f"/fn/add {name} answered {r.status_code}: {r.text}"
        return await self.info(name)

    async def update(self, body: dict[str, Any]) -> httpx.Response:
        return await self.request("POST", "/fn/update", self.root, json=body)

    async def info_response(self, name: str) -> httpx.Response:
        return await self.request("GET", f"/fn/info/{name}", self.root)

    async def info(self, name: str) -> dict[str, Any]:
        r = await self.info_response(name)
        assert r.status_code == 200, f"/fn/info/{name} answered {r.status_code}: {r.text}"
        assert r.headers["content-type"] == JSON_TYPE, r.headers
        body: dict[str, Any] = r.json()
        return body

    async def functions(self) -> list[dict[str, Any]]:
        r = await self.request("GET", "/fn", self.root)
        assert r.status_code == 200, f"/fn answered {r.status_code}: {r.text}"
        assert r.headers["content-type"] == JSON_TYPE, r.headers
        body: list[dict[str, Any]] = r.json()
        return body

    # running
    async def exec(self, name: str, token: str, body: Any = None, **kw: Any) -> httpx.Response:
        if body is not None:
            kw["json"] = body
        return await self.request("POST", f"/fn/exec/{name}", token, **kw)

    async def exec_ok(self, name: str, token: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        """Run via /fn/exec, expect 200 with an empty body, return the recorded run."""
        before = len((await self.info(name))["history"])
        r = await self.exec(name, token, body, **kw)
        assert r.status_code == 200, f"/fn/exec/{name} answered {r.status_code}: {r.text}"
        assert r.content == b"", r.content
        return (await self.runs(name, before + 1))[-1]

    async def sudo_exec(self, name: str, body: Any = None) -> httpx.Response:
        return await self.request("POST", f"/fn/sudoexec/{name}", self.root, json=body)

    async def runs(self, name: str, n: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The history once it holds at least ``n`` runs (fails after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            history: list[dict[str, Any]] = (await self.info(name))["history"]
            if len(history) >= n:
                return history
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: {len(history)} run(s) after {timeout}s, want {n}: {history[-3:]}")
            await asyncio.sleep(0.05)

    async def settled(self, name: str, n: int, extra: float = 0.3) -> list[dict[str, Any]]:
        """Exactly ``n`` runs: wait for them, then a little longer to see that no more come."""
        await self.runs(name, n)
        await asyncio.sleep(extra)
        history = (await self.info(name))["history"]
        assert len(history) == n, f"{name}: {len(history)} runs, want exactly {n}: {history}"
        return history

    # realtime and data
    async def publish(self, token: str, channel: str, type: str, data: Any = "x") -> None:
        r = await self.request("POST", "/publish", token, json={"channel": channel, "type": type, "data": data})
        assert r.status_code == 200 and r.text == "true", f"/publish answered {r.status_code}: {r.text}"

    async def create(self, token: str, col: str, doc: Any) -> Any:
        r = await self.request("POST", f"/db/{col}", token, json=doc)
        assert r.status_code == 201, f"POST /db/{col} answered {r.status_code}: {r.text}"
        return r.json()

    async def create_bulk(self, token: str, col: str, docs: list[Any]) -> None:
        r = await self.request("POST", f"/db/{col}", token, params={"bulk": "1"}, json=docs)
        assert r.status_code == 201 and r.text == "true", f"POST /db/{col}?bulk=1 answered {r.status_code}: {r.text}"

    async def register(self, email: str | None = None) -> User:
        email = email or unique_email()
        r = await self.request("POST", "/register", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, f"/register answered {r.status_code}: {r.text}"
        jwt = r.json()
        r = await self.request("GET", "/me", jwt)
        assert r.status_code == 200, f"/me answered {r.status_code}: {r.text}"
        me = r.json()
        return User(email, jwt, me["userId"], me["accountId"])

    async def new_app(self) -> FnApi:
        """Another app (tenant) on the same server, through ``/account/init``."""
        r = await self.http.get(
            self.url + "/account/init",
            params={"email": unique_email("owner"), "ui": "1"},
            headers={"Accept": JSON_TYPE},
        )
        assert r.status_code == 200, f"/account/init answered {r.status_code}: {r.text}"
        body = r.json()
        return FnApi(self.http, body["pk"], body["rootToken"], self.url)


# --- server processes -------------------------------------------------------------------------


@dataclass
class Process:
    url: str
    pid: int
    log_path: Path
    proc: subprocess.Popen[bytes]

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http") :] + "/ws"

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)


def port_is_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def server_process(workdir: Path, env: Mapping[str, str], port: int = 0) -> Iterator[Process]:
    """``python -m sbserver server`` with the compat suite's environment plus ``env``.

    ``port=0`` picks a free port (retrying if another process takes it first); a fixed port is
    tried once.
    """
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "server.log"
    full_env = _server_env("sqlite", "")
    full_env["SB_FETCH_ALLOW"] = "127.0.0.1"  # the tests' HTTP servers; ``env`` may close it again
    full_env.update(env)
    for attempt in range(1 if port else 3):
        p = port or _free_port()
        url = f"http://127.0.0.1:{p}"
        cmd = [sys.executable, "-m", "sbserver", "server", "--port", str(p), "--data-dir", str(data_dir)]
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
        if why == "exited" and "already in use" in tail(log_path, 20).lower() and not port:
            continue
        pytest.fail(f"the server did not start ({why}):\n{tail(log_path)}", pytrace=False)
    else:
        pytest.fail(f"no free port for the server:\n{tail(log_path)}", pytrace=False)
    try:
        yield Process(url=url, pid=proc.pid, log_path=log_path, proc=proc)
    finally:
        _stop(proc)


async def live_api(http: httpx.AsyncClient, url: str) -> FnApi:
    """A fresh app on a running server."""
    return await FnApi(http, "", "", url).new_app()
