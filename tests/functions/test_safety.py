"""Decisions 8 and 9 of spec 00: what a function cannot do, and that the server outlives it.

A real server process (SQLite) with ``FUNCTION_TIMEOUT=2``, ``FUNCTION_MEMORY_MB=16`` and two
workers, so that "the server keeps serving" is measured over a real socket: ``/ping`` is polled
while functions loop, blow their memory or queue up, and each answer must come within
``PING_BOUND`` seconds (a generous bound: this checks starvation, not speed).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from tests.functions.local_http import LocalHTTP
from tests.functions.support import FnApi, Process, logged, server_process, unique

PING_BOUND = 2.0
T = TypeVar("T")


@pytest.fixture(scope="session")
def safe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    env = {"FUNCTION_TIMEOUT": "2", "FUNCTION_MEMORY_MB": "16", "SB_FUNCTION_WORKERS": "2"}
    with server_process(tmp_path_factory.mktemp("fn-safety"), env) as proc:
        yield proc


@pytest.fixture
async def safe(safe_server: Process) -> AsyncIterator[FnApi]:
    async with httpx.AsyncClient(timeout=60) as http:
        yield await FnApi(http, "", "", safe_server.url).new_app()


async def while_pinging(url: str, work: Awaitable[T]) -> tuple[T, list[float]]:
    """Run ``work`` while ``/ping`` is asked every 100 ms; returns its result and every ping's latency."""
    latencies: list[float] = []
    task = asyncio.ensure_future(work)
    async with httpx.AsyncClient(timeout=30) as pinger:
        while not task.done():
            start = time.monotonic()
            r = await pinger.get(url + "/ping")
            latencies.append(time.monotonic() - start)
            assert r.status_code == 200 and r.text == "true", r.text
            await asyncio.sleep(0.1)
    return await task, latencies


def assert_responsive(latencies: list[float], at_least: int) -> None:
    assert len(latencies) >= at_least, f"only {len(latencies)} pings were made: {latencies}"
    slow = [round(t, 2) for t in latencies if t > PING_BOUND]
    assert not slow, f"/ping took more than {PING_BOUND}s {len(slow)} times: {slow}"


async def test_no_filesystem_environment_process_or_network_globals(safe: FnApi, local_http: LocalHTTP) -> None:
    code = """function handle(body) {
      var names = ["require", "process", "std", "os", "setTimeout", "setInterval", "module", "exports",
                   "XMLHttpRequest", "WebSocket", "Deno", "Bun", "__host", "__log", "scriptArgs", "print"];
      var types = {};
      for (var i = 0; i < names.length; i++) types[names[i]] = typeof globalThis[names[i]];
      log(JSON.stringify(types));
      var p = import("os");
      log(JSON.stringify({importIs: Object.prototype.toString.call(p)}));
      p.then(function (m) { log("imported"); create("leak", {keys: Object.keys(m)}); },
             function (e) { log(JSON.stringify({rejected: String(e)})); });
      log(JSON.stringify(fetch("file:///etc/passwd")));
      log(JSON.stringify(fetch(body.url + "/allowed")));
    }"""
    await safe.add_ok("sandbox", "web", code)
    user = await safe.register()
    run = await safe.exec_ok("sandbox", user.jwt, {"url": local_http.url})
    types, imported, file_fetch, net_fetch, *rest = logged(run)
    assert set(types.values()) == {"undefined"}, types
    assert imported == {"importIs": "[object Promise]"}, imported
    assert "imported" not in run["output"], run
    # promise jobs run after handle returns: the import's rejection handler ran, its success one did not
    assert rest and all("rejected" in value for value in rest), rest
    assert file_fetch["ok"] is False and file_fetch["content"].startswith("error calling fetch(): "), file_fetch
    assert net_fetch["ok"] is True and net_fetch["content"]["status"] == 201, net_fetch
    r = await safe.request("GET", "/db/leak", user.jwt)
    assert r.status_code != 200 or r.json()["total"] == 0, r.text
    # a static import cannot even be saved
    r = await safe.add("static_import", "web", 'import * as os from "os";\nfunction handle() {}')
    assert r.status_code == 400 and r.text.startswith("invalid function code: SyntaxError"), r.text


async def test_infinite_loop_is_stopped_at_the_deadline_while_ping_answers(safe: FnApi) -> None:
    await safe.add_ok("spin", "web", "function handle() { while (true) {} }")
    user = await safe.register()
    start = time.monotonic()
    r, latencies = await while_pinging(safe.url, safe.exec("spin", user.jwt, {}))
    took = time.monotonic() - start
    assert r.status_code == 500 and r.text == "function execution timed out\n", r.text
    assert 1.8 <= took < 8, took
    assert_responsive(latencies, at_least=5)
    [run] = await safe.runs("spin", 1)
    assert run["success"] is False and run["output"][-1] == "function execution timed out", run
    # triggered runs have the same deadline
    col = unique("spin")
    await safe.add_ok("spin_db", f"db-{col}", "function handle() { for (;;) {} }")
    await safe.create(user.jwt, col, {"v": 1})
    [run] = await safe.runs("spin_db", 1, timeout=10)
    assert run["success"] is False and run["output"][-1] == "function execution timed out", run
    await safe.add_ok("after", "web", 'function handle() { log("alive"); }')
    assert (await safe.exec_ok("after", user.jwt, {}))["output"][1] == "alive"


@pytest.mark.parametrize(
    "bomb",
    [
        "var a = []; while (true) a.push(new Array(100000).join('x') + Math.random());",
        "var s = 'x'; while (true) s = s + s;",
        "var b = new ArrayBuffer(512 * 1024 * 1024); log(b.byteLength);",
    ],
    ids=["arrays", "string", "arraybuffer"],
)
async def test_memory_bomb_is_stopped_at_the_cap_and_recorded(safe: FnApi, bomb: str) -> None:
    await safe.add_ok("bomb", "web", "function handle() { " + bomb + " }")
    user = await safe.register()
    r, latencies = await while_pinging(safe.url, safe.exec("bomb", user.jwt, {}))
    assert r.status_code == 500, r.text
    assert_responsive(latencies, at_least=1)
    [run] = await safe.runs("bomb", 1)
    assert run["success"] is False, run
    assert "memory" in run["output"][-1].lower(), run
    assert r.text.rstrip("\n").endswith(run["output"][-1]) or "memory" in r.text.lower(), (r.text, run)
    await safe.add_ok("after", "web", 'function handle() { log("alive"); }')
    assert (await safe.exec_ok("after", user.jwt, {}))["output"][1] == "alive"


async def test_a_throwing_triggered_function_is_recorded_failed_with_its_error_last(safe: FnApi) -> None:
    channel = unique("throw")
    code = 'function handle(channel, type, data) { log("got " + data); throw new RangeError("kaboom " + data); }'
    await safe.add_ok("thrower", channel, code)
    user = await safe.register()
    await safe.publish(user.jwt, channel, "chan_out", "42")
    [run] = await safe.runs("thrower", 1)
    assert run["success"] is False, run
    assert run["output"][:2] == ["Function started", "got 42"], run
    assert run["output"][-1].startswith("RangeError: kaboom 42"), run


async def test_a_run_that_logs_in_a_loop_keeps_64k_characters_of_log(safe: FnApi) -> None:
    """A log bomb (200 MB of lines) must not fill the store or /fn/info: the run keeps 64 KiB
    characters of log, one line cut short, and says how many lines it did not keep."""
    code = 'function handle() { var s = "x".repeat(1000); for (var i = 0; i < 200000; i++) log(i + s); }'
    await safe.add_ok("logbomb", "web", code)
    user = await safe.register()
    r, latencies = await while_pinging(safe.url, safe.exec("logbomb", user.jwt, {}))
    assert r.status_code == 200, r.text
    assert_responsive(latencies, at_least=1)
    [run] = await safe.runs("logbomb", 1)
    assert run["success"] is True
    kept = run["output"][1:-2]
    assert kept[0] == "0" + "x" * 1000 and len(kept) == 66, [len(line) for line in kept]
    assert kept[-1].endswith(" more characters)") and sum(len(line.split("...")[0]) for line in kept) == 65536
    assert run["output"][-2] == "199934 more log lines not kept: a run keeps 65536 characters of log"
    assert run["output"][-1] == "Function completed"
    info = await safe.request("GET", "/fn/info/logbomb", safe.root)
    assert len(info.content) < 100_000


async def test_an_error_of_a_million_characters_is_cut_short(safe: FnApi) -> None:
    await safe.add_ok("bigerror", "web", 'function handle() { throw new Error("e".repeat(1000000)); }')
    user = await safe.register()
    r = await safe.exec("bigerror", user.jwt, {})
    assert r.status_code == 500 and len(r.text) < 5000, len(r.text)
    assert r.text.startswith("error executing your function: Error: eeee"), r.text[:80]
    assert r.text.endswith("e... (995911 more characters)\n"), r.text[-80:]
    [run] = await safe.runs("bigerror", 1)
    assert run["success"] is False and len(run["output"][-1]) < 5000


def _state(pid: int) -> str:
    """A process's state letter (``Z`` for a zombie); ``X`` once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def worker_pids(server_pid: int) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-P", str(server_pid), "-f", "sbserver.runtime.worker"], capture_output=True, text=True
    )
    return [int(pid) for pid in found.stdout.split()]


async def test_workers_killed_while_idle_lose_no_event(safe: FnApi, safe_server: Process) -> None:
    """A worker can die between runs (the OOM killer, an operator): the run that would have gone
    to it goes to a fresh worker, and every triggered event still runs once."""
    col = unique("killed")
    await safe.add_ok("afterkill", f"db-{col}", "function handle(channel, type, data) { log(data.i); }")
    user = await safe.register()
    victims = worker_pids(safe_server.pid)
    assert victims, "the server has no worker processes"
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    for pid in victims:  # every one gone (reaped by the server) before any run is handed out
        while _state(pid) not in ("Z", "X"):
            await asyncio.sleep(0.01)
    await safe.create_bulk(user.jwt, col, [{"i": i} for i in range(10)])
    history = await safe.runs("afterkill", 10)
    assert sorted(int(run["output"][1]) for run in history) == list(range(10)), history
    assert all(run["success"] for run in history), history
    assert not set(worker_pids(safe_server.pid)) & set(victims)


async def test_a_function_cannot_read_another_apps_data(safe: FnApi) -> None:
    other = await safe.new_app()
    owner = await other.register()
    doc = await other.create(owner.jwt, "shared_name", {"secret": "other app"})
    await other.add_ok("setter", "web", 'function handle() { cacheSet("k", "other app"); }')
    await other.exec_ok("setter", owner.jwt, {})
    code = """function handle(body) {
      log(JSON.stringify(getById("shared_name", body.id)));
      log(JSON.stringify(list("shared_name")));
      log(JSON.stringify(query("shared_name", [["secret", "==", "other app"]])));
      log(JSON.stringify(update("shared_name", body.id, {secret: "changed"})));
      log(JSON.stringify(cacheGet("k")));
    }"""
    await safe.add_ok("snoop", "web", code)
    r = await safe.sudo_exec("snoop", {"id": doc["id"]})  # even as this app's root
    assert r.status_code == 200, r.text
    [run] = await safe.runs("snoop", 1)
    got, listed, queried, updated, cached = logged(run)
    assert got["ok"] is False, got
    assert listed["ok"] is False or listed["content"]["results"] == [], listed
    assert queried["ok"] is False or queried["content"]["results"] == [], queried
    assert updated["ok"] is False, updated
    assert cached == {"ok": True, "content": ""}, cached
    r = await other.request("GET", f"/db/shared_name/{doc['id']}", owner.jwt)
    assert r.json()["secret"] == "other app", r.text


async def test_a_function_runs_with_its_callers_rights_only(safe: FnApi) -> None:
    a, b = await safe.register(), await safe.register()
    doc = await safe.create(a.jwt, "notes_700_", {"text": "A's private note"})
    code = """function handle(body) {
      log(JSON.stringify(getById("notes_700_", body.id)));
      log(JSON.stringify(list("notes_700_")));
      log(JSON.stringify(update("notes_700_", body.id, {text: "changed"})));
      log(JSON.stringify(del("notes_700_", body.id)));
    }"""
    await safe.add_ok("reader", "web", code)
    run = await safe.exec_ok("reader", b.jwt, {"id": doc["id"]})
    got, listed, updated, deleted = logged(run)
    assert got["ok"] is False, got
    assert listed["ok"] is False or listed["content"]["results"] == [], listed
    assert updated["ok"] is False, updated
    assert deleted["ok"] is False or deleted["content"] == 0, deleted
    # the owner, through the same function, can
    run = await safe.exec_ok("reader", a.jwt, {"id": doc["id"]})
    got = logged(run)[0]
    assert got["ok"] is True and got["content"]["text"] == "A's private note", got


async def test_100_queued_triggered_runs_do_not_starve_http(safe: FnApi) -> None:
    col = unique("burst")
    code = "function handle(channel, type, data) { var t = Date.now(); while (Date.now() - t < 20) {} log(data.i); }"
    await safe.add_ok("burst", f"db-{col}", code)
    user = await safe.register()
    await safe.create_bulk(user.jwt, col, [{"i": i} for i in range(100)])
    history, latencies = await while_pinging(safe.url, safe.runs("burst", 100, timeout=60))
    assert_responsive(latencies, at_least=3)
    assert len(history) == 100 and all(run["success"] for run in history), [
        run for run in history if not run["success"]
    ][:3]
    assert sorted(int(run["output"][1]) for run in history) == list(range(100))


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_fetch_honours_method_headers_and_body(safe: FnApi, local_http: LocalHTTP, method: str) -> None:
    code = """function handle(body) {
      log(JSON.stringify(fetch(body.url, {method: body.method, headers: {"X-Token": "t-1", "X-Empty": ""},
                                          body: "payload " + body.method, mode: "cors"})));
    }"""
    name = unique("fetch")
    await safe.add_ok(name, "web", code)
    user = await safe.register()
    before = len(local_http.requests)
    run = await safe.exec_ok(name, user.jwt, {"url": local_http.url + "/m", "method": method})
    [answer] = logged(run)
    assert answer == {"ok": True, "content": {"status": 201, "body": f"answer to {method}"}}, answer
    [seen] = local_http.requests[before:]
    assert seen["method"] == method and seen["path"] == "/m", seen
    assert seen["headers"].get("x-token") == "t-1" and "x-empty" not in seen["headers"], seen
    assert seen["body"] == f"payload {method}", seen
