"""What ``backend server`` prints: a line per request, function run and task run by default,
more with ``--log-level debug``, none of those with ``--no-log``, JSON with ``--log-format json``;
request ids taken from ``X-Request-ID`` (when sane) or made, and sent back.

Each test runs a real server process, sends its requests, stops it with SIGTERM and reads the
whole output once the process has exited (so an absent line is really absent: the ``sbserver
stopped`` line, printed last in every mode, proves the output is complete).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.compat.conftest import START_TIMEOUT, _free_port, _server_env, _wait_until_ready

PK = "dev_memory_pk"
ROOT = {"SB-PUBLIC-KEY": PK, "Authorization": "Bearer safe-to-use-in-dev-root-token"}
HELLO = "function handle() { log('hello from the function'); }"


@dataclass
class Run:
    """A finished server: its exit code, its output, and what the requests returned."""

    code: int
    output: str
    ids: dict[str, str]  # what each request got back in X-Request-ID

    def lines(self, needle: str) -> list[str]:
        return [line for line in self.output.splitlines() if needle in line]


def serve(tmp_path: Path, flags: list[str], traffic: Callable[[httpx.Client], dict[str, str]]) -> Run:
    """Run ``backend server <flags>``, send ``traffic``, stop it with SIGTERM, return its output."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    cmd = [sys.executable, "-m", "sbserver", "server", "--port", str(port), "--data-dir", str(tmp_path / "d"), *flags]
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            cmd, env=_server_env("sqlite", ""), stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        why = _wait_until_ready(proc, url, time.monotonic() + START_TIMEOUT)
        assert not why, f"the server did not start ({why}):\n{log.read_text()[-3000:]}"
        with httpx.Client(base_url=url, timeout=15) as http:
            ids = traffic(http)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return Run(code, log.read_text(errors="replace"), ids)


def standard_traffic(http: httpx.Client) -> dict[str, str]:
    """A request with a sane id, one with an insane id, an error, a function run."""
    ids = {}
    r = http.get("/ping", headers={"X-Request-ID": "trace-42.a"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "trace-42.a"
    ids["given"] = r.headers["x-request-id"]
    r = http.get("/ping", headers={"X-Request-ID": "no spaces allowed " + "x" * 80})
    assert r.status_code == 200
    ids["replaced"] = r.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{16}", ids["replaced"]), ids["replaced"]
    r = http.get("/db/logs_col/missing-id")  # no public key: 401 with its fixed text
    assert r.status_code == 401 and r.text == "invalid StaticBackend public key\n"
    ids["error"] = r.headers["x-request-id"]
    assert ids["error"] and ids["error"] not in (ids["given"], ids["replaced"])
    r = http.post("/fn/add", json={"name": "hello", "trigger": "web", "code": HELLO}, headers=ROOT)
    assert r.status_code == 200, r.text
    r = http.post("/fn/sudoexec/hello", json={}, headers=ROOT)
    assert r.status_code == 200, r.text
    return ids


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    yield serve(tmp_path_factory.mktemp("logs-default"), [], standard_traffic)


def test_one_line_per_request_with_method_path_status_duration_and_id(default_run: Run) -> None:
    run = default_run
    assert run.code == 0, run.output[-3000:]
    given = run.lines(f"id={run.ids['given']}")
    assert len(given) == 1 and re.search(r"INFO +GET /ping 200 [0-9.]+ms id=trace-42\.a$", given[0]), given
    assert len(run.lines(f"id={run.ids['replaced']}")) == 1, "a replaced id is logged as sent back"
    assert "no spaces allowed" not in run.output
    error = run.lines(f"id={run.ids['error']}")
    assert len(error) == 1 and " GET /db/logs_col/missing-id 401 " in error[0], error
    assert "route=" not in run.output and "client=" not in run.output, "debug details at info level"


def test_function_runs_are_logged_with_name_trigger_duration_and_result(default_run: Run) -> None:
    runs = default_run.lines("function hello (web)")
    assert len(runs) == 1 and re.search(r"function hello \(web\) [0-9.]+ms ok app=dev_memory_pk$", runs[0]), runs
    assert "hello from the function" not in default_run.output, "what a function prints is a debug line"


def test_the_output_ends_with_the_stop_line(default_run: Run) -> None:
    assert default_run.output.rstrip().splitlines()[-1] == "sbserver stopped"
    assert "Traceback" not in default_run.output


def test_no_log_silences_request_and_run_lines(tmp_path: Path) -> None:
    run = serve(tmp_path, ["--no-log"], standard_traffic)
    assert run.code == 0, run.output[-3000:]
    assert run.output.rstrip().splitlines()[-1] == "sbserver stopped", run.output[-2000:]
    assert "sbserver on http://127.0.0.1:" in run.output  # the start line stays too
    for id_ in run.ids.values():
        assert id_ not in run.output, f"a request line under --no-log:\n{run.output}"
    assert "GET /ping" not in run.output and "function hello" not in run.output, run.output


def test_debug_shows_more(tmp_path: Path) -> None:
    run = serve(tmp_path, ["--log-level", "debug"], standard_traffic)
    assert run.code == 0, run.output[-3000:]
    line = run.lines("id=trace-42.a")
    assert len(line) == 1 and re.search(r"route=/ping client=127\.0\.0\.1:\d+$", line[0]), line
    error = run.lines(f"id={run.ids['error']}")
    assert "route=/db/{collection}/{id}" in error[0], error
    assert run.lines("function hello of dev_memory_pk printed: hello from the function"), run.output[-3000:]
    assert run.lines("uvicorn.error: Application startup complete"), "uvicorn's own lines at debug"


def test_json_lines(tmp_path: Path) -> None:
    run = serve(tmp_path, ["--log-format", "json"], standard_traffic)
    assert run.code == 0, run.output[-3000:]
    objects = []
    for line in run.output.splitlines():
        if line.strip():
            obj = json.loads(line)  # every line, the start and stop lines and the dev banner too
            assert {"time", "level", "logger", "msg"} <= set(obj), obj
            objects.append(obj)
    requests = {o["request_id"]: o for o in objects if o.get("event") == "request"}
    given = requests[run.ids["given"]]
    assert given["method"] == "GET" and given["path"] == "/ping" and given["status"] == 200, given
    assert given["route"] == "/ping" and given["logger"] == "sbserver.access" and given["ms"] >= 0, given
    assert requests[run.ids["error"]]["status"] == 401
    assert run.ids["replaced"] in requests
    fn = [o for o in objects if o.get("event") == "function_run"]
    assert len(fn) == 1 and fn[0]["function"] == "hello" and fn[0]["trigger"] == "web", fn
    assert fn[0]["result"] == "ok" and fn[0]["app"] == PK, fn
    assert objects[-1]["msg"] == "sbserver stopped"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", given["time"]), given["time"]


def test_task_runs_are_logged(tmp_path: Path) -> None:
    def traffic(http: httpx.Client) -> dict[str, str]:
        r = http.post("/fn/add", json={"name": "tick", "trigger": "web", "code": HELLO}, headers=ROOT)
        assert r.status_code == 200, r.text
        body = {"name": "nightly", "type": "function", "value": "tick", "interval": "@daily", "meta": ""}
        r = http.post("/task", json=body, headers=ROOT)
        assert r.status_code == 200, r.text
        r = http.post(f"/task/{r.json()['id']}/run", headers=ROOT)
        assert r.status_code == 200, r.text
        return {}

    run = serve(tmp_path, [], traffic)
    assert run.code == 0, run.output[-3000:]
    tasks = run.lines("task nightly (function)")
    assert len(tasks) == 1 and re.search(r"task nightly \(function\) [0-9.]+ms success app=dev_memory_pk$", tasks[0])
    assert run.lines("function tick (task)"), run.output[-3000:]
