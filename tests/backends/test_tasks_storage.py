"""The Store conformance suite for scheduled tasks and their run history.

Written once and run against every store kind through the fixtures of ``test_storage``. The
tasks table is installation-wide (every task carries its base name), so every test uses bases
with random names, and tests that look at every base (``due_tasks``, ``next_due``) first remove
the due tasks earlier tests left (tests of one pytest worker run one after the other; each
worker has its own database).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from sbserver.backends.storage import postgresql, sqlite
from sbserver.backends.storage.base import Store
from sbserver.errors import Conflict
from sbserver.types import ZERO_TIME, Base, Task, TaskRun
from tests.backends import test_storage
from tests.backends.test_storage import uid

# The fixtures of the Store suite, so these tests run once per store kind exactly as it does.
new_store = test_storage.new_store
store = test_storage.store

NOW = "2024-05-01T10:00:00Z"
LAST = "2024-05-01T10:00:00.123456Z"
T0 = 1_700_000_000.0  # a Unix time; schedules and holds are compared as numbers
FAR = 1e15  # later than any time a test hands out


def new_base() -> Base:
    """A base of its own: tasks only carry the base name, the store does not look the base up."""
    name = "t" + uid().replace("-", "")[:11]
    return Base(id=name, name=name, tenant_id=uid(), created=NOW)


def task_of(base: Base, name: str = "", next_run: float = T0, **kw: Any) -> Task:
    return Task(
        id=kw.pop("id", uid()),
        base=base.name,
        name=name or "task_" + uid()[:8],
        type=kw.pop("type", "function"),
        value=kw.pop("value", "cleanup"),
        meta=kw.pop("meta", '{"data":"{\\"x\\":1}"}'),
        interval=kw.pop("interval", "*/5 * * * *"),
        next_run=next_run,
        anchor=kw.pop("anchor", T0 - 3600),
        **kw,
    )


async def make_task(store: Store, base: Base, name: str = "", next_run: float = T0, **kw: Any) -> Task:
    task = task_of(base, name, next_run, **kw)
    await store.create_task(task)
    return task


def run_of(task: Task, i: int, outcome: str = "success", **kw: Any) -> TaskRun:
    """The i-th run of a task, for the tick ``T0 + i``."""
    return TaskRun(
        id=kw.pop("id", uid()),
        task_id=task.id,
        due=kw.pop("due", T0 + i),
        started=f"2024-05-01T10:{i // 60:02d}:{i % 60:02d}.000001Z",
        completed=f"2024-05-01T10:{i // 60:02d}:{i % 60:02d}.500001Z",
        outcome=outcome,
        error=kw.pop("error", ""),
        output=kw.pop("output", ["Function started", f"run {i}", "Function completed"]),
    )


async def clear_due(store: Store) -> None:
    """Delete every enabled task left by earlier tests (the table is shared by the installation)."""
    while due := await store.due_tasks(FAR, 1000):
        for t in due:
            assert await store.delete_task(Base(id=t.base, name=t.base, tenant_id=""), t.id)


# create, read, list


async def test_create_and_get(store: Store) -> None:
    base, other = new_base(), new_base()
    task = await make_task(store, base, "nightly", type="http", value="https://example.com/hook")
    assert await store.task(base, task.id) == task
    assert await store.task(other, task.id) is None  # another base does not see it
    assert await store.task(base, uid()) is None
    assert task.running_until == 0.0
    assert task.last == ZERO_TIME


async def test_duplicate_id_conflicts(store: Store) -> None:
    base = new_base()
    task = await make_task(store, base)
    with pytest.raises(Conflict):
        await store.create_task(task_of(new_base(), id=task.id))
    assert await store.task(base, task.id) == task


async def test_values_round_trip_identically(store: Store) -> None:
    base = new_base()
    task = await make_task(
        store,
        base,
        "nächtlich 🌙 'quoted' \"too\"",
        next_run=T0 + 0.123456,
        type="message",
        value="daily_task_trial_expire",
        meta='{"data":"{\\"é\\":[1,2.5,null]}","channel":"sb_tasks"}',
        interval="@every 1h30m",
        timezone="America/Montreal",
        enabled=False,
        last=LAST,
        anchor=T0 - 0.000001,
        running_until=T0 + 29.75,
    )
    got = await store.task(base, task.id)
    assert got == task
    assert got is not None
    assert got.enabled is False
    assert isinstance(got.next_run, float)
    assert await store.tasks(base) == [task]


async def test_tasks_are_per_base_and_ordered_by_name_then_id(store: Store) -> None:
    base, other = new_base(), new_base()
    made = [
        await make_task(store, base, "b"),
        await make_task(store, base, "a", id="zz-" + uid()),
        await make_task(store, base, "a", id="AA-" + uid()),  # bytewise: before "zz-"
        await make_task(store, base, "B"),  # bytewise: before "a"
        await make_task(store, base, "_x"),
    ]
    theirs = await make_task(store, other, "a")
    got = await store.tasks(base)
    assert [t.id for t in got] == [t.id for t in sorted(made, key=lambda t: (t.name, t.id))]
    assert [t.name for t in got] == ["B", "_x", "a", "a", "b"]
    assert await store.tasks(other) == [theirs]
    assert await store.tasks(new_base()) == []


# update and delete


async def test_update_replaces_definition_and_schedule_only(store: Store) -> None:
    base = new_base()
    task = await make_task(store, base, "old", last=LAST, running_until=T0 + 30)
    changed = replace(
        task,
        name="new",
        type="http",
        value="https://example.com",
        meta='{"method":"GET"}',
        interval="0 2 * * *",
        timezone="Europe/Paris",
        enabled=False,
        next_run=T0 + 7200,
        # Not part of an update: the store keeps its own values of these.
        last="2030-01-01T00:00:00Z",
        anchor=1.0,
        running_until=0.0,
    )
    assert await store.update_task(changed) is True
    assert await store.task(base, task.id) == replace(
        changed, last=task.last, anchor=task.anchor, running_until=task.running_until
    )


async def test_update_of_unknown_or_other_base_task_is_false(store: Store) -> None:
    base = new_base()
    task = await make_task(store, base, "mine")
    assert await store.update_task(task_of(base, "ghost")) is False
    assert await store.task(base, task.id) == task
    # The same id under another base name does not touch it.
    assert await store.update_task(replace(task, base=new_base().name, name="stolen")) is False
    assert await store.task(base, task.id) == task
    assert [t.name for t in await store.tasks(base)] == ["mine"]


async def test_delete_removes_the_task_and_its_runs(store: Store) -> None:
    base = new_base()
    task, kept = await make_task(store, base), await make_task(store, base)
    for i in range(3):
        await store.finish_task(task.id, run_of(task, i), 100)
    await store.finish_task(kept.id, run_of(kept, 9), 100)

    assert await store.delete_task(new_base(), task.id) is False  # another base
    assert len(await store.task_runs(task.id, 100)) == 3
    assert await store.delete_task(base, task.id) is True
    assert await store.task(base, task.id) is None
    assert await store.task_runs(task.id, 100) == []
    assert await store.delete_task(base, task.id) is False
    assert await store.tasks(base) == [kept]
    assert [r.due for r in await store.task_runs(kept.id, 100)] == [T0 + 9]


# due tasks


async def test_due_tasks_are_enabled_and_due_earliest_first(store: Store) -> None:
    await clear_due(store)
    base, other = new_base(), new_base()
    late = await make_task(store, base, next_run=T0 + 5)
    tie_z = await make_task(store, other, next_run=T0 + 1, id="z-" + uid())
    tie_a = await make_task(store, base, next_run=T0 + 1, id="a-" + uid())
    await make_task(store, base, next_run=T0, enabled=False)
    await make_task(store, other, next_run=T0 + 5.000001)  # not yet due
    early = await make_task(store, other, next_run=T0 - 100)

    got = await store.due_tasks(T0 + 5, 100)  # next_run == now is due
    assert [t.id for t in got] == [early.id, tie_a.id, tie_z.id, late.id]
    assert got[0] == early
    assert [t.id for t in await store.due_tasks(T0 + 5, 2)] == [early.id, tie_a.id]
    assert await store.due_tasks(T0 + 5, 0) == []
    assert await store.due_tasks(T0 - 101, 100) == []

    # Disabling takes a task out; enabling it (with a new schedule) brings it back.
    assert await store.update_task(replace(early, enabled=False))
    assert [t.id for t in await store.due_tasks(T0 + 5, 100)] == [tie_a.id, tie_z.id, late.id]
    assert await store.update_task(replace(early, next_run=T0 + 2))
    assert [t.id for t in await store.due_tasks(T0 + 5, 100)] == [tie_a.id, tie_z.id, early.id, late.id]
    await clear_due(store)


async def test_next_due_is_the_earliest_enabled_next_run(store: Store) -> None:
    await clear_due(store)
    assert await store.next_due() is None
    base = new_base()
    await make_task(store, base, next_run=T0 - 50, enabled=False)
    assert await store.next_due() is None
    b = await make_task(store, base, next_run=T0 + 20.5)
    a = await make_task(store, new_base(), next_run=T0 + 10.25)
    assert await store.next_due() == T0 + 10.25
    assert await store.update_task(replace(a, enabled=False))
    assert await store.next_due() == T0 + 20.5
    assert await store.claim_task(b.id, b.next_run, T0 + 80, LAST, 0.0, T0 + 21)
    assert await store.next_due() == T0 + 80
    assert await store.delete_task(base, b.id)
    assert await store.next_due() is None


# claiming, skipping, finishing


async def test_claim_wins_a_tick_once(store: Store) -> None:
    base = new_base()
    task = await make_task(store, base, next_run=T0)
    assert await store.claim_task(task.id, T0, T0 + 60, LAST, T0 + 30, T0) is True
    got = await store.task(base, task.id)
    assert got == replace(task, next_run=T0 + 60, last=LAST, running_until=T0 + 30)
    # The same tick again, even once the hold is over: next_run has moved on.
    assert await store.claim_task(task.id, T0, T0 + 60, "x", 0.0, FAR) is False
    assert await store.claim_task(uid(), T0, T0 + 60, "x", 0.0, FAR) is False  # unknown task
    assert await store.task(base, task.id) == got


async def test_claim_fails_while_held_and_succeeds_once_the_hold_expires(store: Store) -> None:
    base = new_base()
    task = await make_task(store, base, next_run=T0)
    assert await store.claim_task(task.id, T0, T0 + 60, LAST, T0 + 90, T0)
    # Tick T0 + 60 arrives while the run still holds the task.
    assert await store.claim_task(task.id, T0 + 60, T0 + 120, "x", T0 + 150, T0 + 60) is False
    assert await store.claim_task(task.id, T0 + 60, T0 + 120, "x", T0 + 150, T0 + 89.999) is False
    got = await store.task(base, task.id)
    assert got is not None
    assert (got.next_run, got.last, got.running_until) == (T0 + 60, LAST, T0 + 90)
    # running_until <= now: the hold has expired (a process died mid-run).
    assert await store.claim_task(task.id, T0 + 60, T0 + 120, "y", T0 + 150, T0 + 90) is True
    got = await store.task(base, task.id)
    assert got is not None
    assert (got.next_run, got.last, got.running_until) == (T0 + 120, "y", T0 + 150)


async def test_claim_fails_when_disabled(store: Store) -> None:
    base = new_base()
    task = await make_task(store, base, next_run=T0, enabled=False)
    assert await store.claim_task(task.id, T0, T0 + 60, LAST, T0 + 30, T0) is False
    assert await store.task(base, task.id) == task
    assert await store.update_task(replace(task, enabled=True))
    assert await store.claim_task(task.id, T0, T0 + 60, LAST, T0 + 30, T0) is True


async def test_claim_fails_when_an_update_moved_next_run(store: Store) -> None:
    base = new_base()
    task = await make_task(store, base, next_run=T0)
    assert await store.update_task(replace(task, interval="0 * * * *", next_run=T0 + 3600))
    assert await store.claim_task(task.id, T0, T0 + 60, LAST, T0 + 30, T0) is False
    assert await store.claim_task(task.id, T0 + 3600, T0 + 7200, LAST, T0 + 3630, T0 + 3600) is True


async def test_claim_may_keep_next_run(store: Store) -> None:
    """A "run now" claims the current tick without moving it (next_run == due)."""
    base = new_base()
    task = await make_task(store, base, next_run=T0 + 600)
    assert await store.claim_task(task.id, T0 + 600, T0 + 600, LAST, T0 + 30, T0) is True
    assert await store.claim_task(task.id, T0 + 600, T0 + 600, LAST, T0 + 30, T0 + 1) is False  # held
    got = await store.task(base, task.id)
    assert got is not None
    assert (got.next_run, got.running_until) == (T0 + 600, T0 + 30)


async def test_skip_moves_past_the_tick_and_records_it_only_when_it_matches(store: Store) -> None:
    base = new_base()
    task = await make_task(store, base, next_run=T0)
    assert await store.claim_task(task.id, T0, T0 + 60, LAST, T0 + 300, T0)
    skipped = run_of(task, 60, "skipped", due=T0 + 60, error="previous run still in progress", output=[])
    assert await store.skip_task(task.id, T0 + 60, T0 + 120, skipped, 100) is True
    got = await store.task(base, task.id)
    assert got is not None
    # Only next_run moves: the hold and last stay those of the run in progress.
    assert (got.next_run, got.last, got.running_until) == (T0 + 120, LAST, T0 + 300)
    assert await store.task_runs(task.id, 100) == [skipped]

    # A stale tick (another process skipped it already) changes and records nothing.
    assert await store.skip_task(task.id, T0 + 60, T0 + 120, run_of(task, 61, "skipped"), 100) is False
    assert await store.skip_task(uid(), T0 + 60, T0 + 120, run_of(task, 62, "skipped"), 100) is False
    assert await store.task_runs(task.id, 100) == [skipped]
    assert await store.task(base, task.id) == got

    # Nor does skipping a disabled task.
    assert await store.update_task(replace(got, enabled=False))
    assert await store.skip_task(task.id, T0 + 120, T0 + 180, run_of(task, 63, "skipped"), 100) is False
    assert await store.task_runs(task.id, 100) == [skipped]
    got = await store.task(base, task.id)
    assert got is not None
    assert got.next_run == T0 + 120


async def test_skip_trims_runs_to_keep(store: Store) -> None:
    base = new_base()
    task = await make_task(store, base, next_run=T0)
    made = [run_of(task, i) for i in range(4)]
    for run in made:
        await store.finish_task(task.id, run, 100)
    skipped = run_of(task, 5, "skipped")
    assert await store.skip_task(task.id, T0, T0 + 60, skipped, 3)
    assert await store.task_runs(task.id, 100) == [*made[-2:], skipped]


async def test_skip_is_atomic(store: Store) -> None:
    """When recording the skip fails, the tick is not moved past either."""
    base = new_base()
    task = await make_task(store, base, next_run=T0)
    bad = run_of(task, 1, "skipped", output=[object()])  # cannot be serialised mid-transaction
    with pytest.raises(TypeError):
        await store.skip_task(task.id, T0, T0 + 60, bad, 100)
    assert await store.task(base, task.id) == task
    assert await store.task_runs(task.id, 100) == []


async def test_finish_releases_the_hold_and_records_the_run(store: Store) -> None:
    base = new_base()
    task = await make_task(store, base, next_run=T0)
    assert await store.claim_task(task.id, T0, T0 + 60, LAST, FAR, T0)
    assert await store.claim_task(task.id, T0 + 60, T0 + 120, LAST, FAR, T0 + 60) is False  # held
    run = run_of(task, 0, "failed", error="ReferenceError: x is not defined", output=["Function started", "é 🌙"])
    await store.finish_task(task.id, run, 100)
    got = await store.task(base, task.id)
    assert got == replace(task, next_run=T0 + 60, last=LAST, running_until=0.0)
    assert await store.task_runs(task.id, 100) == [run]
    # Released: the next tick can be claimed at once.
    assert await store.claim_task(task.id, T0 + 60, T0 + 120, LAST, FAR, T0 + 60) is True


async def test_finish_trims_runs_to_keep(store: Store) -> None:
    base = new_base()
    task = await make_task(store, base)
    made = [run_of(task, i) for i in range(5)]
    for run in made:
        await store.finish_task(task.id, run, 100)
    last = run_of(task, 10)
    await store.finish_task(task.id, last, 3)
    assert await store.task_runs(task.id, 100) == [*made[-2:], last]
    one = run_of(task, 11)
    await store.finish_task(task.id, one, 1)
    assert await store.task_runs(task.id, 100) == [one]
    # keep 0 (or less) keeps nothing, not even the run just recorded.
    await store.finish_task(task.id, run_of(task, 12), 0)
    assert await store.task_runs(task.id, 100) == []
    await store.finish_task(task.id, run_of(task, 13), -5)
    assert await store.task_runs(task.id, 100) == []


async def test_finish_of_a_deleted_task_records_nothing(store: Store) -> None:
    base = new_base()
    task = await make_task(store, base)
    assert await store.claim_task(task.id, T0, T0 + 60, LAST, FAR, T0)
    assert await store.delete_task(base, task.id)  # deleted while its run was going
    await store.finish_task(task.id, run_of(task, 0), 100)
    assert await store.task_runs(task.id, 100) == []
    assert await store.task(base, task.id) is None
    await store.finish_task(uid(), run_of(task, 1), 100)  # never existed: a no-op


async def test_finish_is_atomic(store: Store) -> None:
    """When recording the run fails, the hold stays (it expires by itself)."""
    base = new_base()
    task = await make_task(store, base, next_run=T0)
    assert await store.claim_task(task.id, T0, T0 + 60, LAST, T0 + 30, T0)
    with pytest.raises(TypeError):
        await store.finish_task(task.id, run_of(task, 0, output=[object()]), 100)
    got = await store.task(base, task.id)
    assert got is not None
    assert got.running_until == T0 + 30
    assert await store.task_runs(task.id, 100) == []


async def test_task_runs_are_the_newest_oldest_first_per_task(store: Store) -> None:
    base = new_base()
    task, other = await make_task(store, base), await make_task(store, base)
    made = [run_of(task, i, random.choice(["success", "failed", "skipped"])) for i in range(6)]
    for i, run in enumerate(made):
        await store.finish_task(task.id, run, 100)
        await store.finish_task(other.id, run_of(other, 100 + i), 100)
    assert await store.task_runs(task.id, 100) == made
    assert await store.task_runs(task.id, 2) == made[-2:]
    assert await store.task_runs(task.id, 0) == []
    assert await store.task_runs(task.id, -1) == made  # a negative limit means no limit
    assert [r.due for r in await store.task_runs(other.id, 100)] == [T0 + 100 + i for i in range(6)]
    assert await store.task_runs(uid(), 100) == []


# several processes


async def test_concurrent_claimers_win_each_tick_exactly_once(new_store: Callable[[], Store]) -> None:
    """Four stores on one database stand for four processes, all claiming the same 100 ticks."""
    stores = [new_store() for _ in range(4)]
    for s in stores:
        await s.open()
    try:
        base = new_base()
        ticks = [T0 + 60 * i for i in range(100)]

        # In lockstep: every process tries every tick at the same moment.
        task = await make_task(stores[0], base, next_run=ticks[0])
        for i, due in enumerate(ticks):
            nxt = due + 60
            won = await asyncio.gather(
                *(s.claim_task(task.id, due, nxt, f"p{k}", 0.0, due) for k, s in enumerate(stores))
            )
            assert won.count(True) == 1, f"tick {i} won {won.count(True)} times"
        got = await stores[1].task(base, task.id)
        assert got is not None
        assert got.next_run == ticks[-1] + 60

        # Free-running with holds: each process reads the task, claims its tick, runs, finishes.
        # Never two runs at once, and every tick is run by exactly one process.
        task = await make_task(stores[0], base, next_run=ticks[0])
        running = 0
        won_ticks: list[float] = []

        async def process(s: Store, name: str) -> None:
            nonlocal running
            while True:
                current = await s.task(base, task.id)
                assert current is not None
                due = current.next_run
                if due > ticks[-1]:
                    return
                if not await s.claim_task(task.id, due, due + 60, name, FAR, due):
                    await asyncio.sleep(0)
                    continue
                running += 1
                assert running == 1, "two runs of one task at once"
                won_ticks.append(due)
                await asyncio.sleep(0)
                running -= 1
                done = TaskRun(uid(), task.id, due, name, name, "success", "", [name])
                await s.finish_task(task.id, done, 1000)

        await asyncio.gather(*(process(s, f"p{k}-{j}") for k, s in enumerate(stores) for j in range(2)))
        assert sorted(won_ticks) == ticks
        assert len(won_ticks) == len(set(won_ticks)), "a tick was won twice"
        runs = await stores[2].task_runs(task.id, 1000)
        assert [r.due for r in runs] == ticks
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_concurrent_claimers_of_many_due_tasks(new_store: Callable[[], Store]) -> None:
    """100 tasks due at once, four processes each walking the due list: every task runs once."""
    stores = [new_store() for _ in range(4)]
    for s in stores:
        await s.open()
    try:
        await clear_due(stores[0])
        base = new_base()
        made = [await make_task(stores[0], base, next_run=T0 + i * 0.001) for i in range(100)]
        wins: list[tuple[str, float]] = []

        async def process(s: Store) -> None:
            for t in await s.due_tasks(T0 + 1, 1000):
                await asyncio.sleep(0)
                if await s.claim_task(t.id, t.next_run, t.next_run + 3600, LAST, T0 + 30, T0 + 1):
                    wins.append((t.id, t.next_run))

        await asyncio.gather(*(process(s) for s in stores))
        assert sorted(wins) == sorted((t.id, t.next_run) for t in made)
        assert await stores[3].due_tasks(T0 + 1, 1000) == []
        await clear_due(stores[0])
    finally:
        await asyncio.gather(*(s.close() for s in stores))


# migrations


async def test_tasks_migration_reaches_a_database_made_before_it(
    new_store: Callable[[], Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database written by a server without the tasks migration gets it on the next open.

    PostgreSQL: on a database of its own, since the worker's database is migrated already."""
    make: Callable[[], Store] = new_store
    probe = new_store()
    fresh = ""
    if isinstance(probe, postgresql.PostgresStore):
        root, _, dbname = probe.dsn.rpartition("/")
        fresh = f"{dbname}_tasks"
        admin = await asyncpg.connect(probe.dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{fresh}"')
            await admin.execute(f'CREATE DATABASE "{fresh}"')
        finally:
            await admin.close()
        url = f"{root}/{fresh}"

        def make() -> Store:
            return postgresql.PostgresStore(url)

    try:
        with monkeypatch.context() as m:
            m.setattr(postgresql, "SYSTEM_MIGRATIONS", postgresql.SYSTEM_MIGRATIONS[:2])
            m.setattr(sqlite, "MIGRATIONS", sqlite.MIGRATIONS[:3])
            old = make()
            await old.open()
            await old.close()
        s = make()
        await s.open()
        try:
            base = new_base()
            task = await make_task(s, base)
            assert await s.task(base, task.id) == task
            await s.finish_task(task.id, run_of(task, 0), 10)
            assert [r.due for r in await s.task_runs(task.id, 10)] == [T0]
        finally:
            await s.close()
    finally:
        if fresh:
            admin = await asyncpg.connect(probe.dsn)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')
            finally:
                await admin.close()
