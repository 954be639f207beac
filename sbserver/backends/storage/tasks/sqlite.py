"""Scheduled tasks and their runs in SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from sbserver.backends.storage.sqlite_base import SQLiteBase
from sbserver.backends.storage.tasks.base import TaskStore
from sbserver.types import Base, Task, TaskRun

_TASK_COLS = "id, base, name, type, value, meta, interval, timezone, enabled, last, next_run, anchor, running_until"
_TASK_RUN_COLS = "id, task_id, due, started, completed, outcome, error, output"


def _task(row: Sequence[Any]) -> Task:
    return Task(*row[:8], bool(row[8]), *row[9:])  # type: ignore[call-arg,misc,unused-ignore]


def _task_run(row: Sequence[Any]) -> TaskRun:
    return TaskRun(*row[:7], orjson.loads(row[7]))  # type: ignore[call-arg,misc,unused-ignore]


def _insert_task_run(c: sqlite3.Connection, run: TaskRun, keep: int) -> None:
    c.execute(
        f"INSERT INTO task_runs ({_TASK_RUN_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run.id,
            run.task_id,
            run.due,
            run.started,
            run.completed,
            run.outcome,
            run.error,
            orjson.dumps(run.output).decode(),
        ),
    )
    c.execute(
        "DELETE FROM task_runs WHERE task_id = ? AND seq <= ("
        "SELECT seq FROM task_runs WHERE task_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
        (run.task_id, run.task_id, max(keep, 0)),
    )


class SQLiteTasks(SQLiteBase, TaskStore):
    """The scheduled tasks contract on SQLite; needs the plumbing of ``SQLiteBase``."""

    # scheduled tasks
    async def create_task(self, task: Task) -> None:
        await self._write(
            lambda c: c.execute(
                f"INSERT INTO tasks ({_TASK_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    task.id,
                    task.base,
                    task.name,
                    task.type,
                    task.value,
                    task.meta,
                    task.interval,
                    task.timezone,
                    int(task.enabled),
                    task.last,
                    task.next_run,
                    task.anchor,
                    task.running_until,
                ),
            )
        )

    async def update_task(self, task: Task) -> bool:
        cur = await self._write(
            lambda c: c.execute(
                "UPDATE tasks SET name = ?, type = ?, value = ?, meta = ?, interval = ?, timezone = ?, enabled = ?, "
                "next_run = ? WHERE id = ? AND base = ?",
                (
                    task.name,
                    task.type,
                    task.value,
                    task.meta,
                    task.interval,
                    task.timezone,
                    int(task.enabled),
                    task.next_run,
                    task.id,
                    task.base,
                ),
            )
        )
        return cur.rowcount > 0

    async def delete_task(self, base: Base, task_id: str) -> bool:
        def tx(c: sqlite3.Connection) -> bool:
            cur = c.execute("DELETE FROM tasks WHERE id = ? AND base = ?", (task_id, base.name))
            if cur.rowcount:
                c.execute("DELETE FROM task_runs WHERE task_id = ?", (task_id,))
            return cur.rowcount > 0

        return await self._write(tx)

    async def task(self, base: Base, task_id: str) -> Task | None:
        row = self._one(f"SELECT {_TASK_COLS} FROM tasks WHERE id = ? AND base = ?", (task_id, base.name))
        return None if row is None else _task(row)

    async def tasks(self, base: Base) -> list[Task]:
        return [
            _task(r)
            for r in self._all(f"SELECT {_TASK_COLS} FROM tasks WHERE base = ? ORDER BY name, id", (base.name,))
        ]

    async def due_tasks(self, now: float, limit: int) -> list[Task]:
        rows = self._all(
            f"SELECT {_TASK_COLS} FROM tasks WHERE enabled = 1 AND next_run <= ? ORDER BY next_run, id LIMIT ?",
            (now, limit),
        )
        return [_task(r) for r in rows]

    async def next_due(self) -> float | None:
        row = self._one("SELECT MIN(next_run) FROM tasks WHERE enabled = 1")
        return None if row is None or row[0] is None else float(row[0])

    async def claim_task(
        self, task_id: str, due: float, next_run: float, last: str, running_until: float, now: float
    ) -> bool:
        cur = await self._write(
            lambda c: c.execute(
                "UPDATE tasks SET next_run = ?, last = ?, running_until = ? "
                "WHERE id = ? AND next_run = ? AND enabled = 1 AND running_until <= ?",
                (next_run, last, running_until, task_id, due, now),
            )
        )
        return cur.rowcount > 0

    async def skip_task(self, task_id: str, due: float, next_run: float, run: TaskRun, keep: int) -> bool:
        def tx(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "UPDATE tasks SET next_run = ? WHERE id = ? AND next_run = ? AND enabled = 1", (next_run, task_id, due)
            )
            if cur.rowcount:
                _insert_task_run(c, run, keep)
            return cur.rowcount > 0

        return await self._write(tx)

    async def finish_task(self, task_id: str, run: TaskRun, keep: int) -> None:
        def tx(c: sqlite3.Connection) -> None:
            c.execute("UPDATE tasks SET running_until = 0 WHERE id = ?", (task_id,))
            if c.execute("SELECT 1 FROM tasks WHERE id = ?", (task_id,)).fetchone():
                _insert_task_run(c, run, keep)

        await self._write(tx)

    async def task_runs(self, task_id: str, limit: int) -> list[TaskRun]:
        rows = self._all(
            f"SELECT {_TASK_RUN_COLS} FROM task_runs WHERE task_id = ? ORDER BY seq DESC LIMIT ?", (task_id, limit)
        )
        return [_task_run(r) for r in reversed(rows)]
