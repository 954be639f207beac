"""Security item 8: functions cannot be used to flood, hog the workers, read the server's
environment or read their secrets from the store.

Each test reproduces an attack that worked before: chat and database events triggered runs
without limit, one app's runs could hold every worker, workers inherited JWT_SECRET and the
database URL, and function secrets were stored as plain text.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from sbserver.crypto import PREFIX, SecretBox, SecretsUnreadable
from tests.functions.conftest import MakeFn
from tests.functions.support import FnApi, Process, server_process, unique

MARK = "function handle(channel, type, data) { log(String(data)); }"
SECRET_VALUE = "s3cret-" + uuid.uuid4().hex


async def set_limits(fn: FnApi, **limits: int | None) -> dict[str, int]:
    r = await fn.request("POST", "/fn/limits", fn.root, json=limits)
    assert r.status_code == 200, r.text
    got: dict[str, int] = r.json()["limits"]
    return got


async def test_chat_database_and_web_floods_are_rate_limited_per_user(make_fn: MakeFn) -> None:
    async with make_fn() as env:
        fn = env.api
        chat, col = unique("lobby"), unique("msgs")
        await fn.add_ok("onchat", chat, MARK)
        await fn.add_ok("ondb", f"db-{col}", MARK)
        await fn.add_ok("web", "web", 'function handle() { log("web"); }')
        assert (await set_limits(fn, eventRate=3))["eventRate"] == 3
        flooder, other = await fn.register(), await fn.register()
        for i in range(8):  # chan_out used to be exempt from every limit
            await fn.publish(flooder.jwt, chat, "chan_out", f"flood{i}")
        await fn.publish(other.jwt, chat, "chan_out", "marker")  # another user's bucket
        runs = await fn.runs("onchat", 4)
        assert any(r["output"][1] == "marker" for r in runs), runs
        assert sorted(r["output"][1] for r in await fn.settled("onchat", 4)) == [
            "flood0",
            "flood1",
            "flood2",
            "marker",
        ]
        dbuser = await fn.register()
        await fn.create_bulk(dbuser.jwt, col, [{"i": i} for i in range(6)])  # a bulk write of 6 documents
        await fn.create(other.jwt, col, {"i": "marker"})
        await fn.runs("ondb", 4)
        await fn.settled("ondb", 4)
        caller = await fn.register()  # web calls count with the user's chat and database events
        for _ in range(3):
            await fn.exec_ok("web", caller.jwt)
        r = await fn.exec("web", caller.jwt)
        assert r.status_code == 429 and "too many function runs" in r.text and "eventRate" in r.text, r.text


async def test_the_apps_own_root_and_its_tasks_count_against_the_app_rate(make_fn: MakeFn) -> None:
    async with make_fn() as env:
        fn = env.api
        channel = unique("custom")
        await fn.add_ok("oncustom", channel, MARK)
        await set_limits(fn, appRate=4)
        for i in range(6):
            await fn.publish(fn.root, channel, "custom-type", f"root{i}")
        await fn.settled("oncustom", 4, extra=0.5)
        r = await fn.sudo_exec("oncustom", {})
        assert r.status_code == 429 and "appRate" in r.text, r.text


async def test_limits_are_checked_and_only_lowered(make_fn: MakeFn) -> None:
    async with make_fn(function_event_rate_per_minute=50) as env:
        fn = env.api
        r = await fn.request("GET", "/fn/limits", fn.root)
        assert r.status_code == 200 and r.json()["limits"]["eventRate"] == 50 and r.json()["own"] == {}, r.text
        for body, reason in (
            ({"eventRate": 51}, "above this server's 50 (SB_FUNCTION_EVENT_RATE_PER_MINUTE)"),
            ({"eventRate": "7"}, "expected an integer"),
            ({"nope": 1}, "unknown limit 'nope'"),
            ({"concurrency": 0}, "at least 1 run"),
            ([1], "expected an object of limits"),
        ):
            r = await fn.request("POST", "/fn/limits", fn.root, json=body)
            assert r.status_code == 400 and reason in r.text, (body, r.text)
        user = await fn.register()
        r = await fn.request("POST", "/fn/limits", user.jwt, json={"eventRate": 1})
        assert r.status_code in (400, 401, 403) and "root token" in r.text, r.text
        assert (await set_limits(fn, eventRate=10))["eventRate"] == 10
        assert (await set_limits(fn, eventRate=None))["eventRate"] == 50


async def test_defaults_let_a_live_chat_through(make_fn: MakeFn) -> None:
    """The founding tutorial's shape with the default settings: every message of a lively chat runs."""
    async with make_fn() as env:
        fn = env.api
        await fn.add_ok("new_msg", "lobby", MARK)
        a, b = await fn.register(), await fn.register()
        for i in range(30):
            await fn.publish((a if i % 2 else b).jwt, "lobby", "chan_out", f"m{i}")
        await fn.settled("new_msg", 30)


async def test_one_apps_long_runs_do_not_starve_another_app(make_fn: MakeFn) -> None:
    async with make_fn(
        function_workers=2, function_concurrency=2, function_app_concurrency=1, function_timeout=10
    ) as env:
        hog, other = env.api, await env.api.new_app()
        spin = 'function handle() { var t = Date.now(); while (Date.now() - t < 3000) {} log("spun"); }'
        await hog.add_ok("spin", "spin-channel", spin)
        await other.add_ok("quick", "quick-channel", 'function handle() { log("quick"); }')
        for _ in range(4):
            await hog.publish(hog.root, "spin-channel", "go")
        # the hog's first run has started (it holds its one slot) before the other app's event
        await asyncio.sleep(0.3)
        await other.publish(other.root, "quick-channel", "go")
        [run] = await other.runs("quick", 1, timeout=2.5)
        assert run["success"], run
        assert (await hog.info("spin"))["history"] == [], "the other app waited for the hog's runs"


async def test_task_count_is_capped_per_app(make_fn: MakeFn) -> None:
    async with make_fn(task_max_per_app=2) as env:
        fn = env.api
        await fn.add_ok("tick", "web", 'function handle() { log("t"); }')
        body = {"type": "function", "value": "tick", "interval": "@every 1h", "meta": ""}
        for i in range(2):
            r = await fn.request("POST", "/task", fn.root, json={**body, "name": f"t{i}"})
            assert r.status_code == 200, r.text
        r = await fn.request("POST", "/task", fn.root, json={**body, "name": "t2"})
        assert r.status_code == 409 and "too many tasks" in r.text and "2" in r.text, r.text
        second = await fn.new_app()
        await second.add_ok("tick", "web", 'function handle() { log("t"); }')
        await set_limits(second, tasks=1)
        r = await second.request("POST", "/task", second.root, json={**body, "name": "a"})
        assert r.status_code == 200, r.text
        r = await second.request("POST", "/task", second.root, json={**body, "name": "b"})
        assert r.status_code == 409 and "limit of 1" in r.text, r.text


# --- the worker's environment ---------------------------------------------------------------

SECRETS_ENV = {
    "JWT_SECRET": "jwt-" + uuid.uuid4().hex,
    "APP_SECRET": "app-" + uuid.uuid4().hex,
    "REDIS_PASSWORD": "redispw-" + uuid.uuid4().hex,
    "SMTP_PASSWORD_FOR_TEST": "smtppw-" + uuid.uuid4().hex,
}


@pytest.fixture(scope="module")
def env_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    workdir = tmp_path_factory.mktemp("fn-env")
    env = {**SECRETS_ENV, "DATABASE_URL": str(workdir / f"store-{uuid.uuid4().hex}.db")}
    with server_process(workdir, env) as proc:
        yield proc


def worker_pids(server_pid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == server_pid and b"sbserver.runtime.worker" in cmdline:
            pids.append(int(stat.parent.name))
    return pids


async def test_workers_hold_nothing_of_the_servers_environment(env_server: Process) -> None:
    secrets = [*SECRETS_ENV.values(), "store-"]
    async with httpx.AsyncClient(timeout=30) as http:
        fn = await FnApi(http, "", "", env_server.url).new_app()
        probe = (
            "function handle() { var names = Object.getOwnPropertyNames(globalThis);"
            " log(JSON.stringify({names: names, process: typeof process, std: typeof std, os: typeof os,"
            " require: typeof require, env: typeof env}));"
            " for (var i = 0; i < names.length; i++) { try { log(names[i] + '=' + JSON.stringify(globalThis[names[i]])); }"
            " catch (e) {} } }"
        )
        await fn.add_ok("probe", "web", probe)
        user = await fn.register()
        run = await fn.exec_ok("probe", user.jwt)
    seen = json.loads(run["output"][1])
    assert (seen["process"], seen["std"], seen["os"], seen["require"], seen["env"]) == ("undefined",) * 5, seen
    text = "\n".join(run["output"])
    assert not [s for s in secrets if s in text], text[:2000]
    pids = worker_pids(env_server.pid)
    assert pids, "no worker process found under the server"
    for pid in pids:
        environ = Path(f"/proc/{pid}/environ").read_bytes().decode()
        names = sorted(entry.split("=", 1)[0] for entry in environ.split("\0") if entry)
        assert not [s for s in secrets if s in environ], (pid, names)
        assert set(names) <= {"PATH", "LANG", "LC_ALL", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH"}, (
            names
        )


# --- secrets at rest --------------------------------------------------------------------------


async def raw_secrets(env: object, name: str) -> str:
    """The function's secrets as the store holds them, read with a connection of the test's own."""
    server = env.server  # type: ignore[attr-defined]
    settings = server.services.settings
    base = await env.base()  # type: ignore[attr-defined]
    if settings.data_store == "sqlite":
        with sqlite3.connect(settings.sqlite_path) as db:
            row = db.execute("SELECT secrets FROM functions WHERE base = ? AND name = ?", (base.name, name)).fetchone()
        return str(row[0])
    conn = await asyncpg.connect(settings.database_url)
    try:
        return str(await conn.fetchval(f'SELECT secrets FROM "{base.name}".functions WHERE name = $1', name))
    finally:
        await conn.close()


async def write_raw_secrets(env: object, name: str, value: str) -> None:
    server = env.server  # type: ignore[attr-defined]
    settings = server.services.settings
    base = await env.base()  # type: ignore[attr-defined]
    if settings.data_store == "sqlite":
        db = sqlite3.connect(settings.sqlite_path, timeout=10)
        try:
            db.execute("UPDATE functions SET secrets = ? WHERE base = ? AND name = ?", (value, base.name, name))
            db.commit()
        finally:
            db.close()
        return
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(f'UPDATE "{base.name}".functions SET secrets = $1 WHERE name = $2', value, name)
    finally:
        await conn.close()


# logged reversed: the run's log (stored in plain text) must not hold the secret either
READ_SECRETS = 'function handle() { log(String(secrets.apiKey).split("").reverse().join("") + "|" + secrets.other); }'


def rev(text: str) -> str:
    return text[::-1]


async def test_secrets_are_encrypted_at_rest_and_read_back(make_fn: MakeFn) -> None:
    async with make_fn() as env:
        fn = env.api
        await fn.add_ok("uses", "web", READ_SECRETS, secrets=f"apiKey={SECRET_VALUE}&other=two")
        user = await fn.register()
        assert (await fn.exec_ok("uses", user.jwt))["output"][1] == f"{rev(SECRET_VALUE)}|two"
        stored = await raw_secrets(env, "uses")
        assert stored.startswith(PREFIX) and SECRET_VALUE not in stored and "apiKey" not in stored, stored
        settings = env.server.services.settings
        if settings.data_store == "sqlite":  # nowhere in the file (nor its write-ahead log)
            for path in (settings.sqlite_path, Path(f"{settings.sqlite_path}-wal")):
                if path.exists():
                    assert SECRET_VALUE.encode() not in path.read_bytes(), path
        # an update with new secrets seals them too; one without keeps them
        info = await fn.info("uses")
        r = await fn.update({"id": info["id"], "trigger": "web", "code": READ_SECRETS, "secrets": "apiKey=new&other=3"})
        assert r.status_code == 200, r.text
        assert (await fn.exec_ok("uses", user.jwt))["output"][1] == "wen|3"
        r = await fn.update({"id": info["id"], "trigger": "web", "code": READ_SECRETS + " "})
        assert r.status_code == 200, r.text
        assert (await fn.exec_ok("uses", user.jwt))["output"][1] == "wen|3"
        assert "new" not in (await raw_secrets(env, "uses"))[len(PREFIX) :]


async def test_plain_text_secrets_are_encrypted_by_the_migration(make_fn: MakeFn) -> None:
    async with make_fn() as env:
        fn = env.api
        await fn.add_ok("legacy", "web", READ_SECRETS, secrets="apiKey=placeholder")
        await write_raw_secrets(env, "legacy", f"apiKey={SECRET_VALUE}&other=old")  # as stored before encryption
        functions = env.server.services.functions
        assert await functions.seal_stored_secrets() == 1
        stored = await raw_secrets(env, "legacy")
        assert stored.startswith(PREFIX) and SECRET_VALUE not in stored, stored
        assert await functions.seal_stored_secrets() == 0  # once only
        user = await fn.register()
        assert (await fn.exec_ok("legacy", user.jwt))["output"][1] == f"{rev(SECRET_VALUE)}|old"


async def test_a_wrong_app_secret_gives_a_clear_error(make_fn: MakeFn) -> None:
    async with make_fn() as env:
        fn = env.api
        await fn.add_ok("guarded", "web", READ_SECRETS, secrets=f"apiKey={SECRET_VALUE}")
        functions = env.server.services.functions
        right = functions.box
        functions.box = SecretBox(b"another-app-secret-" + uuid.uuid4().hex.encode())
        try:
            user = await fn.register()
            r = await fn.exec("guarded", user.jwt)
            assert r.status_code == 500 and "cannot be decrypted: APP_SECRET" in r.text, r.text
            [run] = await fn.runs("guarded", 1)
            assert run["success"] is False and "APP_SECRET" in run["output"][-1], run
            assert SECRET_VALUE not in json.dumps(run)
        finally:
            functions.box = right
        assert (await fn.exec_ok("guarded", user.jwt))["output"][1] == f"{rev(SECRET_VALUE)}|undefined"
        with pytest.raises(SecretsUnreadable, match="APP_SECRET"):
            SecretBox(b"x" * 32).open(await raw_secrets(env, "guarded"), "anything")
