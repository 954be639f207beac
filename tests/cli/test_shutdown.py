"""Stopping ``backend server`` with SIGINT (Ctrl-C) or SIGTERM while clients hold streams open.

A real server process, started in its own session so that a signal can go to its whole process
group the way a terminal's Ctrl-C does (function workers included). The first signal ends every
SSE stream with a final ``error`` envelope and every WebSocket with that envelope and close code
1001, lets a request in flight finish (within ``--shutdown-grace``) and exits 0 within seconds;
a second signal exits at once. The output never holds a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.compat.conftest import START_TIMEOUT, _free_port, _server_env, _wait_until_ready
from tests.conftest import LIVE_KINDS

PK = "dev_memory_pk"
ROOT = "safe-to-use-in-dev-root-token"
FINAL = "server shutting down"
ENVELOPE_KEYS = {"sid", "type", "data", "channel", "token", "auth", "base"}
EXIT_BOUND = 10.0
# publishes a marker (so the test knows the run is under way), then computes for ``ms``
SPIN = 'function handle(b) { send("spin-marks", "started", "go"); var t = Date.now(); while (Date.now() - t < %d) {} }'


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def signal_group(self, sig: int) -> None:
        """What a terminal does on Ctrl-C: the signal reaches every process of the group."""
        os.killpg(self.proc.pid, sig)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_exit(self, bound: float = EXIT_BOUND) -> tuple[int, float]:
        start = time.monotonic()
        try:
            code = self.proc.wait(bound)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server still runs {bound}s after the signal; output:\n{self.output()[-3000:]}")
        return code, time.monotonic() - start

    def assert_quiet(self) -> None:
        out = self.output()
        for word in ("Traceback", "CancelledError", "KeyboardInterrupt", "Exception in ASGI"):
            assert word not in out, f"{word!r} in the server's output:\n{out[-4000:]}"


@pytest.fixture(params=LIVE_KINDS)
def env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The server's environment: SQLite with the in-process bus, or PostgreSQL with Redis."""
    kind: str = request.param
    if kind == "sqlite":
        return _server_env("sqlite", "")
    environment = _server_env("pg", request.getfixturevalue("pg_url"))
    environment["REDIS_URL"] = request.getfixturevalue("redis_url")
    return environment


@contextmanager
def server_process(tmp_path: Path, env: dict[str, str], *extra: str) -> Iterator[Server]:
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sbserver", "server", "--port", str(port), "--data-dir", str(tmp_path), *extra],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", log)
    try:
        why = _wait_until_ready(proc, server.url, time.monotonic() + START_TIMEOUT)
        assert not why, f"the server did not start ({why}):\n{server.output()[-3000:]}"
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


class SSE:
    """An open ``/sse/connect`` stream, read event by event."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()

    async def event(self) -> dict[str, Any] | None:
        """The next envelope (keep-alive comments skipped); None once the response has ended."""
        async for line in self.lines:
            if line.startswith("data: "):
                event: dict[str, Any] = json.loads(line[6:])
                return event
        return None

    async def rest(self) -> list[dict[str, Any]]:
        events = []
        while (event := await asyncio.wait_for(self.event(), EXIT_BOUND)) is not None:
            events.append(event)
        return events


@asynccontextmanager
async def sse_stream(http: httpx.AsyncClient) -> AsyncIterator[SSE]:
    async with http.stream("GET", f"/sse/connect?sbpk={PK}") as response:
        assert response.status_code == 200
        stream = SSE(response)
        first = await stream.event()
        assert first is not None and first["type"] == "init", first
        yield stream


async def ws_open(server: Server) -> Any:
    ws = await websockets.connect(server.ws_url)
    first = json.loads(await ws.recv())
    assert first["type"] == "init", first
    return ws


async def ws_command(ws: Any, answer: str, **cmd: str) -> dict[str, Any]:
    await ws.send(json.dumps(cmd))
    return await ws_wait(ws, answer)


async def ws_wait(ws: Any, answer: str) -> dict[str, Any]:
    """The next envelope of type ``answer`` (others skipped; an ``error`` fails)."""
    while True:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if msg["type"] in (answer, "error"):
            assert msg["type"] == answer, msg
            return msg


async def ws_end(ws: Any) -> tuple[list[dict[str, Any]], int | None]:
    """Every envelope the socket receives until it closes, and its close code."""
    events = []
    try:
        while True:
            events.append(json.loads(await asyncio.wait_for(ws.recv(), EXIT_BOUND)))
    except websockets.ConnectionClosed:
        pass
    return events, ws.close_code


def assert_final(event: dict[str, Any]) -> None:
    assert set(event) == ENVELOPE_KEYS, event  # spec 04 §1: all seven keys, server to client
    assert event["type"] == "error" and event["data"] == FINAL, event
    assert event["auth"] == {"accountId": "", "userId": "", "email": "", "role": 0}, event


async def add_spin(http: httpx.AsyncClient, ms: int) -> str:
    """A new function (named afresh: the PostgreSQL database outlives a test) that spins ``ms``."""
    name = f"spin{uuid.uuid4().hex[:10]}"
    root = {"SB-PUBLIC-KEY": PK, "Authorization": f"Bearer {ROOT}"}
    r = await http.post("/fn/add", headers=root, json={"name": name, "trigger": "web", "code": SPIN % ms})
    assert r.status_code == 200, r.text
    return name


def sudo_exec(http: httpx.AsyncClient, name: str) -> asyncio.Task[httpx.Response]:
    root = {"SB-PUBLIC-KEY": PK, "Authorization": f"Bearer {ROOT}"}
    return asyncio.ensure_future(http.post(f"/fn/sudoexec/{name}", headers=root, json={}))


async def watching_marks(http: httpx.AsyncClient, server: Server) -> Any:
    """A WebSocket of a signed-up user, joined to the channel the spinning function marks."""
    email = f"shutdown-{uuid.uuid4().hex[:10]}@example.com"
    r = await http.post("/register", headers={"SB-PUBLIC-KEY": PK}, json={"email": email, "password": "pw-123456"})
    assert r.status_code == 200, r.text
    ws = await ws_open(server)
    await ws_command(ws, "token", type="auth", data=r.json())
    await ws_command(ws, "joined", type="join", data="spin-marks")
    return ws


async def started(ws: Any) -> None:
    msg = await ws_wait(ws, "started")
    assert msg["channel"] == "spin-marks", msg


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_signal_ends_every_stream_and_the_process(tmp_path: Path, env: dict[str, str], sig: int) -> None:
    with server_process(tmp_path, env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=EXIT_BOUND) as http:
            warmup = await add_spin(http, 1)  # one run, so function workers are in the group too
            r = await http.post(
                f"/fn/sudoexec/{warmup}", headers={"SB-PUBLIC-KEY": PK, "Authorization": f"Bearer {ROOT}"}
            )
            assert r.status_code == 200, r.text
            async with sse_stream(http) as first, sse_stream(http) as second:
                ws = await ws_open(server)
                server.signal_group(sig)
                sse_events = await first.rest()
                other_events = await second.rest()
                ws_events, ws_code = await ws_end(ws)
        code, took = server.wait_exit()
    assert sse_events and other_events and ws_events
    for events in (sse_events, other_events, ws_events):
        assert_final(events[-1])
    assert ws_code == 1001
    assert code == 0, server.output()[-3000:]
    assert took < 5.0, f"took {took:.1f}s to exit"
    server.assert_quiet()


async def test_a_request_in_flight_finishes_before_the_exit(tmp_path: Path, env: dict[str, str]) -> None:
    with server_process(tmp_path, env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            spin = await add_spin(http, 1500)
            marks = await watching_marks(http, server)
            running = sudo_exec(http, spin)
            await started(marks)  # the run computes in a worker now
            server.signal_group(signal.SIGINT)
            _, marks_code = await ws_end(marks)
            response = await running
        code, _ = server.wait_exit()
    assert marks_code == 1001
    assert response.status_code == 200, response.text  # Ctrl-C reached the worker too: it finished all the same
    assert code == 0
    server.assert_quiet()


async def test_a_request_past_the_grace_period_is_cut_short_quietly(tmp_path: Path, env: dict[str, str]) -> None:
    with server_process(tmp_path, env, "--shutdown-grace", "1") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            spin = await add_spin(http, 20_000)
            marks = await watching_marks(http, server)
            running = sudo_exec(http, spin)
            await started(marks)
            server.signal_group(signal.SIGTERM)
            await ws_end(marks)
            code, took = server.wait_exit()
            with pytest.raises(httpx.HTTPError):  # cut: the connection ends without an answer
                (await running).raise_for_status()
    assert code == 0
    assert took < 6.0, f"took {took:.1f}s with a 1 s grace period"
    assert "grace period was cancelled" in server.output()
    server.assert_quiet()


async def test_a_second_sigint_exits_at_once(tmp_path: Path, env: dict[str, str]) -> None:
    with server_process(tmp_path, env, "--shutdown-grace", "60") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            spin = await add_spin(http, 25_000)
            marks = await watching_marks(http, server)
            running = sudo_exec(http, spin)
            await started(marks)
            async with sse_stream(http) as stream:
                server.signal_group(signal.SIGINT)
                assert_final((await stream.rest())[-1])  # the first signal is being handled: streams ended
            server.signal_group(signal.SIGINT)  # ... while the run would hold the exit for ~25 s
            code, took = server.wait_exit(5.0)
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await marks.close()
    assert code == 0
    assert took < 3.0, f"took {took:.1f}s after the second signal"
    assert "second signal, stopping at once" in server.output()
    server.assert_quiet()


async def test_a_second_sigint_right_after_the_first(tmp_path: Path, env: dict[str, str]) -> None:
    with server_process(tmp_path, env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=EXIT_BOUND) as http, sse_stream(http):
            ws = await ws_open(server)
            server.signal_group(signal.SIGINT)
            server.signal_group(signal.SIGINT)
            code, took = server.wait_exit(5.0)
            await ws.close()
    assert code == 0
    assert took < 3.0
    server.assert_quiet()


async def silent_websocket(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket opened by hand that will never answer the server's close frame: the server's
    shutdown waits for it (two seconds at most) before it goes on."""
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await writer.drain()
    assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
    return reader, writer


async def test_no_new_stream_once_the_stop_has_begun(tmp_path: Path, env: dict[str, str]) -> None:
    with server_process(tmp_path, env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=EXIT_BOUND) as http:
            assert (await http.get("/ping")).text == "true"  # a kept-alive connection, idle
            reader, writer = await silent_websocket(server)
            server.signal_group(signal.SIGINT)
            received = b""
            while FINAL.encode() not in received:  # the stop has begun; the silent socket holds it open
                received += await asyncio.wait_for(reader.read(4096), EXIT_BOUND)
            late = await http.get(f"/sse/connect?sbpk={PK}")  # on the kept-alive connection
            with pytest.raises(ConnectionRefusedError):  # new connections: refused
                await asyncio.open_connection("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
            writer.close()
        code, _ = server.wait_exit()
    assert late.status_code == 200
    events = [json.loads(line[6:]) for line in late.text.splitlines() if line.startswith("data: ")]
    assert len(events) == 1, events  # no init: the stream is refused with the final event alone
    assert_final(events[0])
    assert code == 0
    server.assert_quiet()
