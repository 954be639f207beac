"""Scheduled tasks and their runs in PostgreSQL, in the system schema ``sb``."""

from __future__ import annotations

import asyncpg
import orjson

from sbserver.backends.storage.postgresql_base import PostgresBase, _count, _limit
from sbserver.backends.storage.tasks.base import TaskStore
from sbserver.types import Base, Task, TaskRun

_TASK_COLS = "id, base, name, type, value, meta, interval, timezone, enabled, last, next_run, anchor, running_until"
_TASK_RUN_COLS = "id, task_id, due, started, completed, outcome, error, output"


def _task(row: asyncpg.Record) -> Task:
    return Task(*row)


def _task_run(row: asyncpg.Record) -> TaskRun:
    return TaskRun(row[0], row[1], row[2], row[3], row[4], row[5], row[6], orjson.loads(row[7]))


async def _insert_task_run(c: asyncpg.Connection, run: TaskRun, keep: int) -> None:
    """Record a task run and keep the task's newest ``keep`` runs; the caller holds the transaction."""
    await c.execute(
        f"INSERT INTO sb.task_runs ({_TASK_RUN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        *(run.id, run.task_id, run.due, run.started, run.completed, run.outcome, run.error),
        orjson.dumps(run.output).decode(),
    )
    await c.execute(
        "DELETE FROM sb.task_runs WHERE task_id = $1 AND seq <= ("
        "SELECT seq FROM sb.task_runs WHERE task_id = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2)",
        run.task_id,
        max(keep, 0),  # SQLite reads a negative OFFSET as 0; PostgreSQL refuses it
    )


class PostgresTasks(PostgresBase, TaskStore):
    """The scheduled tasks contract on PostgreSQL; needs the plumbing of ``PostgresBase``."""

    # scheduled tasks (installation-wide, in the system schema)
    async def create_task(self, task: Task) -> None:
        await self._execute(
            f"INSERT INTO sb.tasks ({_TASK_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            *(task.id, task.base, task.name, task.type, task.value, task.meta, task.interval, task.timezone),
            *(task.enabled, task.last, task.next_run, task.anchor, task.running_until),
        )

    async def update_task(self, task: Task) -> bool:
        status = await self._execute(
            "UPDATE sb.tasks SET name = $1, type = $2, value = $3, meta = $4, interval = $5, timezone = $6, "
            "enabled = $7, next_run = $8 WHERE id = $9 AND base = $10",
            *(task.name, task.type, task.value, task.meta, task.interval, task.timezone, task.enabled),
            *(task.next_run, task.id, task.base),
        )
        return _count(status) > 0

    async def delete_task(self, base: Base, task_id: str) -> bool:
        async with self._conn(transaction=True) as c:
            status = await c.execute("DELETE FROM sb.tasks WHERE id = $1 AND base = $2", task_id, base.name)
            if not _count(status):
                return False
            await c.execute("DELETE FROM sb.task_runs WHERE task_id = $1", task_id)
            return True

    async def task(self, base: Base, task_id: str) -> Task | None:
        row = await self._fetchrow(f"SELECT {_TASK_COLS} FROM sb.tasks WHERE id = $1 AND base = $2", task_id, base.name)
        return None if row is None else _task(row)

    async def tasks(self, base: Base) -> list[Task]:
        rows = await self._fetch(f"SELECT {_TASK_COLS} FROM sb.tasks WHERE base = $1 ORDER BY name, id", base.name)
        return [_task(r) for r in rows]

    async def due_tasks(self, now: float, limit: int) -> list[Task]:
        rows = await self._fetch(
            f"SELECT {_TASK_COLS} FROM sb.tasks WHERE enabled AND next_run <= $1 ORDER BY next_run, id LIMIT $2",
            now,
            _limit(limit),
        )
        return [_task(r) for r in rows]

    async def next_due(self) -> float | None:
        row = await self._fetchrow("SELECT MIN(next_run) FROM sb.tasks WHERE enabled")
        return None if row is None or row[0] is None else float(row[0])

    async def claim_task(
        self, task_id: str, due: float, next_run: float, last: str, running_until: float, now: float
    ) -> bool:
        """One conditional UPDATE: a concurrent claimer of the same tick waits for the row lock,
        then re-checks the condition against the committed row, where ``next_run`` has moved on."""
        status = await self._execute(
            "UPDATE sb.tasks SET next_run = $1, last = $2, running_until = $3 "
            "WHERE id = $4 AND next_run = $5 AND enabled AND running_until <= $6",
            *(next_run, last, running_until, task_id, due, now),
        )
        return _count(status) > 0

    async def skip_task(self, task_id: str, due: float, next_run: float, run: TaskRun, keep: int) -> bool:
        async with self._conn(transaction=True) as c:
            status = await c.execute(
                "UPDATE sb.tasks SET next_run = $1 WHERE id = $2 AND next_run = $3 AND enabled",
                next_run,
                task_id,
                due,
            )
            if not _count(status):
                return False
            await _insert_task_run(c, run, keep)
            return True

    async def finish_task(self, task_id: str, run: TaskRun, keep: int) -> None:
        async with self._conn(transaction=True) as c:
            # The UPDATE locks the row, so a concurrent delete_task waits and then removes this run too.
            status = await c.execute("UPDATE sb.tasks SET running_until = 0 WHERE id = $1", task_id)
            if _count(status):
                await _insert_task_run(c, run, keep)

    async def task_runs(self, task_id: str, limit: int) -> list[TaskRun]:
        rows = await self._fetch(
            f"SELECT {_TASK_RUN_COLS} FROM sb.task_runs WHERE task_id = $1 ORDER BY seq DESC LIMIT $2",
            task_id,
            _limit(limit),
        )
        return [_task_run(r) for r in reversed(rows)]
