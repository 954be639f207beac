"""``backend proxy`` in front of a real server and of a recording one; ``backend server --persist-data
--no-log``; rich output on a terminal (and ``NO_COLOR``)."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import websockets

from tests.cli.conftest import BACKEND, CLI_ENV_KEYS, failed, run_cli
from tests.functions.local_http import LocalHTTP
from tests.functions.support import Process, server_process

ROOT = "safe-to-use-in-dev-root-token"
DEV = {"SB-PUBLIC-KEY": "dev_memory_pk", "Authorization": f"Bearer {ROOT}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    with server_process(tmp_path_factory.mktemp("cli-proxy"), {}) as server:
        yield server


@contextmanager
def proxy(workdir: Path, region: str) -> Iterator[str]:
    """``backend proxy -p <free port>`` with ``region`` in .backend.yml, until it answers."""
    (workdir / ".backend.yml").write_text(f"pubKey: dev_memory_pk\nregion: {region}\nrootToken: {ROOT}\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in CLI_ENV_KEYS}
    env["HOME"] = str(workdir)
    proc = subprocess.Popen(
        [str(BACKEND), "proxy", "-p", str(port)], cwd=workdir, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == f"Proxy server started at: http://localhost:{port}\n"
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(url + "/", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, "the proxy did not start"
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_proxy_relays_requests_and_realtime(dev_server: Process, tmp_path: Path) -> None:
    with proxy(tmp_path, dev_server.url) as url:
        assert httpx.get(url + "/ping").text == "true"
        r = httpx.post(url + "/sudo/proxied?x=1", headers=DEV, json={"via": "proxy"})
        assert r.status_code == 201 and r.headers["content-type"] == "application/json", r.text
        doc_id = r.json()["id"]
        direct = httpx.get(f"{dev_server.url}/sudo/proxied/{doc_id}", headers=DEV)
        assert direct.json()["via"] == "proxy"
        r = httpx.get(url + "/sudo/proxied/nosuch", headers=DEV)
        assert r.status_code == 404 and r.text.strip() == "document not found"

        async def init_over_websocket() -> dict[str, str]:
            async with websockets.connect("ws" + url[4:] + "/ws") as ws:
                first: dict[str, str] = json.loads(await asyncio.wait_for(ws.recv(), 10))
                return first

        assert asyncio.run(init_over_websocket())["type"] == "init"


def test_proxy_sets_forwarded_host_and_passes_everything(tmp_path: Path) -> None:
    with LocalHTTP() as recorder, proxy(tmp_path, recorder.url) as url:
        r = httpx.put(url + "/some/path?q=1", headers={"X-Custom": "yes"}, content=b"payload")
        assert r.status_code == 201 and r.text == "answer to PUT"
        seen = recorder.requests[-1]
        assert seen["method"] == "PUT" and seen["path"] == "/some/path" and seen["body"] == "payload"
        assert seen["headers"]["x-forwarded-host"] == url.split("//")[1]
        assert seen["headers"]["x-custom"] == "yes"


def test_proxy_failures(tmp_path: Path) -> None:
    closed = free_port()
    with proxy(tmp_path, f"http://127.0.0.1:{closed}") as url:
        r = httpx.get(url + "/ping")
        assert r.status_code == 502 and r.text.startswith(f"proxy: cannot reach http://127.0.0.1:{closed}"), r.text
    failed(
        run_cli(tmp_path, "proxy", "-p", str(closed), REGION=f"http://localhost:{closed}"), "would forward to itself"
    )
    (tmp_path / ".backend.yml").unlink()
    failed(run_cli(tmp_path, "proxy"), "missing a region")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        failed(run_cli(tmp_path, "proxy", "-p", str(busy), REGION="https://example.invalid"), "is already in use")


def test_server_accepts_persist_data_and_no_log(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "REDIS_HOST")}
    env.update({"APP_ENV": "dev", "DATA_STORE": "pg", "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    cmd = [str(BACKEND), "server", "-p", str(port), "--persist-data", "--no-log", "--data-dir", str(tmp_path / "d")]
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/ping", timeout=2).text == "true":
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "server.log").read_text()
            time.sleep(0.1)
        r = httpx.post(url + "/sudo/kept", headers=DEV, json={"a": 1})
        assert r.status_code == 201, r.text
    finally:
        proc.terminate()
        proc.wait(15)
    text = (tmp_path / "server.log").read_text()
    # --persist-data: the embedded SQLite store under --data-dir, whatever DATA_STORE says
    assert "store: sqlite" in text and (tmp_path / "d" / "sbserver.db").exists(), text
    assert "/sudo/kept" not in text, text  # --no-log: no line per request


def terminal(args: list[str], cwd: Path, **env: str) -> bytes:
    """What ``backend <args>`` writes to a pseudo-terminal."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once
        os.chdir(cwd)
        for key in CLI_ENV_KEYS:
            os.environ.pop(key, None)
        os.environ.update({"HOME": str(cwd), "TERM": "xterm-256color", "COLUMNS": "120", **env})
        os.execv(str(BACKEND), [str(BACKEND), *args])
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    os.close(fd)
    return out


def test_rich_on_a_terminal_and_no_color(dev_server: Process, tmp_path: Path) -> None:
    (tmp_path / ".backend.yml").write_text(f"pubKey: dev_memory_pk\nregion: {dev_server.url}\nrootToken: {ROOT}\n")
    (tmp_path / "fn.js").write_text("function handle() {}\n")
    coloured = terminal(["function", "add", "--name", "ttyfn", "--trigger", "web", "--source", "fn.js"], tmp_path)
    assert b"\x1b[" in coloured and b"SUCCESS \xe2\x96\xb6" in coloured, coloured
    assert b"\x1b[32m" in coloured or b"\x1b[1;32m" in coloured, coloured  # green banner
    table = terminal(["function", "list"], tmp_path, NO_COLOR="1")
    assert b"NAME" in table and b"ttyfn" in table and "─".encode() in table, table  # a rich table
    assert b"\x1b[3" not in table and b"\x1b[1;3" not in table, table  # and no colour
    plain = run_cli(tmp_path, "function", "list")
    assert plain.stdout.splitlines()[1].split() == ["NAME", "VERSION", "TRIGGER", "LAST", "RUN"], plain.stdout
