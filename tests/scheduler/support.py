"""The scheduler test kit: a task API wrapper, a fake clock, a recording HTTP target, polling.

:class:`TaskApi` drives one app (base) of one server with its root token, in-process over ASGI
or a real process over TCP: tasks (``/task``), their runs (``/task/<id>/runs``) and the
functions tasks call (``/fn/add``, ``/fn/info``). :class:`FakeClock` is what the in-process
tests put in ``TaskService.clock``; they then call ``tick(t)`` themselves.

:class:`Target` is an HTTP server on 127.0.0.1 in a thread that records every request by path
and answers ``200`` with a JSON body naming the path and the request's number; ``?delay=<s>``
makes it answer that much later (a long-running http task).
"""

from __future__ import annotations

import asyncio
import calendar
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.realtime.clients import SSEClient
from tests.realtime.support import register

JSON_TYPE = "application/json"
ZERO_TIME = "0001-01-01T00:00:00Z"
TASK_KEYS = {"id", "name", "type", "value", "meta", "interval", "last", "base"}

# Logs its three arguments as one JSON line, plus whether ``data`` is exactly null.
ECHO_FN = "function handle(a, b, c) { log(JSON.stringify({args: [a, b, c], isNull: c === null})); }"
# Busy for ~1.5 s of wall time: a run that is still going when the next tick comes.
BUSY_FN = "function handle(a, b, c) { var s = Date.now(); while (Date.now() - s < 1500) {} log('done'); }"
# One document per run in ``ticks`` (the cluster test counts them).
TICK_FN = """function handle(a, b, c) {
  var res = create("ticks", {at: new Date().toISOString()});
  log(JSON.stringify({ok: res.ok}));
}"""


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def unique_email(prefix: str = "sched") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@scheduler.example.com"


def utc(text: str) -> float:
    """``2030-01-07T05:59:30`` (UTC) as Unix seconds."""
    return float(calendar.timegm(datetime.fromisoformat(text).replace(tzinfo=UTC).timetuple()))


def rfc3339(t: float) -> str:
    """What the server writes for ``next`` and a run's ``due``."""
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class FakeClock:
    """A clock the test moves by hand (Unix seconds)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now

    def set(self, t: float) -> float:
        self.now = t
        return t


class TaskApi:
    """One app of one server, driven with its root token."""

    def __init__(self, http: httpx.AsyncClient, pk: str, root: str, url: str = "") -> None:
        self.http = http
        self.pk = pk
        self.root = root
        self.url = url  # '' when ``http`` already has a base URL

    def on(self, http: httpx.AsyncClient, url: str = "") -> TaskApi:
        """The same app through another client (another in-process app or process)."""
        return TaskApi(http, self.pk, self.root, url)

    async def request(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"SB-PUBLIC-KEY": self.pk, **kw.pop("headers", {})}
        token = self.root if token is None else token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return await self.http.request(method, self.url + path, headers=headers, **kw)

    async def ok(self, method: str, path: str, **kw: Any) -> Any:
        r = await self.request(method, path, **kw)
        assert r.status_code == 200, f"{method} {path} answered {r.status_code}: {r.text}"
        assert r.headers["content-type"] == JSON_TYPE, r.headers
        return r.json()

    # tasks
    async def create_raw(self, body: Any) -> httpx.Response:
        if isinstance(body, (bytes, str)):
            return await self.request("POST", "/task", content=body, headers={"Content-Type": JSON_TYPE})
        return await self.request("POST", "/task", json=body)

    async def add_task(
        self, name: str, type: str, value: str, interval: str, meta: Any = "", **extra: Any
    ) -> dict[str, Any]:
        body = {"name": name, "type": type, "value": value, "interval": interval, "meta": meta, **extra}
        task: dict[str, Any] = await self.ok("POST", "/task", json=body)
        assert task["id"] and task["name"] == name, task
        return task

    async def task(self, task_id: str) -> dict[str, Any]:
        task: dict[str, Any] = await self.ok("GET", f"/task/{task_id}")
        return task

    async def tasks(self) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = await self.ok("GET", "/task")
        return tasks

    async def update_task(self, task_id: str, **changes: Any) -> dict[str, Any]:
        """``POST /task/<id>`` with the current task merged with ``changes`` (what the CLI sends)."""
        body = {**await self.task(task_id), **changes}
        task: dict[str, Any] = await self.ok("POST", f"/task/{task_id}", json=body)
        return task

    async def delete_task(self, task_id: str) -> None:
        assert await self.ok("DELETE", f"/task/{task_id}") is True

    async def runs(self, task_id: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = await self.ok("GET", f"/task/{task_id}/runs")
        return runs

    async def wait_runs(self, task_id: str, n: int, timeout: float = 10.0, outcome: str = "") -> list[dict[str, Any]]:
        """The task's runs once at least ``n`` (of ``outcome``, when given) are recorded."""
        deadline = time.monotonic() + timeout
        while True:
            runs = await self.runs(task_id)
            if len([r for r in runs if not outcome or r["outcome"] == outcome]) >= n:
                return runs
            if time.monotonic() > deadline:
                raise AssertionError(f"task {task_id}: {len(runs)} run(s) after {timeout}s, want {n}: {runs[-3:]}")
            await asyncio.sleep(0.1)

    async def cleanup(self) -> None:
        for task in await self.tasks():
            await self.request("DELETE", f"/task/{task['id']}")

    # functions
    async def add_fn(self, name: str, code: str, trigger: str = "web") -> None:
        r = await self.request("POST", "/fn/add", json={"name": name, "trigger": trigger, "code": code})
        assert r.status_code == 200, f"/fn/add {name} answered {r.status_code}: {r.text}"

    async def history(self, name: str) -> list[dict[str, Any]]:
        info: dict[str, Any] = await self.ok("GET", f"/fn/info/{name}")
        history: list[dict[str, Any]] = info["history"]
        return history

    async def wait_history(self, name: str, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            history = await self.history(name)
            if len(history) >= n:
                return history
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: {len(history)} run(s) after {timeout}s, want {n}: {history[-3:]}")
            await asyncio.sleep(0.1)

    # data
    async def count(self, col: str) -> int:
        page: dict[str, Any] = await self.ok("GET", f"/sudo/{col}", params={"size": "1000"})
        return int(page["total"])

    async def new_app(self) -> TaskApi:
        """Another app (tenant) on the same server, through ``/account/init``."""
        r = await self.http.get(
            self.url + "/account/init",
            params={"email": unique_email("owner"), "ui": "1"},
            headers={"Accept": JSON_TYPE},
        )
        assert r.status_code == 200, f"/account/init answered {r.status_code}: {r.text}"
        body = r.json()
        return TaskApi(self.http, body["pk"], body["rootToken"], self.url)


def logged(entry: dict[str, Any]) -> list[Any]:
    """The JSON values a run (function history entry or task run) logged."""
    out = []
    for line in entry["output"]:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def echo_args(entry: dict[str, Any]) -> dict[str, Any]:
    """What ECHO_FN saw in one run."""
    values = [v for v in logged(entry) if isinstance(v, dict) and "args" in v]
    assert len(values) == 1, f"no ECHO_FN line in {entry}"
    seen: dict[str, Any] = values[0]
    return seen


class Target:
    """An HTTP server on 127.0.0.1 recording requests by path (see the module docstring)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size).decode() if size else ""
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                with recorder.lock:
                    n = len([r for r in recorder.requests if r["path"] == parts.path]) + 1
                    recorder.requests.append(
                        {
                            "method": self.command,
                            "path": parts.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                            "at": time.monotonic(),
                        }
                    )
                if "delay" in query:
                    time.sleep(float(query["delay"][0]))
                answer = json.dumps({"path": parts.path, "n": n}).encode()
                self.send_response(200)
                self.send_header("Content-Type", JSON_TYPE)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def at(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    async def wait(self, path: str, n: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.at(path)) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.at(path))} request(s) to {path} after {timeout}s, want {n}")
            await asyncio.sleep(0.05)
        return self.at(path)


def serve_target() -> Iterator[Target]:
    target = Target()
    target.thread.start()
    try:
        yield target
    finally:
        target.server.shutdown()
        target.server.server_close()


@asynccontextmanager
async def sse_member(api: TaskApi, *channels: str) -> AsyncIterator[SSEClient]:
    """A new user of the app connected over SSE (real server only) and joined to ``channels``."""
    user = await register(api.http, api.url, api.pk)
    client = SSEClient(api.url, api.pk)
    try:
        await client.open()
        await client.auth(user)
        for channel in channels:
            await client.join(channel)
        yield client
    finally:
        await client.close()
