"""``backend server --workers N`` (sbserver/cli/workers.py): N peers on one port.

On PostgreSQL + Redis, a group of three runs the founding chat with its two users' streams held
by different workers (each response names its worker in ``X-Served-By``; a client reconnects
until the two differ): a message posted by A reaches B, and the ``chan_out`` function stores it
exactly once although three processes run functions. SIGTERM to the supervisor stops every
worker and the group exits 0. A worker that dies is started again. On SQLite, or on PostgreSQL
without Redis, ``--workers 2`` is refused with the reason.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.compat.conftest import START_TIMEOUT, _free_port, _fresh_database, _server_env, _wait_until_ready
from tests.compat.support import DEV_PK, DEV_ROOT_ALIAS, tail
from tests.functions.support import TUTORIAL_FN
from tests.realtime.clients import SSEClient

PASSWORD = "workers-pw-123456"


@dataclass
class Group:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def worker_pids(supervisor: int) -> list[int]:
    """The pids of the supervisor's children (its workers)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


@pytest.fixture(scope="module")
def group(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    """``backend server --workers 3`` on its own PostgreSQL database and this worker's Redis."""
    database = _fresh_database(request.getfixturevalue("pg_url"), "workers")
    redis_url = request.getfixturevalue("redis_url")
    workdir = tmp_path_factory.mktemp("workers")
    log_path = workdir / "server.log"
    env = {**_server_env("pg", database), "REDIS_URL": redis_url}
    port = _free_port()
    cmd = [sys.executable, "-m", "sbserver", "server", "--workers", "3", "--port", str(port), "--shutdown-grace", "2"]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    why = _wait_until_ready(proc, url, time.monotonic() + START_TIMEOUT)
    if why:
        proc.kill()
        pytest.fail(f"the group did not start ({why}):\n{tail(log_path)}", pytrace=False)
    deadline = time.monotonic() + START_TIMEOUT  # every worker answers, not only the first
    seen: set[str] = set()
    while len(seen) < 3 and time.monotonic() < deadline:
        r = httpx.get(url + "/ping", headers={"Connection": "close"}, timeout=5)
        seen.add(r.headers["x-served-by"])
    assert seen == {"worker-0", "worker-1", "worker-2"}, seen
    yield Group(url, proc, log_path)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


async def register(http: httpx.AsyncClient, url: str) -> str:
    email = f"w-{uuid.uuid4().hex[:10]}@workers.example.com"
    r = await http.post(
        url + "/register", json={"email": email, "password": PASSWORD}, headers={"SB-PUBLIC-KEY": DEV_PK}
    )
    assert r.status_code == 200, r.text
    token: str = r.json()
    return token


async def stream_on_a_worker_other_than(url: str, taken: set[str]) -> tuple[SSEClient, str]:
    """An SSE stream held by a worker not in ``taken`` (new connections until one is)."""
    for _ in range(60):
        client = await SSEClient(url, DEV_PK).open()
        assert client.response is not None
        worker = client.response.headers["x-served-by"]
        if worker not in taken:
            return client, worker
        await client.close()
    raise AssertionError(f"60 connections all went to {taken}")


async def test_the_founding_chat_with_its_users_on_different_workers(group: Group) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(
            group.url + "/fn/add",
            json={"name": f"new_msg_{uuid.uuid4().hex[:6]}", "trigger": "chan_out", "code": TUTORIAL_FN},
            headers={"SB-PUBLIC-KEY": DEV_PK, "Authorization": f"Bearer {DEV_ROOT_ALIAS}"},
        )
        assert r.status_code == 200, r.text
        token_a, token_b = await register(http, group.url), await register(http, group.url)

        a, worker_a = await stream_on_a_worker_other_than(group.url, set())
        b, worker_b = await stream_on_a_worker_other_than(group.url, {worker_a})
        try:
            for client, token in ((a, token_a), (b, token_b)):
                await client.send("auth", token, token=token)
                await client.expect("token")
                client.token = token
            channel = f"lobby-{uuid.uuid4().hex[:6]}"
            await a.join(channel)
            await b.join(channel)
            text = f"hello across workers {uuid.uuid4().hex[:6]}"
            posted = '{"from":"a","body":"' + text + '"}'
            await a.send("chan_in", posted, channel)
            received = await b.expect("chan_out", data=posted, timeout=10)
            assert received["channel"] == channel

            # the function ran once, on whichever worker claimed the job
            stored: list[dict[str, object]] = []
            for _ in range(200):
                r = await http.get(
                    group.url + "/db/msgs_774_",
                    params={"size": 100},
                    headers={"SB-PUBLIC-KEY": DEV_PK, "Authorization": f"Bearer {token_b}"},
                )
                assert r.status_code == 200, r.text
                stored = [d for d in r.json()["results"] if d.get("body") == text]
                if stored:
                    break
                await asyncio.sleep(0.05)
            assert len(stored) == 1, stored
            # a later message is stored too (and still once): nothing ran twice for the first one
            later = '{"from":"a","body":"marker ' + text + '"}'
            await a.send("chan_in", later, channel)
            await b.expect("chan_out", data=later, timeout=10)
            for _ in range(200):
                r = await http.get(
                    group.url + "/db/msgs_774_",
                    params={"size": 100},
                    headers={"SB-PUBLIC-KEY": DEV_PK, "Authorization": f"Bearer {token_b}"},
                )
                bodies = [d.get("body") for d in r.json()["results"]]
                if f"marker {text}" in bodies:
                    break
                await asyncio.sleep(0.05)
            assert bodies.count(text) == 1 and bodies.count(f"marker {text}") == 1, bodies
        finally:
            await a.close()
            await b.close()
    assert worker_a != worker_b


def test_a_worker_that_dies_is_started_again(group: Group) -> None:
    before = worker_pids(group.proc.pid)
    assert len(before) == 3, before
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        now = worker_pids(group.proc.pid)
        if len(now) == 3 and before[0] not in now:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"no new worker: {worker_pids(group.proc.pid)}\n{tail(group.log_path)}")
    seen: set[str] = set()
    while len(seen) < 3 and time.monotonic() < deadline:  # and it serves
        seen.add(httpx.get(group.url + "/ping", headers={"Connection": "close"}, timeout=5).headers["x-served-by"])
    assert len(seen) == 3, seen
    assert f"(pid {before[0]}) exited" in group.log()


def test_sigterm_stops_every_worker_and_the_group_exits_0(group: Group) -> None:
    pids = worker_pids(group.proc.pid)
    group.proc.send_signal(signal.SIGTERM)
    assert group.proc.wait(timeout=30) == 0, tail(group.log_path)
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    log = group.log()
    assert log.count("stopped") >= 4 and log.rstrip().endswith("sbserver stopped"), tail(group.log_path)


@pytest.mark.parametrize("store", ["sqlite", "pg-without-redis", "zero"])
def test_workers_are_refused_where_they_cannot_run(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    env = _server_env("sqlite", "")
    workers = "2"
    if store == "pg-without-redis":
        env = _server_env("pg", request.getfixturevalue("pg_url"))
        env.pop("REDIS_URL", None)
    elif store == "zero":
        workers = "0"
    cmd = [sys.executable, "-m", "sbserver", "server", "--workers", workers, "--port", str(_free_port())]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    reason = done.stderr.strip()
    assert reason.count("\n") == 0 and reason.startswith("sbserver cannot start: --workers"), reason
    expected = {"sqlite": "one writer", "pg-without-redis": "needs REDIS_URL", "zero": "1 or more"}[store]
    assert expected in reason, reason
