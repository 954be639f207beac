"""Spec 10 items 73-79: what triggers a function, in-process on every store kind.

Messages come from ``/publish`` and database writes (the same hook chat messages go through);
the chat transports themselves are exercised on a real server in ``test_realtime.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from sbserver.ids import new_ordered_id, now_iso
from sbserver.services.functions import identity_dict
from sbserver.settings import from_env
from sbserver.types import FunctionDef, Job
from tests.functions.conftest import InProcess, MakeFn
from tests.functions.support import ECHO_ARGS, FnApi, logged, unique

# The shared in-process server lives in the session's event loop (see conftest).
pytestmark = pytest.mark.asyncio(loop_scope="session")

MARK = 'function handle() { log("ran"); }'


def args_of(run: dict) -> dict:
    [seen] = logged(run)
    return seen


async def test_f73_db_trigger_gets_channel_type_doc_and_its_update_persists(fn: FnApi) -> None:
    code = """function handle(channel, type, data) {
      log(JSON.stringify({n: arguments.length, channel: channel, type: type, data: data}));
      if (type === "db_created") {
        var r = update("coltrigger", data.id, {seen: true});
        log(JSON.stringify({updated: r.ok}));
      }
    }"""
    await fn.add_ok("f73", "db-coltrigger", code)
    user = await fn.register()
    doc = await fn.create(user.jwt, "coltrigger", {"title": "a"})
    runs = await fn.runs("f73", 2)  # db_created, then db_updated caused by the function itself
    created = logged(runs[0])
    assert created[0]["n"] == 3 and created[0]["channel"] == "db-coltrigger", created
    assert created[0]["type"] == "db_created" and created[0]["data"]["id"] == doc["id"], created
    assert created[0]["data"]["title"] == "a", created
    assert created[1] == {"updated": True}, created
    r = await fn.request("GET", f"/db/coltrigger/{doc['id']}", user.jwt)
    assert r.status_code == 200 and r.json()["seen"] is True, r.text
    updated = logged(runs[1])
    assert updated[0]["type"] == "db_updated" and updated[0]["data"]["seen"] is True, updated
    runs = await fn.settled("f73", 2)
    # a delete reaches the function with the id as data
    r = await fn.request("DELETE", f"/db/coltrigger/{doc['id']}", user.jwt)
    assert r.status_code == 200, r.text
    runs = await fn.runs("f73", 3)
    deleted = logged(runs[2])[0]
    assert deleted["type"] == "db_deleted" and deleted["data"] == doc["id"], deleted


async def test_f74_type_trigger_db_created_runs_for_any_collection_with_three_args(fn: FnApi) -> None:
    await fn.add_ok("f74", "db_created", ECHO_ARGS)
    user = await fn.register()
    one = await fn.create(user.jwt, "col74a", {"v": 1})
    two = await fn.create(user.jwt, "col74b", {"v": 2})
    runs = await fn.settled("f74", 2)
    seen = sorted((args_of(r) for r in runs), key=lambda s: s["a"])
    assert [s["n"] for s in seen] == [3, 3], seen
    assert [(s["a"], s["b"], s["c"]["id"]) for s in seen] == [
        ("db-col74a", "db_created", one["id"]),
        ("db-col74b", "db_created", two["id"]),
    ], seen


async def test_a_one_argument_db_created_function_gets_the_whole_message(fn: FnApi) -> None:
    """Decision 1's legacy form: the message as a chat client sees it, data as JSON text."""
    code = "function handle(msg) { log(JSON.stringify({keys: Object.keys(msg), msg: msg})); }"
    await fn.add_ok("flegacy", "db_created", code)
    user = await fn.register()
    doc = await fn.create(user.jwt, "collegacy", {"v": 1})
    [run] = await fn.settled("flegacy", 1)
    [seen] = logged(run)
    assert seen["keys"] == ["sid", "type", "data", "channel", "token", "auth", "base"], seen
    msg = seen["msg"]
    assert msg["type"] == "db_created" and msg["channel"] == "db-collegacy", msg
    assert json.loads(msg["data"]) == doc, msg
    assert msg["auth"]["userId"] == user.user_id and msg["token"] == "" and msg["auth"]["email"] == "", msg


async def test_f75_channel_trigger_runs_on_a_published_custom_type(fn: FnApi) -> None:
    await fn.add_ok("f75", "custom-channel", ECHO_ARGS)
    user = await fn.register()
    await fn.publish(user.jwt, "custom-channel", "do-something-custom", {"k": 75})
    [run] = await fn.settled("f75", 1)
    assert args_of(run) == {"n": 3, "a": "custom-channel", "b": "do-something-custom", "c": {"k": 75}}, run
    # a root token may publish too (scheduler and admin tools do)
    await fn.publish(fn.root, "custom-channel", "do-something-custom", "plain")
    runs = await fn.settled("f75", 2)
    assert args_of(runs[-1])["c"] == "plain", runs


async def test_f76_custom_types_are_limited_to_5_per_user_per_minute(fn: FnApi) -> None:
    custom, chat, col = unique("c76"), unique("chat76"), unique("col76")
    await fn.add_ok("f76", custom, MARK)
    await fn.add_ok("f76chat", chat, MARK)
    await fn.add_ok("f76db", f"db-{col}", MARK)
    user, other = await fn.register(), await fn.register()
    for i in range(7):
        await fn.publish(user.jwt, custom, "custom-type", str(i))
    await fn.settled("f76", 5, extra=0.6)
    # the same user, past the limit: chan_out and database events still trigger every time
    for i in range(7):
        await fn.publish(user.jwt, chat, "chan_out", str(i))
    await fn.create_bulk(user.jwt, col, [{"i": i} for i in range(7)])
    await fn.settled("f76chat", 7)
    await fn.settled("f76db", 7)
    # and the bucket is the user's: another user still gets a run
    await fn.publish(other.jwt, custom, "custom-type", "other")
    await fn.settled("f76", 6)


async def test_f77_functions_of_one_app_ignore_messages_of_another(fn: FnApi) -> None:
    other = await fn.new_app()
    channel, col = unique("shared77"), unique("col77")
    await fn.add_ok("f77", channel, MARK)
    await fn.add_ok("f77db", f"db-{col}", MARK)
    await other.add_ok("f77", channel, MARK)
    await other.add_ok("f77db", f"db-{col}", MARK)
    user = await other.register()
    await other.publish(user.jwt, channel, "chan_out", "x")
    await other.create(user.jwt, col, {"v": 1})
    await other.settled("f77", 1)
    await other.settled("f77db", 1)
    assert (await fn.info("f77"))["history"] == []
    assert (await fn.info("f77db"))["history"] == []


async def test_f78_another_primary_instance_means_no_triggered_runs_here(make_fn: MakeFn) -> None:
    assert (
        from_env(
            {"APP_ENV": "dev", "PRIMARY_INSTANCE_HOSTNAME": "other-host", "JWT_SECRET": "x", "APP_SECRET": "x"}
        ).primary_instance
        == "other-host"
    )
    async with make_fn(primary_instance="other-host", function_poll_seconds=0.2) as env:
        fn = env.api
        channel, col = unique("c78"), unique("col78")
        await fn.add_ok("f78", channel, MARK)
        await fn.add_ok("f78db", f"db-{col}", MARK)
        await fn.add_ok("f78type", "chan_out", MARK)
        user = await fn.register()
        await fn.publish(user.jwt, channel, "chan_out", "x")
        await fn.create(user.jwt, col, {"v": 1})
        await asyncio.sleep(1.0)  # five poll periods
        for name in ("f78", "f78db", "f78type"):
            assert (await fn.info(name))["history"] == [], name
        # /fn/exec is a request, not a trigger: it still runs here
        await fn.add_ok("f78web", "web", MARK)
        assert (await fn.exec_ok("f78web", user.jwt, {}))["output"][1] == "ran"


async def test_f79_a_triggered_function_that_does_not_compile_records_a_failed_run(env: InProcess) -> None:
    """The save-time check refuses such code, so it is stored directly (code saved by an older version)."""
    fn = env.api
    base = await env.base()
    channel = unique("c79")
    broken = "function handle(channel, type, data) {\n  log(;\n}\n"
    await env.store.create_function(base, FunctionDef("id-f79", "f79", channel, broken, 1, "2024-01-01T00:00:00Z"))
    await env.store.create_function(
        base, FunctionDef("id-f79b", "f79nohandle", channel, "var x = 1;", 1, "2024-01-01T00:00:00Z")
    )
    user = await fn.register()
    await fn.publish(user.jwt, channel, "chan_out", "x")
    [run] = await fn.settled("f79", 1)
    assert run["success"] is False, run
    assert run["output"][0] == "Function started" and len(run["output"]) == 2, run
    assert "SyntaxError" in run["output"][1], run
    [run] = await fn.settled("f79nohandle", 1)
    assert run["success"] is False and run["output"] == ["Function started", 'unable to find function "handle"'], run
    assert (await fn.info("f79"))["lastRun"] != "0001-01-01T00:00:00Z"


async def test_f72_channel_trigger_via_publish_gets_three_args(fn: FnApi) -> None:
    """Item 72 through /publish; the chat transports are in test_realtime."""
    code = "function handle(channel, type, data) { log(JSON.stringify({n: arguments.length, a: channel, b: type, c: data})); }"
    await fn.add_ok("f72", "lobby", code)
    user = await fn.register()
    await fn.publish(user.jwt, "lobby", "chan_out", json.dumps({"from": "a", "body": "hi"}))
    [run] = await fn.settled("f72", 1)
    seen = args_of(run)
    assert (seen["n"], seen["a"], seen["b"], seen["c"]) == (3, "lobby", "chan_out", {"from": "a", "body": "hi"})


async def test_f74_a_function_matching_channel_and_type_runs_once(fn: FnApi) -> None:
    """Spec 05 §3: a trigger equal to both the channel and the type of a message runs once."""
    await fn.add_ok("f74both", "same74", ECHO_ARGS)
    user = await fn.register()
    start = time.monotonic()
    await fn.publish(user.jwt, "same74", "same74", "x")
    await fn.settled("f74both", 1)
    assert time.monotonic() - start < 10


async def test_a_queue_longer_than_the_lease_runs_each_job_once(make_fn: MakeFn) -> None:
    """Jobs waiting behind slow runs outlive their first lease; the process holding them keeps
    the lease alive, so its own poller never takes them for a dead process's jobs."""
    async with make_fn(function_workers=1, function_lease_seconds=1.0, function_poll_seconds=0.1) as env:
        fn = env.api
        col = unique("colq")
        slow = """function handle(channel, type, doc) {
          var t = Date.now(); while (Date.now() - t < 250) {}
          create("derivedq", {src: doc.id});
        }"""
        await fn.add_ok("fq", f"db-{col}", slow)
        user = await fn.register()
        sources = [await fn.create(user.jwt, col, {"i": i}) for i in range(10)]  # about 2.5 s of runs
        history = await fn.runs("fq", 10, timeout=30)
        await asyncio.sleep(1.5)  # a second, stolen run of any job would land by now
        history = (await fn.info("fq"))["history"]
        assert len(history) == 10 and all(h["success"] for h in history), history
        r = await fn.request("GET", "/sudo/derivedq", fn.root, params={"size": "100"})
        assert sorted(d["src"] for d in r.json()["results"]) == sorted(s["id"] for s in sources)


async def test_a_process_never_runs_its_own_queued_job_twice(make_fn: MakeFn) -> None:
    """If the process stalls past its jobs' leases (the lease keeper is switched off here to
    make it happen), its poller claims them again; those it still holds are not run again."""
    async with make_fn(function_workers=1, function_lease_seconds=0.3, function_poll_seconds=0.05) as env:

        async def stalled() -> None:
            return None

        env.server.services.functions._keep_leases = stalled  # type: ignore[method-assign]
        fn = env.api
        col = unique("colstall")
        slow = "function handle(channel, type, doc) { var t = Date.now(); while (Date.now() - t < 200) {} }"
        await fn.add_ok("fstall", f"db-{col}", slow)
        user = await fn.register()
        await fn.create_bulk(user.jwt, col, [{"i": i} for i in range(6)])  # about 1.2 s of runs
        await fn.runs("fstall", 6, timeout=30)
        await asyncio.sleep(1.0)  # a second run of any job would land by now
        history = (await fn.info("fstall"))["history"]
        assert len(history) == 6, [h["started"] for h in history]


async def test_an_internal_error_in_a_triggered_run_is_recorded_not_dropped(make_fn: MakeFn) -> None:
    """Fault injection: the pool breaks in a way no worker outcome covers; the event's run is in
    the function's history as failed with the reason, rather than vanishing with the job."""
    async with make_fn() as env:
        col = unique("broken")
        await env.api.add_ok("broken", f"db-{col}", "function handle() { log('never'); }")
        functions = env.server.services.functions

        async def broken_run(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("injected pool failure")

        functions.pool.run = broken_run
        user = await env.api.register()
        await env.api.create(user.jwt, col, {"a": 1})
        [run] = await env.api.runs("broken", 1)
        assert run["success"] is False, run
        assert run["output"] == ["Function started", "internal error: RuntimeError: injected pool failure"], run


async def test_a_write_is_acknowledged_only_once_its_function_jobs_are_stored(make_fn: MakeFn) -> None:
    """Issue 5 (6): an event accepted just before the process dies still runs. The client's 201
    is that acceptance, so it waits for the job rows; the queue write is slowed here (fault
    injection) to make the order observable. The jobs stay unclaimed: another host runs them."""
    async with make_fn(primary_instance="other-host") as env:
        col = unique("ack")
        await env.api.add_ok("ack", f"db-{col}", MARK)
        store = env.store
        enqueue = store.enqueue_jobs

        async def slow_enqueue(*args: Any, **kwargs: Any) -> None:
            await asyncio.sleep(0.3)
            await enqueue(*args, **kwargs)

        store.enqueue_jobs = slow_enqueue
        user = await env.api.register()
        doc = await env.api.create(user.jwt, col, {"v": 1})
        jobs = await store.claim_jobs("test-owner", time.time(), time.time() + 60, 100)
        assert [job.payload["args"][2]["id"] for job in jobs] == [doc["id"]], jobs
        # the job says who it runs as, but does not keep the user's secret token
        [stored] = await store.users_of_account(await env.base(), user.account_id)
        assert jobs[0].payload["identity"]["u"] == stored.id
        assert stored.token not in json.dumps(jobs[0].payload)


async def test_new_documents_and_their_jobs_share_one_transaction(make_fn: MakeFn) -> None:
    """Once the app's triggers are known to the process, a created document's function jobs are
    written in the document's own transaction: the separate queue write is not used at all (it
    is broken here), and the job is there when the 201 is."""
    async with make_fn(primary_instance="other-host") as env:
        col = unique("tx")
        await env.api.add_ok("txfn", f"db-{col}", MARK)
        user = await env.api.register()
        store = env.store
        await env.api.create(user.jwt, col, {"warm": True})  # through the dispatcher: triggers now known
        await asyncio.sleep(0.2)
        await store.claim_jobs("test-owner", time.time(), time.time() + 60, 100)  # take that one away

        async def broken_enqueue(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("the separate queue write must not be needed")

        store.enqueue_jobs = broken_enqueue
        docs = [await env.api.create(user.jwt, col, {"n": n}) for n in range(3)]
        jobs = await store.claim_jobs("test-owner", time.time(), time.time() + 60, 100)
        assert sorted(job.payload["args"][2]["id"] for job in jobs) == sorted(d["id"] for d in docs), jobs


async def test_a_burst_beyond_the_queue_limit_waits_in_the_store_and_runs_once(make_fn: MakeFn) -> None:
    """Memory stays bounded under any burst: past ``function_queue_limit`` jobs in hand, the
    jobs of new events are stored unclaimed and claimed as the queue runs low. Every event
    still runs exactly once, and in order: those left in the store before the newer ones."""
    limit = 4
    async with make_fn(function_workers=1, function_queue_limit=limit, function_history=100) as env:
        fn, functions = env.api, env.server.services.functions
        col = unique("burst")
        work = """function handle(channel, type, doc) {
          log(doc.n);
          var t = Date.now(); while (Date.now() - t < 5) {}
          create("derivedburst", {src: doc.id, n: doc.n});
        }"""
        await fn.add_ok("fburst", f"db-{col}", work)
        user = await fn.register()
        held: list[int] = []

        async def watch() -> None:
            while True:
                held.append(len(functions._held))
                await asyncio.sleep(0.002)

        watcher = asyncio.create_task(watch())
        try:
            await fn.create(user.jwt, col, {"n": -1})  # through the dispatcher: triggers now known
            await fn.create_bulk(user.jwt, col, [{"n": n} for n in range(30)])  # 30 jobs at once
            singles = [await fn.create(user.jwt, col, {"n": n}) for n in range(30, 40)]
            await fn.runs("fburst", 41, timeout=30)
        finally:
            watcher.cancel()
        await asyncio.sleep(0.3)  # a second run of any job would land by now
        history = (await fn.info("fburst"))["history"]
        assert max(held) <= limit, max(held)
        order = [int(run["output"][1]) for run in history]
        assert len(order) == 41 and order[0] == -1, order
        assert sorted(order[1:31]) == list(range(30)) and order[31:] == list(range(30, 40)), order
        r = await fn.request("GET", "/sudo/derivedburst", fn.root, params={"size": "100"})
        derived = r.json()["results"]
        assert len(derived) == 41 and len({d["src"] for d in derived}) == 41
        assert {s["id"] for s in singles} <= {d["src"] for d in derived}


async def test_the_queue_limit_setting_is_checked() -> None:
    assert from_env({"APP_ENV": "dev", "JWT_SECRET": "x", "APP_SECRET": "x"}).function_queue_limit == 1000
    assert (
        from_env(
            {"APP_ENV": "dev", "JWT_SECRET": "x", "APP_SECRET": "x", "SB_FUNCTION_QUEUE_LIMIT": " 50 "}
        ).function_queue_limit
        == 50
    )
    with pytest.raises(SystemExit, match="invalid SB_FUNCTION_QUEUE_LIMIT=0: expected at least 1"):
        from_env({"APP_ENV": "dev", "JWT_SECRET": "x", "APP_SECRET": "x", "SB_FUNCTION_QUEUE_LIMIT": "0"})
    with pytest.raises(SystemExit, match="invalid SB_FUNCTION_QUEUE_LIMIT='many': expected an integer"):
        from_env({"APP_ENV": "dev", "JWT_SECRET": "x", "APP_SECRET": "x", "SB_FUNCTION_QUEUE_LIMIT": "many"})


async def test_jobs_left_by_processes_that_only_enqueue_are_drained_in_batches(make_fn: MakeFn) -> None:
    """Jobs another process stored unclaimed (as a process that is not the primary instance
    does) are claimed a batch after another as the queue runs low, not a small batch per poll
    interval: 100 jobs run well before the poller's third tick."""
    async with make_fn(function_poll_seconds=3.0) as env:
        fn = env.api
        col = unique("left")
        await fn.add_ok("fleft", f"db-{col}", MARK)
        base = await env.base()
        [fdef] = [f for f in await env.store.functions(base) if f.name == "fleft"]
        ident = await env.server.services.tenancy.root_identity(base)
        jobs = [
            Job(
                new_ordered_id(),
                base.name,
                fdef.id,
                {"args": [f"db-{col}", "db_created", {"id": str(i)}], "legacy": None, "identity": identity_dict(ident)},
                now_iso(),
            )
            for i in range(100)
        ]
        await env.store.enqueue_jobs(jobs, "", 0.0)
        history = await fn.runs("fleft", 100, timeout=5.5)  # a poll of 16 every 3 s would need 21 s
        assert len(history) == 100 and all(h["success"] for h in history)
        assert await env.store.claim_jobs("test-owner", time.time(), time.time() + 60, 10) == []


async def test_a_function_that_triggers_itself_stops_after_the_chain_limit(fn: FnApi) -> None:
    """A function whose write triggers it again would run for ever (and fill the store): the
    chain of runs stops at SB_FUNCTION_MAX_CHAIN (8), and the last run's log says why."""
    col = unique("loop")
    code = "function handle(channel, type, doc) { create(" + f'"{col}"' + ", {from: doc.id}); }"
    await fn.add_ok("selfloop", f"db-{col}", code)
    user = await fn.register()
    await fn.create(user.jwt, col, {"seed": True})
    history = await fn.settled("selfloop", 8, extra=1.0)
    assert len(history) == 8 and all(run["success"] for run in history), history
    assert all(len(run["output"]) == 2 for run in history[:7]), history
    assert history[7]["output"][1] == (
        f"functions not triggered by db_created on db-{col}: this run is 8 functions deep (SB_FUNCTION_MAX_CHAIN is 8)"
    ), history[7]
    r = await fn.request("GET", f"/sudo/{col}", fn.root, params={"size": "100"})
    assert r.json()["total"] == 9  # the client's document and one per run


async def test_a_function_that_publishes_to_its_own_channel_stops_after_the_chain_limit(make_fn: MakeFn) -> None:
    async with make_fn(function_max_chain=3) as env:
        fn = env.api
        channel = unique("echo")
        code = 'function handle(channel, type, data) { publish(channel, "chan_out", data + "!"); }'
        await fn.add_ok("echoloop", channel, code)
        user = await fn.register()
        await fn.publish(user.jwt, channel, "chan_out", "hi")
        history = await fn.settled("echoloop", 3, extra=1.0)
        assert len(history) == 3 and all(run["success"] for run in history), history


async def test_the_chain_limit_setting_is_checked() -> None:
    assert from_env({"APP_ENV": "dev", "JWT_SECRET": "x", "APP_SECRET": "x"}).function_max_chain == 8
    assert (
        from_env(
            {"APP_ENV": "dev", "JWT_SECRET": "x", "APP_SECRET": "x", "SB_FUNCTION_MAX_CHAIN": "20"}
        ).function_max_chain
        == 20
    )
    with pytest.raises(SystemExit, match="invalid SB_FUNCTION_MAX_CHAIN=0: expected at least 1"):
        from_env({"APP_ENV": "dev", "JWT_SECRET": "x", "APP_SECRET": "x", "SB_FUNCTION_MAX_CHAIN": "0"})
