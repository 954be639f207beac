"""The Store conformance suite for server-side functions, their run history and the job queue.

Written once and run against every store kind through the fixtures of ``test_storage``; every
test makes its own bases with random names, so tests can share one PostgreSQL database. The job
queue is installation-wide, so every queue test starts by emptying it (tests of one pytest
worker run one after the other; each worker has its own database).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest

from sbserver.backends.storage import postgresql, sqlite
from sbserver.backends.storage.base import Store
from sbserver.errors import Conflict
from sbserver.types import ALL_ROWS, ZERO_TIME, Base, FinishedJob, FunctionDef, FunctionRun, Job, QueuedJobs, StoredDoc
from tests.backends import test_storage
from tests.backends.test_storage import make_base, uid

# The fixtures of the Store suite, so these tests run once per store kind exactly as it does.
new_store = test_storage.new_store
store = test_storage.store

NOW = "2024-05-01T10:00:00Z"
LATER = "2024-05-02T11:30:00.123456Z"
T0 = 1_700_000_000.0  # a Unix time; leases are compared as numbers
FAR = 1e15  # later than any lease a test hands out


def fn_def(name: str = "", trigger: str = "chan_out", **kw: Any) -> FunctionDef:
    return FunctionDef(
        id=kw.pop("id", uid()),
        name=name or "fn_" + uid()[:8],
        trigger=trigger,
        code=kw.pop("code", "function handle(channel, type, data) { log(data); }"),
        last_updated=kw.pop("last_updated", NOW),
        **kw,
    )


async def make_fn(store: Store, base: Base, name: str = "", trigger: str = "chan_out", **kw: Any) -> FunctionDef:
    fn = fn_def(name, trigger, **kw)
    await store.create_function(base, fn)
    return fn


def run_of(fn: FunctionDef, i: int, success: bool = True, output: list[Any] | None = None) -> FunctionRun:
    """The i-th run of a function; ``completed`` grows with i."""
    return FunctionRun(
        id=uid(),
        function_id=fn.id,
        version=fn.version,
        started=f"2024-05-01T10:{i // 60:02d}:{i % 60:02d}.000001Z",
        completed=f"2024-05-01T10:{i // 60:02d}:{i % 60:02d}.500001Z",
        success=success,
        output=["Function started", f"run {i}", "Function completed"] if output is None else output,
    )


def job_of(base: Base, fn_id: str = "", created: str = NOW, **kw: Any) -> Job:
    return Job(
        id=kw.pop("id", uid()),
        base=base.name,
        function_id=fn_id or uid(),
        payload=kw.pop("payload", {"channel": "chan_out", "type": "db_created", "data": {"n": 1}}),
        created=created,
        **kw,
    )


async def empty_queue(store: Store) -> None:
    """Remove every job left by earlier tests (the queue is shared by the whole installation)."""
    while jobs := await store.claim_jobs("cleaner", FAR, FAR, 1000):
        await store.finish_jobs([FinishedJob(job.id) for job in jobs], 100)


# functions


async def test_create_and_get_by_name(store: Store) -> None:
    base = await make_base(store)
    fn = await make_fn(store, base, "new_msg", secrets="API_KEY=x&B=y")
    got = await store.function_by_name(base, "new_msg")
    assert got == fn
    assert got is not None
    assert got.version == 1
    assert got.last_run == ZERO_TIME
    assert got.last_updated == NOW
    assert got.secrets == "API_KEY=x&B=y"
    assert await store.function_by_name(base, "other") is None
    other = await make_base(store)
    assert await store.function_by_name(other, "new_msg") is None


async def test_duplicate_name_conflicts_only_inside_a_base(store: Store) -> None:
    base = await make_base(store)
    first = await make_fn(store, base, "dup")
    with pytest.raises(Conflict):
        await make_fn(store, base, "dup", trigger="web", code="other")
    assert await store.function_by_name(base, "dup") == first
    assert await store.functions(base) == [first]

    other = await make_base(store)
    second = await make_fn(store, other, "dup", trigger="web")
    assert await store.function_by_name(other, "dup") == second
    assert await store.function_by_name(base, "dup") == first


async def test_functions_are_ordered_by_name(store: Store) -> None:
    base = await make_base(store)
    names = ["zeta", "alpha", "Mid", "beta", "_under", "alpha2", "Zed"]
    made = {n: await make_fn(store, base, n) for n in names}
    got = await store.functions(base)
    assert [f.name for f in got] == sorted(names)  # bytewise: upper case before lower case
    assert got == [made[n] for n in sorted(names)]
    assert await store.functions(await make_base(store)) == []


async def test_functions_for_several_triggers(store: Store) -> None:
    base = await make_base(store)
    a1 = await make_fn(store, base, "b_on_a", "chan_a")
    a2 = await make_fn(store, base, "a_on_a", "chan_a")
    b = await make_fn(store, base, "on_b", "chan_b")
    web = await make_fn(store, base, "hook", "web")
    other = await make_base(store)
    await make_fn(store, other, "elsewhere", "chan_a")

    assert await store.functions_for(base, ["chan_a"]) == [a2, a1]
    assert await store.functions_for(base, ["web", "chan_a", "chan_b"]) == [a2, a1, web, b]
    assert await store.functions_for(base, ["chan_b", "nope"]) == [b]
    assert await store.functions_for(base, ["nope"]) == []
    assert await store.functions_for(base, []) == []


async def test_update_bumps_version_and_replaces_code_and_trigger(store: Store) -> None:
    base = await make_base(store)
    fn = await make_fn(store, base, "upd", "chan_a", secrets="K=1")
    untouched = await make_fn(store, base, "untouched", "chan_a")

    got = await store.update_function(base, fn.id, "function handle() { return 2 }", "chan_b", None, LATER)
    expected = FunctionDef(fn.id, "upd", "chan_b", "function handle() { return 2 }", 2, LATER, ZERO_TIME, "K=1")
    assert got == expected
    assert await store.function_by_name(base, "upd") == expected
    assert await store.functions_for(base, ["chan_b"]) == [expected]
    assert await store.functions_for(base, ["chan_a"]) == [untouched]

    got = await store.update_function(base, fn.id, "v3", "web", "K=2&L=3", NOW)
    assert got == FunctionDef(fn.id, "upd", "web", "v3", 3, NOW, ZERO_TIME, "K=2&L=3")
    got = await store.update_function(base, fn.id, "v4", "web", "", NOW)  # "" replaces: only None keeps
    assert got is not None
    assert (got.version, got.code, got.secrets) == (4, "v4", "")
    assert await store.function_by_name(base, "upd") == got
    assert await store.function_by_name(base, "untouched") == untouched

    assert await store.update_function(base, uid(), "x", "web", None, NOW) is None
    other = await make_base(store)
    assert await store.update_function(other, fn.id, "x", "web", None, NOW) is None
    assert await store.function_by_name(base, "upd") == got


async def test_update_keeps_last_run(store: Store) -> None:
    base = await make_base(store)
    fn = await make_fn(store, base)
    run = run_of(fn, 1)
    await store.add_run(base, run, 100)
    got = await store.update_function(base, fn.id, "new", fn.trigger, None, LATER)
    assert got is not None
    assert got.last_run == run.completed
    assert [r.id for r in await store.runs(base, fn.id, 100)] == [run.id]


async def test_delete_function_removes_it_and_its_runs(store: Store) -> None:
    base = await make_base(store)
    fn = await make_fn(store, base, "gone")
    keep = await make_fn(store, base, "kept")
    for i in range(3):
        await store.add_run(base, run_of(fn, i), 100)
        await store.add_run(base, run_of(keep, i), 100)
    other = await make_base(store)
    same_name = await make_fn(store, other, "gone")

    assert await store.delete_function(base, "gone") is True
    assert await store.function_by_name(base, "gone") is None
    assert await store.runs(base, fn.id, 100) == []
    assert await store.delete_function(base, "gone") is False
    assert await store.delete_function(base, "never") is False
    assert await store.functions(base) == [replace_last_run(keep, run_of(keep, 2).completed)]
    assert len(await store.runs(base, keep.id, 100)) == 3
    assert await store.function_by_name(other, "gone") == same_name

    # The name is free again, and the new function starts without history.
    again = await make_fn(store, base, "gone")
    assert await store.function_by_name(base, "gone") == again
    assert await store.runs(base, again.id, 100) == []


def replace_last_run(fn: FunctionDef, last_run: str) -> FunctionDef:
    return FunctionDef(fn.id, fn.name, fn.trigger, fn.code, fn.version, fn.last_updated, last_run, fn.secrets)


# runs


async def test_runs_round_trip_oldest_first(store: Store) -> None:
    base = await make_base(store)
    fn = await make_fn(store, base)
    odd = ["Function started", "ünïcødé 用户 😀", 'quote" \\ tab\t', "", "Function completed", "Error: x"]
    made = [run_of(fn, 0), run_of(fn, 1, success=False, output=odd), run_of(fn, 2, output=[])]
    for run in made:
        await store.add_run(base, run, 100)
    assert await store.runs(base, fn.id, 100) == made
    assert await store.runs(base, fn.id, 2) == made[1:]  # the newest two, oldest first
    assert await store.runs(base, fn.id, 1) == made[2:]
    assert await store.runs(base, uid(), 100) == []
    got = await store.function_by_name(base, fn.name)
    assert got is not None
    assert got.last_run == made[-1].completed


async def test_add_run_sets_last_run_and_trims_to_keep(store: Store) -> None:
    base = await make_base(store)
    fn = await make_fn(store, base)
    other = await make_fn(store, base)
    other_runs = [run_of(other, i) for i in range(3)]
    for run in other_runs:
        await store.add_run(base, run, 100)

    made = [run_of(fn, i) for i in range(105)]
    for run in made:
        await store.add_run(base, run, 100)
        got = await store.function_by_name(base, fn.name)
        assert got is not None
        assert got.last_run == run.completed

    assert await store.runs(base, fn.id, 100) == made[5:]
    assert await store.runs(base, fn.id, 1000) == made[5:]  # the older five are gone, not hidden
    assert await store.runs(base, fn.id, 3) == made[-3:]
    assert await store.runs(base, other.id, 100) == other_runs  # trimming is per function

    # A smaller keep trims further at the next run.
    last = run_of(fn, 200)
    await store.add_run(base, last, 10)
    assert await store.runs(base, fn.id, 1000) == [*made[-9:], last]


async def test_runs_of_same_function_id_in_two_bases_are_separate(store: Store) -> None:
    one, two = await make_base(store), await make_base(store)
    fn_id = uid()
    f1 = await make_fn(store, one, "same", id=fn_id)
    f2 = await make_fn(store, two, "same", id=fn_id)
    r1, r2 = run_of(f1, 1), run_of(f2, 2)
    await store.add_run(one, r1, 100)
    await store.add_run(two, r2, 1)
    assert await store.runs(one, fn_id, 100) == [r1]
    assert await store.runs(two, fn_id, 100) == [r2]


# the job queue


async def test_enqueued_jobs_are_leased_until_their_lease_expires(store: Store) -> None:
    await empty_queue(store)
    base = await make_base(store)
    payload = {"channel": "chan_out", "type": "db_created", "data": {"id": "x", "n": [1, 2.5, None], "ü": "😀"}}
    job = job_of(base, payload=payload)
    await store.enqueue_jobs([job], "p1", T0 + 30)

    assert await store.claim_jobs("p2", T0, T0 + 60, 10) == []
    assert await store.claim_jobs("p2", T0 + 30, T0 + 60, 10) == []  # the lease ends strictly after
    got = await store.claim_jobs("p2", T0 + 30.5, T0 + 90, 10)
    assert got == [Job(job.id, base.name, job.function_id, payload, NOW, 1)]

    # Claimed by p2 until T0 + 90 now.
    assert await store.claim_jobs("p3", T0 + 89.9, T0 + 120, 10) == []
    again = await store.claim_jobs("p3", T0 + 91, T0 + 120, 10)
    assert [(j.id, j.attempts) for j in again] == [(job.id, 2)]
    await store.finish_jobs([FinishedJob(job.id)], 100)
    assert await store.claim_jobs("p4", FAR, FAR, 10) == []


async def test_enqueue_keeps_attempts_and_an_empty_batch_is_fine(store: Store) -> None:
    await empty_queue(store)
    base = await make_base(store)
    await store.enqueue_jobs([], "p1", T0)
    job = job_of(base, attempts=3)
    await store.enqueue_jobs([job], "p1", T0)
    got = await store.claim_jobs("p2", T0 + 1, T0 + 10, 10)
    assert [(j.id, j.attempts) for j in got] == [(job.id, 4)]
    await store.finish_jobs([FinishedJob(job.id)], 100)


async def test_enqueue_duplicate_job_id_conflicts(store: Store) -> None:
    await empty_queue(store)
    base = await make_base(store)
    job = job_of(base)
    await store.enqueue_jobs([job], "p1", T0)
    with pytest.raises(Conflict):
        await store.enqueue_jobs([job_of(base), job_of(base, id=job.id)], "p1", T0)
    # All or nothing: the first job of the failed batch is not there either.
    assert [j.id for j in await store.claim_jobs("p2", FAR, FAR, 10)] == [job.id]
    await empty_queue(store)


async def test_claim_limit_and_order(store: Store) -> None:
    await empty_queue(store)
    base = await make_base(store)
    created = ["2024-05-01T10:00:03Z", "2024-05-01T10:00:01Z", "2024-05-01T10:00:02Z", "2024-05-01T10:00:01Z"]
    jobs = [job_of(base, created=c, id=f"job-{i}-{uid()}") for i, c in enumerate(created)]
    jobs.append(job_of(base, created="2024-05-01T10:00:00.5Z", id="zzz"))
    jobs.append(job_of(base, created="2024-05-01T10:00:00.5Z", id="Aaa"))  # bytewise: before "zzz"
    shuffled = jobs[:]
    random.shuffle(shuffled)
    # Half enqueued already expired, half with a lease that has not: only the expired are claimable.
    await store.enqueue_jobs(shuffled, "p1", T0)
    leased = job_of(base, created="2000-01-01T00:00:00Z")
    await store.enqueue_jobs([leased], "p1", T0 + 100)
    order = sorted(jobs, key=lambda j: (j.created, j.id))

    first = await store.claim_jobs("p2", T0 + 1, T0 + 50, 4)
    assert [j.id for j in first] == [j.id for j in order[:4]]
    assert all(j.attempts == 1 for j in first)
    rest = await store.claim_jobs("p3", T0 + 1, T0 + 50, 4)
    assert [j.id for j in rest] == [j.id for j in order[4:]]
    assert await store.claim_jobs("p3", T0 + 1, T0 + 50, 4) == []
    assert await store.claim_jobs("p3", T0 + 1, T0 + 50, 0) == []

    # After every lease expires, all come back in order, the oldest (``leased``) first.
    everything = await store.claim_jobs("p4", T0 + 101, T0 + 200, 100)
    assert [j.id for j in everything] == [leased.id] + [j.id for j in order]
    assert [j.attempts for j in everything] == [1] + [2] * len(order)
    await empty_queue(store)


async def test_finish_job_removes_it_and_records_the_run(store: Store) -> None:
    await empty_queue(store)
    base = await make_base(store)
    fn = await make_fn(store, base)
    done, other = job_of(base, fn.id), job_of(base, fn.id)
    await store.enqueue_jobs([done, other], "p1", T0)
    run = run_of(fn, 7)

    await store.finish_jobs([FinishedJob(done.id, base, run)], 100)
    assert await store.runs(base, fn.id, 100) == [run]
    got = await store.function_by_name(base, fn.name)
    assert got is not None
    assert got.last_run == run.completed
    assert [j.id for j in await store.claim_jobs("p2", FAR, FAR, 10)] == [other.id]

    # Without a run it only removes the job; an unknown job is a no-op.
    await store.finish_jobs([FinishedJob(other.id), FinishedJob(uid())], 100)
    await store.finish_jobs([], 100)
    assert await store.claim_jobs("p2", FAR, FAR, 10) == []
    assert await store.runs(base, fn.id, 100) == [run]


async def test_finish_job_trims_runs_to_keep(store: Store) -> None:
    await empty_queue(store)
    base = await make_base(store)
    fn = await make_fn(store, base)
    made = [run_of(fn, i) for i in range(4)]
    for run in made:
        await store.add_run(base, run, 100)
    job = job_of(base, fn.id)
    await store.enqueue_jobs([job], "p1", T0)
    last = run_of(fn, 10)
    await store.finish_jobs([FinishedJob(job.id, base, last)], 3)
    assert await store.runs(base, fn.id, 100) == [*made[-2:], last]


async def test_finish_job_is_atomic(store: Store) -> None:
    """When recording the run fails, the job stays queued (to be retried after its lease)."""
    await empty_queue(store)
    base = await make_base(store)
    fn = await make_fn(store, base)
    job = job_of(base, fn.id)
    await store.enqueue_jobs([job], "p1", T0)
    bad = run_of(fn, 1, output=[object()])  # cannot be serialised: the store fails mid-transaction
    with pytest.raises(TypeError):
        await store.finish_jobs([FinishedJob(job.id, base, bad)], 100)
    assert [j.id for j in await store.claim_jobs("p2", FAR, FAR, 10)] == [job.id]
    assert await store.runs(base, fn.id, 100) == []
    got = await store.function_by_name(base, fn.name)
    assert got is not None
    assert got.last_run == ZERO_TIME
    await empty_queue(store)


async def test_concurrent_claimers_take_every_job_exactly_once(new_store: Callable[[], Store]) -> None:
    """Four stores on one database stand for four processes, each claiming in two loops."""
    stores = [new_store() for _ in range(4)]
    for s in stores:
        await s.open()
    try:
        await empty_queue(stores[0])
        base = await make_base(stores[0])
        jobs = [job_of(base, created=f"2024-05-01T10:{i // 60:02d}:{i % 60:02d}Z") for i in range(200)]
        await stores[0].enqueue_jobs(jobs, "dead", T0)  # its owner died: every lease has expired

        async def claimer(s: Store, owner: str) -> list[Job]:
            taken: list[Job] = []
            while batch := await s.claim_jobs(owner, T0 + 10, FAR, 7):
                assert len(batch) <= 7
                assert batch == sorted(batch, key=lambda j: (j.created, j.id))
                taken.extend(batch)
                await asyncio.sleep(0)
            return taken

        results = await asyncio.gather(*(claimer(s, f"p{i}-{k}") for i, s in enumerate(stores) for k in range(2)))
        claimed = [j for taken in results for j in taken]
        ids = [j.id for j in claimed]
        assert len(ids) == len(set(ids)), "a job was claimed twice"
        assert sorted(ids) == sorted(j.id for j in jobs)
        assert all(j.attempts == 1 for j in claimed)
        assert await stores[1].claim_jobs("late", T0 + 10, FAR, 1000) == []
        await empty_queue(stores[2])
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_functions_migration_reaches_a_base_made_before_it(
    new_store: Callable[[], Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A base created by a server without the functions migration gets it on the next open."""
    with monkeypatch.context() as m:
        m.setattr(postgresql, "BASE_MIGRATIONS", postgresql.BASE_MIGRATIONS[:2])
        m.setattr(sqlite, "MIGRATIONS", sqlite.MIGRATIONS[:2])
        old = new_store()
        await old.open()
        base = await make_base(old)
        await old.close()
    s = new_store()
    await s.open()
    try:
        fn = await make_fn(s, base)
        await s.add_run(base, run_of(fn, 1), 100)
        assert [r.function_id for r in await s.runs(base, fn.id, 10)] == [fn.id]
    finally:
        await s.close()


async def test_finish_jobs_in_one_batch_records_every_run_and_trims_each_function(store: Store) -> None:
    await empty_queue(store)
    one, two = await make_base(store), await make_base(store)
    f1, f2, f3 = await make_fn(store, one, "f1"), await make_fn(store, one, "f2"), await make_fn(store, two, "f3")
    old = [run_of(f1, i) for i in range(3)]
    for run in old:
        await store.add_run(one, run, 3)
    jobs = [job_of(one, f1.id), job_of(one, f1.id), job_of(one, f2.id), job_of(two, f3.id), job_of(one, f1.id)]
    await store.enqueue_jobs(jobs, "p1", T0)
    new1 = [run_of(f1, 10), run_of(f1, 11)]
    r2, r3 = run_of(f2, 20), run_of(f3, 30)
    finished = [
        FinishedJob(jobs[0].id, one, new1[0]),
        FinishedJob(jobs[1].id, one, new1[1]),
        FinishedJob(jobs[2].id, one, r2),
        FinishedJob(jobs[3].id, two, r3),
        FinishedJob(jobs[4].id),  # nothing ran (function deleted meanwhile)
    ]
    await store.finish_jobs(finished, 3)
    assert await store.claim_jobs("p2", FAR, FAR, 10) == []
    # f1 keeps its newest 3: one old run and both new ones, oldest first.
    assert [r.id for r in await store.runs(one, f1.id, 100)] == [old[2].id, new1[0].id, new1[1].id]
    assert await store.runs(one, f2.id, 100) == [r2]
    assert await store.runs(two, f3.id, 100) == [r3]
    got = {f.name: f.last_run for f in await store.functions(one)}
    assert got == {"f1": max(r.completed for r in new1), "f2": r2.completed}
    [g3] = await store.functions(two)
    assert g3.last_run == r3.completed


async def test_finish_jobs_of_one_app_trims_each_function_even_past_keep_in_one_batch(store: Store) -> None:
    """One app's batch (PostgreSQL writes it in one statement): each function keeps its newest
    ``keep`` runs, counting those of the batch, also when the batch alone has more than that."""
    await empty_queue(store)
    base = await make_base(store)
    f1, f2 = await make_fn(store, base, "f1"), await make_fn(store, base, "f2")
    old = [run_of(f1, i) for i in range(3)]
    for run in old:
        await store.add_run(base, run, 3)
    await store.add_run(base, run_of(f2, 1), 3)
    new1 = [run_of(f1, 10), run_of(f1, 11)]
    new2 = [run_of(f2, 20 + i) for i in range(4)]
    finished = [FinishedJob(uid(), base, run) for run in [new1[0], new2[0], new2[1], new1[1], new2[2], new2[3]]]
    await store.finish_jobs(finished, 3)
    assert [r.id for r in await store.runs(base, f1.id, 100)] == [old[2].id, new1[0].id, new1[1].id]
    assert [r.id for r in await store.runs(base, f2.id, 100)] == [r.id for r in new2[1:]]
    got = {f.name: f.last_run for f in await store.functions(base)}
    assert got == {"f1": max(r.completed for r in new1), "f2": max(r.completed for r in new2)}


async def test_extend_leases_only_touches_the_owners_jobs(store: Store) -> None:
    await empty_queue(store)
    base = await make_base(store)
    mine, theirs = job_of(base), job_of(base)
    await store.enqueue_jobs([mine], "p1", T0 + 10)
    await store.enqueue_jobs([theirs], "p2", T0 + 10)
    await store.extend_leases("p1", [mine.id, theirs.id, uid()], T0 + 100)
    await store.extend_leases("p1", [], T0 + 100)
    # At T0 + 50 only p2's job has expired: p1's was extended, p2's was not p1's to extend.
    assert [j.id for j in await store.claim_jobs("p3", T0 + 50, T0 + 200, 10)] == [theirs.id]
    assert [j.id for j in await store.claim_jobs("p4", T0 + 99, T0 + 160, 10)] == []
    assert {j.id for j in await store.claim_jobs("p3", T0 + 201, T0 + 300, 10)} == {mine.id, theirs.id}
    await empty_queue(store)


async def test_documents_and_their_jobs_are_written_together(store: Store) -> None:
    """insert_documents with a queue: the documents and their function jobs in one transaction,
    including on a collection already known (PostgreSQL's one-statement path), with one job
    or several, claimed or not."""
    await empty_queue(store)
    base = await make_base(store)
    first = StoredDoc(uid(), "acct", "user", NOW, {"n": 1})
    await store.insert_documents(base, "jobs_col", [first], "764")  # the collection is known from here on
    doc = StoredDoc(uid(), "acct", "user", NOW, {"n": 2})
    job = job_of(base, payload={"args": ["db-jobs_col", "db_created", {"id": doc.id}]})
    await store.insert_documents(base, "jobs_col", [doc], "764", QueuedJobs([job], "p1", T0 + 30))
    assert await store.get_document(base, "jobs_col", doc.id, ALL_ROWS) == doc
    assert await store.claim_jobs("p2", T0, T0 + 60, 10) == []  # leased to p1 until T0 + 30
    got = await store.claim_jobs("p2", T0 + 31, T0 + 60, 10)
    assert [(j.id, j.payload, j.attempts) for j in got] == [(job.id, job.payload, 1)]
    await empty_queue(store)
    two = StoredDoc(uid(), "acct", "user", NOW, {"n": 3})
    jobs = [job_of(base, payload={"args": [n, {"id": two.id}]}) for n in range(2)]
    await store.insert_documents(base, "jobs_col", [two], "764", QueuedJobs(jobs, "", 0.0))
    got = sorted(await store.claim_jobs("p2", T0, T0 + 60, 10), key=lambda j: j.payload["args"][0])
    assert [(j.id, j.payload, j.attempts) for j in got] == [(j.id, j.payload, 0) for j in jobs]  # not a retry
    await empty_queue(store)


async def test_a_failed_document_insert_queues_none_of_its_jobs(store: Store) -> None:
    await empty_queue(store)
    base = await make_base(store)
    taken = StoredDoc(uid(), "acct", "user", NOW, {})
    await store.insert_documents(base, "jobs_col", [taken], "764")
    duplicate = StoredDoc(taken.id, "acct", "user", NOW, {"again": True})
    with pytest.raises(Conflict):
        await store.insert_documents(base, "jobs_col", [duplicate], "764", QueuedJobs([job_of(base)], "p1", T0))
    assert await store.claim_jobs("p2", FAR, FAR, 10) == []
    assert await store.get_document(base, "jobs_col", taken.id, ALL_ROWS) == taken


# what an app's admin sees: the queue by state and the failed runs (the queue page, http/ui/queue.py)


def ordered_run(fn: FunctionDef, i: int, success: bool = False, payload: dict[str, Any] | None = None) -> FunctionRun:
    """The i-th run of a function with a time-ordered id (as the service makes them)."""
    run = run_of(fn, i, success=success, output=["Function started", f"run {i}", f"Error: failed {i}"])
    run.id = f"0190{i:04d}-0000-7000-8000-{uid()[-12:]}"
    run.payload = payload
    return run


async def test_failed_runs_newest_first_with_their_kept_input(store: Store) -> None:
    await empty_queue(store)
    base, other = await make_base(store), await make_base(store)
    fa, fb = await make_fn(store, base, "alpha"), await make_fn(store, base, "beta")
    theirs = await make_fn(store, other, "alpha")
    payload = {"args": ["db-orders", "db_created", {"id": "x", "ü": "😀", "n": [1, 2.5, None]}], "chain": 0}
    kept = ordered_run(fa, 1, payload=payload)
    not_kept = ordered_run(fb, 2)
    ok = ordered_run(fa, 3, success=True, payload=None)
    await store.add_run(base, kept, 100)
    await store.add_run(base, ok, 100)
    job = job_of(base, fb.id)
    await store.enqueue_jobs([job], "p1", T0)
    await store.finish_jobs([FinishedJob(job.id, base, not_kept)], 100)  # the queue's path too
    await store.add_run(other, ordered_run(theirs, 4, payload=payload), 100)

    listed = await store.failed_runs(base, 10)
    assert [(f.function_name, f.run.id, f.kept) for f in listed] == [
        ("beta", not_kept.id, False),
        ("alpha", kept.id, True),
    ]
    assert all(f.run.payload is None for f in listed)  # the list does not read inputs
    assert listed[1].run.output == kept.output and listed[1].run.success is False
    assert [f.run.id for f in await store.failed_runs(base, 1)] == [not_kept.id]

    one = await store.failed_run(base, kept.id)
    assert one is not None and (one.function_name, one.kept, one.run.payload) == ("alpha", True, payload)
    bare = await store.failed_run(base, not_kept.id)
    assert bare is not None and (bare.kept, bare.run.payload) == (False, None)
    assert await store.failed_run(base, ok.id) is None  # a success is not a failed run
    assert await store.failed_run(other, kept.id) is None  # another app's run
    assert await store.failed_run(base, uid()) is None
    # the history reads runs without their input
    assert [r.id for r in await store.runs(base, fa.id, 10)] == [kept.id, ok.id]
    assert all(r.payload is None for r in await store.runs(base, fa.id, 10))
    # deleting a function takes its failed runs with it
    await store.delete_function(base, "beta")
    assert [f.run.id for f in await store.failed_runs(base, 10)] == [kept.id]


async def test_queued_jobs_of_one_app_by_state(store: Store) -> None:
    await empty_queue(store)
    base, other = await make_base(store), await make_base(store)
    fn = await make_fn(store, base, "worker")
    unclaimed = job_of(base, fn.id, created="2024-05-01T10:00:01Z")
    expired = job_of(base, fn.id, created="2024-05-01T10:00:02Z", attempts=1)
    held = job_of(base, fn.id, created="2024-05-01T10:00:03Z")
    held_too = job_of(base, fn.id, created="2024-05-01T10:00:04Z")
    orphan = job_of(base, uid(), created="2024-05-01T10:00:05Z")  # its function was deleted since
    await store.enqueue_jobs([unclaimed, orphan], "", 0.0)
    await store.enqueue_jobs([expired], "dead", T0 - 5)
    await store.enqueue_jobs([held, held_too], "p1", T0 + 60)
    await store.enqueue_jobs([job_of(other, uid())], "", 0.0)  # another app's job is not listed

    state = await store.queued_jobs(base, T0, 10)
    assert (state.pending_count, state.running_count) == (3, 2)
    assert [(j.id, j.function_name, j.owner, j.attempts) for j in state.pending] == [
        (unclaimed.id, "worker", "", -1),
        (expired.id, "worker", "dead", 1),
        (orphan.id, "", "", -1),
    ]
    assert [(j.id, j.owner, j.lease_until, j.created) for j in state.running] == [
        (held.id, "p1", T0 + 60, held.created),
        (held_too.id, "p1", T0 + 60, held_too.created),
    ]
    # at most ``limit`` of each state, the counts stay whole
    small = await store.queued_jobs(base, T0, 1)
    assert ([j.id for j in small.pending], [j.id for j in small.running]) == ([unclaimed.id], [held.id])
    assert (small.pending_count, small.running_count) == (3, 2)
    # once their lease has expired, held jobs are pending again
    later = await store.queued_jobs(base, T0 + 61, 10)
    assert (later.pending_count, later.running_count, later.running) == (5, 0, [])
    await empty_queue(store)
    empty = await store.queued_jobs(base, T0, 10)
    assert (empty.pending, empty.running, empty.pending_count, empty.running_count) == ([], [], 0, 0)


async def test_runs_recorded_before_inputs_were_kept_read_as_not_kept(
    new_store: Callable[[], Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kept-input migration reaches runs recorded before it: they are listed, as not kept."""

    def before(scripts: list[str]) -> list[str]:
        return scripts[: next(i for i, s in enumerate(scripts) if "function_runs_failed" in s)]

    with monkeypatch.context() as m:
        m.setattr(postgresql, "BASE_MIGRATIONS", before(postgresql.BASE_MIGRATIONS))
        m.setattr(sqlite, "MIGRATIONS", before(sqlite.MIGRATIONS))
        old = new_store()
        await old.open()
        base = await make_base(old)
        fn = await make_fn(old, base, "legacy")
        run = ordered_run(fn, 1)
        # recorded as a server without the migration did: no input column
        row = (run.id, fn.id, run.started, run.completed)
        if isinstance(old, sqlite.SQLiteStore):
            await old._write(
                lambda c: c.execute(
                    "INSERT INTO function_runs (base, id, function_id, version, started, completed, success, output) "
                    "VALUES (?, ?, ?, 1, ?, ?, 0, '[]')",
                    (base.name, *row),
                )
            )
        else:
            assert isinstance(old, postgresql.PostgresStore)
            await old._execute(
                f'INSERT INTO "{base.name}".function_runs (id, function_id, version, started, completed, success, output) '
                "VALUES ($1, $2, 1, $3, $4, false, '[]')",
                *row,
            )
        await old.close()
    s = new_store()
    await s.open()
    try:
        assert [(f.run.id, f.kept) for f in await s.failed_runs(base, 10)] == [(run.id, False)]
        again = await s.failed_run(base, run.id)
        assert again is not None and again.run.payload is None
    finally:
        await s.close()
