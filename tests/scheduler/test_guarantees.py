"""The scheduler's guarantees, with the injectable clock, on every store kind.

Once means once (spec 00 decision 13): two TaskService instances on one store (two in-process
apps on one SQLite file or one PostgreSQL database) ticking at the same instant run each due
tick exactly once. Never two runs at once: a tick that comes while the previous run still goes
is skipped and recorded as ``skipped``. After downtime a task runs once, not once per missed
tick. Editing the interval, disabling or deleting a task prevents the old tick on every
instance, even one that read the due list before the change.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from tests.scheduler.conftest import T0, Sched
from tests.scheduler.support import (
    BUSY_FN,
    ECHO_FN,
    Target,
    echo_args,
    parse_time,
    rfc3339,
    unique,
)

pytestmark = pytest.mark.timeout(60)


def _ran(runs: list[Any], task_id: str) -> list[Any]:
    return [r for r in runs if r.task_id == task_id]


async def test_exactly_one_run_per_due_tick_across_two_instances(pair: Sched) -> None:
    """Two ticks on each of two instances at the same instant, five due instants, eleven tasks."""
    api = pair.api
    fn = unique("fn")
    await api.add_fn(fn, ECHO_FN)
    function_task = await api.add_task(unique("job"), "function", fn, "@every 1m")
    message_tasks = [
        await api.add_task(unique("msg"), "message", "ping", "@every 1m", '{"channel":"c","data":"x"}')
        for _ in range(10)
    ]
    ids = [function_task["id"], *(t["id"] for t in message_tasks)]
    assert parse_time(function_task["next"]) == T0 + 60

    for k in range(1, 6):
        due = T0 + 60 * k
        runs = await pair.tick(due + 0.25 * (k % 2), on=(0, 1, 0, 1))
        per_task = Counter(r.task_id for r in runs if r.task_id in ids)
        assert per_task == Counter(ids), f"tick {k}: runs per task {per_task}"
        assert {r.due for r in runs if r.task_id in ids} == {due}
        assert all(r.outcome == "success" for r in runs if r.task_id in ids), runs

    for task_id in ids:
        recorded = await api.runs(task_id)
        dues = [r["due"] for r in recorded]
        assert dues == [rfc3339(T0 + 60 * k) for k in range(1, 6)], dues
    history = await api.history(fn)
    assert len(history) == 5, history
    assert echo_args(history[0])["args"][:2] == [function_task["name"], "fn_call"]


async def test_concurrent_instances_never_both_take_a_tick_after_downtime(pair: Sched) -> None:
    api = pair.api
    task = await api.add_task(unique("msg"), "message", "ping", "* * * * *", '{"channel":"c","data":"x"}')
    now = T0 + 10 * 60 + 5  # the scheduler was down for ten minutes
    runs = _ran(await pair.tick(now, on=(0, 1)), task["id"])
    assert len(runs) == 1, runs
    assert len(await api.runs(task["id"])) == 1


@pytest.mark.parametrize("kind", ["function", "http"])
async def test_a_tick_during_a_run_is_skipped_and_recorded(pair: Sched, kind: str, target: Target) -> None:
    """A run lasting ~1.5 s: the next ticks, on either instance, are skipped; none overlaps."""
    api = pair.api
    if kind == "function":
        fn = unique("busy")
        await api.add_fn(fn, BUSY_FN)
        task = await api.add_task(unique("busy"), "function", fn, "@every 1s")
    else:
        path = "/" + unique("slow")
        task = await api.add_task(unique("slow"), "http", f"{target.url}{path}?delay=1.5", "@every 1s")
    task_id = task["id"]

    first = await pair.start_ticks(T0 + 1, on=(0,))
    await asyncio.sleep(0.3)
    assert await api.runs(task_id) == [], "the first run should still be going"
    assert parse_time((await api.task(task_id))["last"]) == T0 + 1
    assert _ran(await pair.tick(T0 + 2, on=(1,)), task_id) == []
    assert _ran(await pair.tick(T0 + 3, on=(0, 1)), task_id) == []
    # Running it by hand is refused too while the run goes on.
    r = await api.request("POST", f"/task/{task_id}/run")
    assert r.status_code == 409, f"/task/<id>/run during a run answered {r.status_code}: {r.text}"
    assert r.text.endswith("\n") and r.text.count("\n") == 1, repr(r.text)

    done = _ran(list(await asyncio.gather(*first)), task_id)
    assert [run.outcome for run in done] == ["success"], done
    if kind == "http":
        assert len(target.at(path)) == 1

    # The hold is released: the next tick runs.
    later = _ran(await pair.tick(T0 + 4, on=(1, 0)), task_id)
    assert [run.outcome for run in later] == ["success"], later

    runs = await api.runs(task_id)
    by_due = {r["due"]: r["outcome"] for r in runs}
    assert by_due == {
        rfc3339(T0 + 1): "success",
        rfc3339(T0 + 2): "skipped",
        rfc3339(T0 + 3): "skipped",
        rfc3339(T0 + 4): "success",
    }, runs
    assert len(runs) == 4, runs
    skipped = [r for r in runs if r["outcome"] == "skipped"]
    assert all(r["error"] for r in skipped), skipped
    # Never two at once: the successful runs' intervals do not overlap.
    ok = sorted((parse_time(r["started"]), parse_time(r["completed"])) for r in runs if r["outcome"] == "success")
    assert ok[0][1] <= ok[1][0], ok


@pytest.mark.parametrize("interval,period", [("@every 1m", 60), ("* * * * *", 60), ("@every 30s", 30)])
async def test_after_downtime_a_task_runs_once_and_next_is_in_the_future(
    sched: Sched, interval: str, period: int
) -> None:
    api = sched.api
    fn = unique("fn")
    await api.add_fn(fn, ECHO_FN)
    task = await api.add_task(unique("late"), "function", fn, interval)
    first_due = parse_time(task["next"])
    assert T0 < first_due <= T0 + period

    now = sched.clock.advance(10 * period + 7)
    runs = _ran(await sched.tick(now), task["id"])
    assert len(runs) == 1, f"{len(runs)} runs after ten missed ticks: {runs}"
    assert runs[0].outcome == "success"
    again = _ran(await sched.tick(now), task["id"])
    assert again == [], "a second tick at the same instant ran again"

    after = await api.task(task["id"])
    nxt = parse_time(after["next"])
    assert now < nxt <= now + period, (rfc3339(now), after["next"])
    assert parse_time(after["last"]) >= first_due
    assert len(await api.runs(task["id"])) == 1
    assert len(await api.history(fn)) == 1

    # It then keeps its normal rhythm.
    assert len(_ran(await sched.tick(nxt), task["id"])) == 1
    assert len(await api.runs(task["id"])) == 2


async def _stale_due_list(sched: Sched, index: int, now: float) -> None:
    """Make the next ``due_tasks`` of node ``index`` answer what it reads now (before a change)."""
    store = sched.nodes[index].server.services.store
    stale = await store.due_tasks(now, 1000)
    real = store.due_tasks

    async def once(when: float, limit: int) -> list[Any]:
        store.due_tasks = real
        return stale

    store.due_tasks = once


async def _two_tasks(pair: Sched) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A changed task and an untouched control task, both due at T0 + 60."""
    fn = unique("fn")
    await pair.api.add_fn(fn, ECHO_FN)
    changed = await pair.api.add_task(unique("changed"), "function", fn, "@every 1m")
    control = await pair.api.add_task(unique("control"), "message", "ping", "@every 1m", '{"channel":"c"}')
    return fn, changed, control


async def test_editing_the_interval_prevents_the_old_tick_on_every_instance(pair: Sched) -> None:
    fn, task, control = await _two_tasks(pair)
    due = T0 + 60
    pair.clock.set(T0 + 30)
    await _stale_due_list(pair, 1, due)  # instance 1 saw the task due before the edit
    # The edit goes through the other instance.
    edited = await pair.api.update_task(task["id"], interval="@every 5m")
    assert edited["interval"] == "@every 5m"
    assert parse_time(edited["next"]) == T0 + 300, edited

    runs = await pair.tick(due, on=(1, 0))
    assert _ran(runs, task["id"]) == [], "the old tick ran after the interval changed"
    assert len(_ran(runs, control["id"])) == 1, "the control task must still run"
    for t in (T0 + 120, T0 + 240):
        assert _ran(await pair.tick(t, on=(0, 1)), task["id"]) == []
    assert len(_ran(await pair.tick(T0 + 300, on=(0, 1)), task["id"])) == 1
    assert [r["due"] for r in await pair.api.runs(task["id"])] == [rfc3339(T0 + 300)]
    assert len(await pair.api.history(fn)) == 1


async def test_disabling_prevents_the_tick_on_every_instance(pair: Sched) -> None:
    fn, task, control = await _two_tasks(pair)
    due = T0 + 60
    pair.clock.set(T0 + 30)
    await _stale_due_list(pair, 1, due)
    disabled = await pair.api.update_task(task["id"], enabled=False)
    assert disabled["enabled"] is False
    assert (await pair.api_on(1).task(task["id"]))["enabled"] is False

    runs = await pair.tick(due, on=(1, 0))
    assert _ran(runs, task["id"]) == [], "a disabled task ran"
    assert len(_ran(runs, control["id"])) == 1
    for t in (T0 + 120, T0 + 180):
        assert _ran(await pair.tick(t, on=(0, 1)), task["id"]) == []
    assert await pair.api.runs(task["id"]) == []
    assert await pair.api.history(fn) == []

    # Enabled again, it runs at its next tick (not the missed ones).
    pair.clock.set(T0 + 190)
    enabled = await pair.api.update_task(task["id"], enabled=True)
    assert parse_time(enabled["next"]) == T0 + 240, enabled
    assert len(_ran(await pair.tick(T0 + 240, on=(0, 1)), task["id"])) == 1
    assert len(await pair.api.runs(task["id"])) == 1


async def test_deleting_prevents_the_tick_on_every_instance(pair: Sched) -> None:
    fn, task, control = await _two_tasks(pair)
    due = T0 + 60
    pair.clock.set(T0 + 30)
    await _stale_due_list(pair, 1, due)
    await pair.api.delete_task(task["id"])
    r = await pair.api_on(1).request("GET", f"/task/{task['id']}")
    assert r.status_code == 404, r.text

    runs = await pair.tick(due, on=(1, 0))
    assert _ran(runs, task["id"]) == [], "a deleted task ran"
    assert len(_ran(runs, control["id"])) == 1
    assert _ran(await pair.tick(T0 + 120, on=(0, 1)), task["id"]) == []
    assert await pair.api.history(fn) == []
    assert [t["id"] for t in await pair.api.tasks()] == [control["id"]]


async def test_editing_the_definition_takes_effect_on_every_instance(pair: Sched) -> None:
    """An edit of what a task does (its value and meta, same interval) committed after another
    instance read the due list but before its tick: that tick runs the NEW definition (spec 06
    §5: an update takes effect on every process without restart)."""
    task = await pair.api.add_task(unique("m"), "message", "old_type", "@every 1m", '{"channel":"old"}')
    pair.clock.set(T0 + 30)
    await _stale_due_list(pair, 1, T0 + 60)
    await pair.api.update_task(task["id"], value="new_type", meta='{"channel":"new"}')
    published: list[dict[str, Any]] = []
    pair.nodes[1].server.services.broker.message_hooks.append(lambda base, msg, ident: published.append(msg))
    runs = _ran(await pair.tick(T0 + 60, on=(1,)), task["id"])
    ran = [(m["type"], m["channel"]) for m in published if m.get("sid") == task["id"]]
    assert ran in ([("new_type", "new")], []), f"the old definition ran after the edit: {ran} {runs}"
    if not ran:  # the tick was refused: the next one runs the new definition
        await pair.tick(T0 + 120, on=(1,))
        ran = [(m["type"], m["channel"]) for m in published if m.get("sid") == task["id"]]
        assert ran == [("new_type", "new")], ran
