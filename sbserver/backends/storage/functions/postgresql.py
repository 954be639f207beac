"""Functions and their runs in each base's schema; the job queue in the system schema ``sb``."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import asyncpg
import orjson

from sbserver.backends.storage.functions.base import FunctionStore, job_rows, kept_input
from sbserver.backends.storage.postgresql_base import PostgresBase, _limit, _schema
from sbserver.types import Base, FailedRun, FinishedJob, FunctionDef, FunctionRun, Job, QueuedJob, QueueState

_FN_COLS = "id, name, trigger, code, version, last_updated, last_run, secrets"
_RUN_COLS = "id, function_id, version, started, completed, success, output"
_JOB_COLS = "id, base, function_id, payload, created, attempts"


def _fn(row: asyncpg.Record) -> FunctionDef:
    return FunctionDef(*row)


def _run(row: asyncpg.Record) -> FunctionRun:
    return FunctionRun(row[0], row[1], row[2], row[3], row[4], row[5], orjson.loads(row[6]))


def _job(row: asyncpg.Record) -> Job:
    return Job(row[0], row[1], row[2], orjson.loads(row[3]), row[4], row[5])


def _failed(row: asyncpg.Record) -> FailedRun:
    run = _run(row)
    if row[9]:
        run.payload = orjson.loads(row[9])
    return FailedRun(row[7], run, row[8])


def _failed_statement(schema: str, payload: str) -> str:
    """A base's failed runs with their function's name (``payload``: the input column, or '')."""
    return (
        f"SELECT r.id, r.function_id, r.version, r.started, r.completed, r.success, r.output, f.name, "
        f"r.input != '', {payload} FROM {schema}.function_runs r JOIN {schema}.functions f ON f.id = r.function_id "
        "WHERE NOT r.success "
    )


@lru_cache(maxsize=256)
def _finish_statement(schema: str) -> str:
    """Runs of one app recorded in one statement: remove their finished jobs ($1, may be empty),
    record the runs ($2-$8 and their kept input $12, column by column, in order), set each
    function's last run ($9, $10) and trim its history. Used for every run a function records (finished jobs, web runs, tasks).
    Every part sees the table as it was before the statement, so the trim keeps, of the runs
    already there, the newest ``keep`` minus the number being added ($9, $11)."""
    return (
        "WITH gone AS (DELETE FROM sb.fn_jobs WHERE id = ANY($1::text[])), "
        f"added AS (INSERT INTO {schema}.function_runs ({_RUN_COLS}, input) "
        "SELECT id, fid, version, started, completed, success, output, input FROM unnest("
        "$2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::bool[], $8::text[], $12::text[]) "
        "WITH ORDINALITY AS r(id, fid, version, started, completed, success, output, input, n) ORDER BY n), "
        f"latest AS (UPDATE {schema}.functions f SET last_run = v.t "
        "FROM unnest($9::text[], $10::text[]) AS v(id, t) WHERE f.id = v.id) "
        f"DELETE FROM {schema}.function_runs r USING unnest($9::text[], $11::int[]) AS k(fid, off) "
        f"WHERE r.function_id = k.fid AND r.seq <= (SELECT seq FROM {schema}.function_runs "
        "WHERE function_id = k.fid ORDER BY seq DESC LIMIT 1 OFFSET k.off)"
    )


def _finish_arguments(runs: list[tuple[Base, FunctionRun]], keep: int) -> list[list[Any]]:
    """Parameters $2 to $12 of ``_finish_statement``. Of a function's runs in the batch only the
    newest ``keep`` are written: the trim would remove the others at once."""
    keep = max(keep, 0)
    outputs = [orjson.dumps(r.output).decode() for _, r in runs]  # fails before any write
    last: dict[str, str] = {}
    added: dict[str, int] = {}
    for _, r in runs:
        last[r.function_id] = max(last.get(r.function_id, ""), r.completed)
        added[r.function_id] = added.get(r.function_id, 0) + 1
    skip = {f: n - keep for f, n in added.items() if n > keep}
    kept: list[tuple[FunctionRun, str]] = []
    for (_, r), output in zip(runs, outputs, strict=True):
        if skip.get(r.function_id, 0) > 0:
            skip[r.function_id] -= 1
            continue
        kept.append((r, output))
    return [
        [r.id for r, _ in kept],
        [r.function_id for r, _ in kept],
        [r.version for r, _ in kept],
        [r.started for r, _ in kept],
        [r.completed for r, _ in kept],
        [r.success for r, _ in kept],
        [output for _, output in kept],
        list(last),
        list(last.values()),
        [max(keep - added[f], 0) for f in last],
        [kept_input(r.payload) for r, _ in kept],
    ]


INSERT_JOB = (
    "INSERT INTO sb.fn_jobs (id, base, function_id, payload, created, owner, lease_until, attempts) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)
# The same rows given column by column, as arrays in parameters $7 to $14 (after a document's six)
INSERT_JOBS_FROM_ARRAYS = (
    "INSERT INTO sb.fn_jobs (id, base, function_id, payload, created, owner, lease_until, attempts) "
    "SELECT * FROM unnest($7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], "
    "$13::float8[], $14::int[])"
)


class PostgresFunctions(PostgresBase, FunctionStore):
    """The functions contract on PostgreSQL; needs the plumbing of ``PostgresBase``."""

    # server-side functions
    async def create_function(self, base: Base, fn: FunctionDef) -> None:
        await self._execute(
            f"INSERT INTO {_schema(base.name)}.functions ({_FN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            *(fn.id, fn.name, fn.trigger, fn.code, fn.version, fn.last_updated, fn.last_run, fn.secrets),
        )

    async def update_function(
        self, base: Base, fn_id: str, code: str, trigger: str, secrets: str | None, updated: str
    ) -> FunctionDef | None:
        row = await self._fetchrow(
            f"UPDATE {_schema(base.name)}.functions SET code = $1, trigger = $2, secrets = COALESCE($3::text, secrets), "
            f"version = version + 1, last_updated = $4 WHERE id = $5 RETURNING {_FN_COLS}",
            *(code, trigger, secrets, updated, fn_id),
        )
        return None if row is None else _fn(row)

    async def delete_function(self, base: Base, name: str) -> bool:
        schema = _schema(base.name)
        async with self._conn(transaction=True) as c:
            fn_id = await c.fetchval(f"DELETE FROM {schema}.functions WHERE name = $1 RETURNING id", name)
            if fn_id is None:
                return False
            await c.execute(f"DELETE FROM {schema}.function_runs WHERE function_id = $1", fn_id)
            return True

    async def function_by_name(self, base: Base, name: str) -> FunctionDef | None:
        row = await self._fetchrow(f"SELECT {_FN_COLS} FROM {_schema(base.name)}.functions WHERE name = $1", name)
        return None if row is None else _fn(row)

    async def functions(self, base: Base) -> list[FunctionDef]:
        return [
            _fn(r) for r in await self._fetch(f"SELECT {_FN_COLS} FROM {_schema(base.name)}.functions ORDER BY name")
        ]

    async def functions_for(self, base: Base, triggers: list[str]) -> list[FunctionDef]:
        if not triggers:
            return []
        rows = await self._fetch(
            f"SELECT {_FN_COLS} FROM {_schema(base.name)}.functions WHERE trigger = ANY($1::text[]) ORDER BY name",
            list(triggers),
        )
        return [_fn(r) for r in rows]

    async def add_run(self, base: Base, run: FunctionRun, keep: int) -> None:
        await self._execute(_finish_statement(_schema(base.name)), [], *_finish_arguments([(base, run)], keep))

    async def runs(self, base: Base, fn_id: str, limit: int) -> list[FunctionRun]:
        rows = await self._fetch(
            f"SELECT {_RUN_COLS} FROM {_schema(base.name)}.function_runs WHERE function_id = $1 "
            'ORDER BY started COLLATE "C" DESC, seq DESC LIMIT $2',
            fn_id,
            _limit(limit),
        )
        return [_run(r) for r in reversed(rows)]

    # encryption at rest of function secrets
    async def stored_secrets(self) -> list[tuple[str, str, str]]:
        found: list[tuple[str, str, str]] = []
        for (name,) in await self._fetch("SELECT name FROM sb.bases ORDER BY name"):
            rows = await self._fetch(f"SELECT id, secrets FROM {_schema(name)}.functions WHERE secrets != ''")
            found.extend((name, r[0], r[1]) for r in rows)
        return found

    async def replace_secrets(self, rows: list[tuple[str, str, str, str]]) -> int:
        replaced = 0
        async with self._conn(transaction=True) as c:
            for name, fn_id, old, new in rows:
                status = await c.execute(
                    f"UPDATE {_schema(name)}.functions SET secrets = $1 WHERE id = $2 AND secrets = $3", new, fn_id, old
                )
                replaced += int(status.split()[-1])
        return replaced

    # per-app limits (installation-wide, in the system schema)
    async def function_limits(self, base: Base) -> dict[str, int]:
        row = await self._fetchrow("SELECT limits FROM sb.fn_limits WHERE base = $1", base.name)
        return {} if row is None else dict(orjson.loads(row[0]))

    async def set_function_limits(self, base: Base, limits: dict[str, int]) -> None:
        await self._execute(
            "INSERT INTO sb.fn_limits (base, limits) VALUES ($1, $2) ON CONFLICT (base) DO UPDATE SET limits = $2",
            base.name,
            orjson.dumps(limits).decode(),
        )

    # the durable queue of function runs (installation-wide, in the system schema)
    async def enqueue_jobs(self, jobs: list[Job], owner: str, lease_until: float) -> None:
        if not jobs:
            return
        rows = job_rows(jobs, owner, lease_until)
        async with self._conn(transaction=True) as c:
            await c.executemany(INSERT_JOB, rows)

    async def claim_jobs(self, owner: str, now: float, lease_until: float, limit: int) -> list[Job]:
        """One statement: SKIP LOCKED lets concurrent claimers take disjoint jobs without waiting,
        and a job another claimer leased meanwhile fails the re-checked ``lease_until < now``."""
        rows = await self._fetch(
            "UPDATE sb.fn_jobs SET owner = $1, lease_until = $2, attempts = attempts + 1 "
            "WHERE id IN (SELECT id FROM sb.fn_jobs WHERE lease_until < $3 "
            "ORDER BY created, id LIMIT $4 FOR UPDATE SKIP LOCKED) "
            f"RETURNING {_JOB_COLS}",
            owner,
            lease_until,
            now,
            _limit(limit),
        )
        jobs = [_job(r) for r in rows]
        jobs.sort(key=lambda j: (j.created, j.id))  # RETURNING has no order; "C" collation is code-point order
        return jobs

    async def extend_leases(self, owner: str, job_ids: list[str], lease_until: float) -> None:
        if job_ids:
            await self._execute(
                "UPDATE sb.fn_jobs SET lease_until = $1 WHERE id = ANY($2::text[]) AND owner = $3",
                lease_until,
                job_ids,
                owner,
            )

    async def finish_jobs(self, finished: list[FinishedJob], keep: int) -> None:
        if not finished:
            return
        ids = [f.job_id for f in finished]
        by_schema: dict[str, list[tuple[Base, FunctionRun]]] = {}
        for f in finished:
            if f.base is not None and f.run is not None:
                by_schema.setdefault(_schema(f.base.name), []).append((f.base, f.run))
        if not by_schema:
            await self._execute("DELETE FROM sb.fn_jobs WHERE id = ANY($1::text[])", ids)
            return
        arguments = {schema: _finish_arguments(group, keep) for schema, group in by_schema.items()}
        if len(arguments) == 1:  # the usual batch, one app's runs: one statement
            [(schema, args)] = arguments.items()
            await self._execute(_finish_statement(schema), ids, *args)
            return
        async with self._conn(transaction=True) as c:
            for schema, args in arguments.items():
                await c.execute(_finish_statement(schema), ids, *args)
                ids = []  # removed by the first

    # what an app's admin sees of the queue and of failed runs
    async def queued_jobs(self, base: Base, now: float, limit: int) -> QueueState:
        listed = (
            "SELECT j.id, j.function_id, COALESCE(f.name, ''), j.created, j.attempts, j.owner, j.lease_until "
            f"FROM sb.fn_jobs j LEFT JOIN {_schema(base.name)}.functions f ON f.id = j.function_id "
            "WHERE j.base = $1 AND j.lease_until {compare} $2 ORDER BY j.created, j.id LIMIT $3"
        )
        async with self._conn() as c:
            pending = await c.fetch(listed.format(compare="<"), base.name, now, _limit(limit))
            running = await c.fetch(listed.format(compare=">="), base.name, now, _limit(limit))
            counts = await c.fetchrow(
                "SELECT count(*) FILTER (WHERE lease_until < $2), count(*) FILTER (WHERE lease_until >= $2) "
                "FROM sb.fn_jobs WHERE base = $1",
                base.name,
                now,
            )
        assert counts is not None
        return QueueState([QueuedJob(*r) for r in pending], [QueuedJob(*r) for r in running], counts[0], counts[1])

    async def failed_runs(self, base: Base, limit: int) -> list[FailedRun]:
        rows = await self._fetch(
            _failed_statement(_schema(base.name), "''") + 'ORDER BY r.id COLLATE "C" DESC LIMIT $1', _limit(limit)
        )
        return [_failed(r) for r in rows]

    async def failed_run(self, base: Base, run_id: str) -> FailedRun | None:
        row = await self._fetchrow(
            _failed_statement(_schema(base.name), "r.input") + 'AND r.id COLLATE "C" = $1', run_id
        )
        return None if row is None else _failed(row)
