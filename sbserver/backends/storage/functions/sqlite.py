"""Functions, their runs and the job queue in SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from sbserver.backends.storage.functions.base import FunctionStore, job_rows, kept_input
from sbserver.backends.storage.sqlite_base import SQLiteBase
from sbserver.types import Base, FailedRun, FinishedJob, FunctionDef, FunctionRun, Job, QueuedJob, QueueState

_FN_COLS = "id, name, trigger, code, version, last_updated, last_run, secrets"
_RUN_COLS = "id, function_id, version, started, completed, success, output"


def _fn(row: Sequence[Any]) -> FunctionDef:
    return FunctionDef(*row)


def _run(row: Sequence[Any]) -> FunctionRun:
    return FunctionRun(row[0], row[1], row[2], row[3], row[4], bool(row[5]), orjson.loads(row[6]))


# A job as the queue page lists it (its function's name joined in) and a failed run with its name
_QUEUED = (
    "SELECT j.id, j.function_id, COALESCE(f.name, ''), j.created, j.attempts, j.owner, j.lease_until "
    "FROM fn_jobs j LEFT JOIN functions f ON f.base = j.base AND f.id = j.function_id "
)
_FAILED = (
    "SELECT r.id, r.function_id, r.version, r.started, r.completed, r.success, r.output, f.name, "
    "r.input != '', {input} FROM function_runs r JOIN functions f ON f.base = r.base AND f.id = r.function_id "
    "WHERE r.base = ? AND r.success = 0 "
)


def _failed(row: Sequence[Any]) -> FailedRun:
    run = _run(row)
    if row[9]:
        run.payload = orjson.loads(row[9])
    return FailedRun(row[7], run, bool(row[8]))


def _insert_runs(c: sqlite3.Connection, runs: list[tuple[Base, FunctionRun]], keep: int) -> None:
    """Record runs, set each function's last run and keep its newest ``keep`` runs."""
    c.executemany(
        f"INSERT INTO function_runs (base, {_RUN_COLS}, input) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                b.name,
                r.id,
                r.function_id,
                r.version,
                r.started,
                r.completed,
                int(r.success),
                orjson.dumps(r.output).decode(),
                kept_input(r.payload),
            )
            for b, r in runs
        ],
    )
    last: dict[tuple[str, str], str] = {}
    for b, r in runs:
        key = (b.name, r.function_id)
        last[key] = max(last.get(key, ""), r.completed)
    c.executemany(
        "UPDATE functions SET last_run = ? WHERE base = ? AND id = ?", [(t, b, f) for (b, f), t in last.items()]
    )
    c.executemany(
        "DELETE FROM function_runs WHERE base = ? AND function_id = ? AND seq <= ("
        "SELECT seq FROM function_runs WHERE base = ? AND function_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
        [(b, f, b, f, keep) for b, f in last],
    )


INSERT_JOB = (
    "INSERT INTO fn_jobs (id, base, function_id, payload, created, owner, lease_until, attempts) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


class SQLiteFunctions(SQLiteBase, FunctionStore):
    """The functions contract on SQLite; needs the plumbing of ``SQLiteBase``."""

    # server-side functions
    async def create_function(self, base: Base, fn: FunctionDef) -> None:
        await self._write(
            lambda c: c.execute(
                f"INSERT INTO functions (base, {_FN_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (base.name, fn.id, fn.name, fn.trigger, fn.code, fn.version, fn.last_updated, fn.last_run, fn.secrets),
            )
        )

    async def update_function(
        self, base: Base, fn_id: str, code: str, trigger: str, secrets: str | None, updated: str
    ) -> FunctionDef | None:
        def tx(c: sqlite3.Connection) -> FunctionDef | None:
            cur = c.execute(
                "UPDATE functions SET code = ?, trigger = ?, secrets = COALESCE(?, secrets), version = version + 1, "
                "last_updated = ? WHERE base = ? AND id = ?",
                (code, trigger, secrets, updated, base.name, fn_id),
            )
            if not cur.rowcount:
                return None
            row = c.execute(
                f"SELECT {_FN_COLS} FROM functions WHERE base = ? AND id = ?", (base.name, fn_id)
            ).fetchone()
            return _fn(row)

        return await self._write(tx)

    async def delete_function(self, base: Base, name: str) -> bool:
        def tx(c: sqlite3.Connection) -> bool:
            row = c.execute("SELECT id FROM functions WHERE base = ? AND name = ?", (base.name, name)).fetchone()
            if row is None:
                return False
            c.execute("DELETE FROM functions WHERE base = ? AND id = ?", (base.name, row[0]))
            c.execute("DELETE FROM function_runs WHERE base = ? AND function_id = ?", (base.name, row[0]))
            return True

        return await self._write(tx)

    async def function_by_name(self, base: Base, name: str) -> FunctionDef | None:
        row = self._one(f"SELECT {_FN_COLS} FROM functions WHERE base = ? AND name = ?", (base.name, name))
        return None if row is None else _fn(row)

    async def functions(self, base: Base) -> list[FunctionDef]:
        return [
            _fn(r) for r in self._all(f"SELECT {_FN_COLS} FROM functions WHERE base = ? ORDER BY name", (base.name,))
        ]

    async def functions_for(self, base: Base, triggers: list[str]) -> list[FunctionDef]:
        if not triggers:
            return []
        marks = ",".join("?" * len(triggers))
        rows = self._all(
            f"SELECT {_FN_COLS} FROM functions WHERE base = ? AND trigger IN ({marks}) ORDER BY name",
            (base.name, *triggers),
        )
        return [_fn(r) for r in rows]

    async def add_run(self, base: Base, run: FunctionRun, keep: int) -> None:
        await self._write(lambda c: _insert_runs(c, [(base, run)], keep))

    async def runs(self, base: Base, fn_id: str, limit: int) -> list[FunctionRun]:
        rows = self._all(
            f"SELECT {_RUN_COLS} FROM function_runs WHERE base = ? AND function_id = ? "
            "ORDER BY started DESC, seq DESC LIMIT ?",
            (base.name, fn_id, limit),
        )
        return [_run(r) for r in reversed(rows)]

    # encryption at rest of function secrets
    async def stored_secrets(self) -> list[tuple[str, str, str]]:
        return [tuple(r) for r in self._all("SELECT base, id, secrets FROM functions WHERE secrets != ''")]

    async def replace_secrets(self, rows: list[tuple[str, str, str, str]]) -> int:
        def tx(c: sqlite3.Connection) -> int:
            return sum(
                c.execute(
                    "UPDATE functions SET secrets = ? WHERE base = ? AND id = ? AND secrets = ?", (new, b, f, old)
                ).rowcount
                for b, f, old, new in rows
            )

        return await self._write(tx) if rows else 0

    # per-app limits
    async def function_limits(self, base: Base) -> dict[str, int]:
        row = self._one("SELECT limits FROM fn_limits WHERE base = ?", (base.name,))
        return {} if row is None else dict(orjson.loads(row[0]))

    async def set_function_limits(self, base: Base, limits: dict[str, int]) -> None:
        text = orjson.dumps(limits).decode()
        await self._write(
            lambda c: c.execute(
                "INSERT INTO fn_limits (base, limits) VALUES (?, ?) ON CONFLICT (base) DO UPDATE SET limits = ?",
                (base.name, text, text),
            )
        )

    # the durable queue of function runs
    async def enqueue_jobs(self, jobs: list[Job], owner: str, lease_until: float) -> None:
        rows = job_rows(jobs, owner, lease_until)
        await self._write(lambda c: c.executemany(INSERT_JOB, rows))

    async def claim_jobs(self, owner: str, now: float, lease_until: float, limit: int) -> list[Job]:
        def tx(c: sqlite3.Connection) -> list[Job]:
            rows = c.execute(
                "SELECT id, base, function_id, payload, created, attempts FROM fn_jobs WHERE lease_until < ? "
                "ORDER BY created, id LIMIT ?",
                (now, limit),
            ).fetchall()
            jobs = [Job(r[0], r[1], r[2], orjson.loads(r[3]), r[4], r[5] + 1) for r in rows]
            c.executemany(
                "UPDATE fn_jobs SET owner = ?, lease_until = ?, attempts = attempts + 1 WHERE id = ?",
                [(owner, lease_until, j.id) for j in jobs],
            )
            return jobs

        return await self._write(tx)

    async def extend_leases(self, owner: str, job_ids: list[str], lease_until: float) -> None:
        await self._write(
            lambda c: c.executemany(
                "UPDATE fn_jobs SET lease_until = ? WHERE id = ? AND owner = ?",
                [(lease_until, job_id, owner) for job_id in job_ids],
            )
        )

    async def finish_jobs(self, finished: list[FinishedJob], keep: int) -> None:
        runs = [(f.base, f.run) for f in finished if f.base is not None and f.run is not None]

        def tx(c: sqlite3.Connection) -> None:
            c.executemany("DELETE FROM fn_jobs WHERE id = ?", [(f.job_id,) for f in finished])
            if runs:
                _insert_runs(c, runs, keep)

        if finished:
            await self._write(tx)

    # what an app's admin sees of the queue and of failed runs
    async def queued_jobs(self, base: Base, now: float, limit: int) -> QueueState:
        async def state(compare: str) -> tuple[list[QueuedJob], int]:
            """The jobs whose lease compares so with ``now`` (the base's index holds both)."""
            where = f"WHERE j.base = ? AND j.lease_until {compare} ? "
            rows = await self._all_off(_QUEUED + where + "ORDER BY j.created, j.id LIMIT ?", (base.name, now, limit))
            count = await self._one_off("SELECT count(*) FROM fn_jobs j " + where, (base.name, now))
            return [QueuedJob(r[0], r[1], r[2], r[3], r[4], r[5], float(r[6])) for r in rows], count[0]

        (pending, waiting), (running, held) = await state("<"), await state(">=")
        return QueueState(pending, running, waiting, held)

    async def failed_runs(self, base: Base, limit: int) -> list[FailedRun]:
        rows = self._all(_FAILED.format(input="''") + "ORDER BY r.id DESC LIMIT ?", (base.name, limit))
        return [_failed(r) for r in rows]

    async def failed_run(self, base: Base, run_id: str) -> FailedRun | None:
        row = self._one(_FAILED.format(input="r.input") + "AND r.id = ?", (base.name, run_id))
        return None if row is None else _failed(row)
