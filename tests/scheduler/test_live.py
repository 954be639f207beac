"""The three kinds of task end to end on a real server process, in real time.

A message task reaching the real ``@staticbackend/js`` client over SSE; a function task's runs in
``/fn/info`` history; http tasks against a recording HTTP server (method, content type, headers
from meta, bodies, the ``<name>-http-response`` channel); and an ``@every 1s`` task running
repeatedly while the real ``backend`` CLI lists, shows and deletes it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.functions.support import Process
from tests.realtime.support import register
from tests.scheduler.support import ECHO_FN, Target, TaskApi, echo_args, parse_time, sse_member, unique

pytestmark = pytest.mark.timeout(60)

HERE = Path(__file__).resolve().parent


async def test_message_task_reaches_the_real_js_client(live_api: TaskApi, js_client_dir: Path) -> None:
    api = live_api
    channel = unique("c")
    user = await register(api.http, api.url, api.pk)
    task = await api.add_task(
        unique("msg"), "message", "ping", "@every 1s", f'{{"channel":"{channel}","data":"hello"}}'
    )
    node = shutil.which("node") or "node"
    proc = await asyncio.create_subprocess_exec(
        node,
        str(HERE / "js_listen.mjs"),
        str(js_client_dir),
        api.url,
        api.pk,
        user.jwt,
        channel,
        "3",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    assert result["joined"], result
    pings = [m for m in result["messages"] if m["type"] == "ping"]
    assert len(pings) >= 2, f"{len(pings)} task message(s) in 3 s: {result['messages']}"
    for msg in pings:
        assert {k: msg[k] for k in ("type", "channel", "data")} == {"type": "ping", "channel": channel, "data": "hello"}
        assert msg["sid"] == task["id"], msg


async def test_function_task_runs_are_in_the_function_history(live_api: TaskApi) -> None:
    api = live_api
    with_data, without = unique("fd"), unique("fn")
    await api.add_fn(with_data, ECHO_FN)
    await api.add_fn(without, ECHO_FN, trigger="some_dummy_topic")  # the trigger plays no part
    t1 = await api.add_task(
        unique("job"), "function", with_data, "@every 1s", '{"data":"{\\"n\\":[1,2],\\"s\\":\\"x\\"}"}'
    )
    t2 = await api.add_task(unique("job"), "function", without, "@every 1s")
    h1 = await api.wait_history(with_data, 1)
    h2 = await api.wait_history(without, 1)
    await api.delete_task(t1["id"])
    await api.delete_task(t2["id"])
    assert h1[0]["success"] and h2[0]["success"], (h1, h2)
    assert echo_args(h1[0])["args"] == [t1["name"], "fn_call", {"n": [1, 2], "s": "x"}]
    assert echo_args(h2[0]) == {"args": [t2["name"], "fn_call", None], "isNull": True}
    assert h1[0]["output"][0] == "Function started" and h1[0]["output"][-1] == "Function completed", h1[0]


async def test_http_tasks_send_method_type_headers_and_bodies(live_api: TaskApi, target: Target) -> None:
    api = live_api
    cases: dict[str, dict[str, Any]] = {
        "json-put": {
            "method": "PUT",
            "ct": "application/json",
            "HTTPHeaders": '{"X-Api-Key": "k1", "X-Trace": "t-1"}',
            "data": '{"a": 1, "b": "two"}',
        },
        "form-post": {"headers": {"X-Obj": "o-1", "Authorization": "Bearer abc"}, "data": '{"q": "a b", "n": "5"}'},
        "get-lower": {"method": "GET", "httpheaders": '{"X-Lower": "yes"}'},
        "patch-text": {"method": "PATCH", "ct": "text/plain", "data": '{"t": "v"}'},
    }
    names: dict[str, str] = {}
    paths: dict[str, str] = {}
    for label in cases:
        names[label], paths[label] = unique(label), "/" + unique(label)
    reply_channel = f"{names['json-put']}-http-response"
    async with sse_member(api, reply_channel) as member:
        for label, meta in cases.items():
            await api.add_task(names[label], "http", target.url + paths[label], "@every 1s", json.dumps(meta))
        got = {label: (await target.wait(path))[0] for label, path in paths.items()}
        env = await member.expect("http_response", timeout=5)
    await api.cleanup()

    put = got["json-put"]
    assert put["method"] == "PUT"
    assert put["headers"]["content-type"] == "application/json"
    assert put["headers"]["x-api-key"] == "k1" and put["headers"]["x-trace"] == "t-1", put["headers"]
    assert put["body"] == '{"a": 1, "b": "two"}'

    post = got["form-post"]
    assert post["method"] == "POST"
    assert post["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert post["headers"]["x-obj"] == "o-1" and post["headers"]["authorization"] == "Bearer abc", post["headers"]
    assert parse_qs(post["body"]) == {"q": ["a b"], "n": ["5"]}, post["body"]

    get = got["get-lower"]
    assert get["method"] == "GET" and get["body"] == "", get
    assert get["headers"]["x-lower"] == "yes", get["headers"]

    patch = got["patch-text"]
    assert patch["method"] == "PATCH" and patch["headers"]["content-type"] == "text/plain", patch
    assert parse_qs(patch["body"]) == {"t": ["v"]}, patch["body"]

    # The members of <name>-http-response got the response body.
    assert env["channel"] == reply_channel and env["type"] == "http_response", env
    assert json.loads(env["data"])["path"] == paths["json-put"], env


def _cli(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    backend = Path(sys.executable).parent / "backend"
    cmd = [str(backend)] if backend.exists() else [sys.executable, "-m", "sbserver"]
    env = {k: v for k, v in os.environ.items() if k.upper() not in ("PUBKEY", "REGION", "ROOTTOKEN", "AUTHTOKEN")}
    env["HOME"] = str(workdir)  # no user-level config
    return subprocess.run([*cmd, *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=30)


async def test_every_second_task_runs_repeatedly_and_the_cli_manages_it(
    live: Process, live_api: TaskApi, tmp_path: Path
) -> None:
    api = live_api
    fn = unique("f")
    await api.add_fn(fn, ECHO_FN)
    (tmp_path / ".backend.yml").write_text(
        f"pubKey: {api.pk}\nregion: {live.url}\nrootToken: {api.root}\nemail: a@b.c\npassword: x\nauthToken: \n"
    )
    name = unique("cli")
    meta = '{"data":"{\\"from\\":\\"cli\\"}"}'
    cli = await asyncio.to_thread(
        _cli, tmp_path, "task", "add", "--name", name, "--type", "function", "--value", fn, "--interval", "@every 1s",
        "--meta", meta,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert f"SUCCESS ▶ Task {name} created successfully" in cli.stdout, cli.stdout
    task_id = cli.stdout.split("Task ID:", 1)[1].split()[0]
    started = asyncio.get_running_loop().time()

    listing = await asyncio.to_thread(_cli, tmp_path, "task", "list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0] == "1 result(s)", listing.stdout
    assert lines[1].split() == ["ID", "NAME", "TYPE", "VALUE", "INTERVAL", "LAST", "RUN"], listing.stdout
    assert lines[2].split()[:4] == [task_id, name, "function", fn], listing.stdout

    # >= 2 runs within ~3 s: distinct ticks a second apart, each started on time.
    runs = await api.wait_runs(task_id, 2, timeout=max(1.0, started + 3.5 - asyncio.get_running_loop().time()))
    ok = [r for r in runs if r["outcome"] == "success"]
    assert len(ok) >= 2, runs
    dues = [parse_time(r["due"]) for r in ok]
    assert len(set(dues)) == len(dues) and all(b - a >= 0.99 for a, b in itertools.pairwise(dues)), dues
    assert all(parse_time(r["started"]) - parse_time(r["due"]) < 1.5 for r in ok), ok
    history = await api.history(fn)
    assert len(history) >= 2 and echo_args(history[0])["args"] == [name, "fn_call", {"from": "cli"}]

    info = await asyncio.to_thread(_cli, tmp_path, "task", "info", task_id)
    assert info.returncode == 0, info.stderr
    row = info.stdout.splitlines()[1]
    assert task_id in row and name in row and "never" not in row, info.stdout
    assert "META" in info.stdout and meta in info.stdout, info.stdout

    deleted = await asyncio.to_thread(_cli, tmp_path, "task", "delete", task_id)
    assert deleted.returncode == 0, deleted.stderr
    assert f"SUCCESS ▶ Task {task_id} has been deleted" in deleted.stdout, deleted.stdout
    r = await api.request("GET", f"/task/{task_id}")
    assert r.status_code == 404 and r.text == "task not found\n", r.text
    assert await api.tasks() == []
