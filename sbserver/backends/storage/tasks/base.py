"""The scheduled tasks contract."""

from __future__ import annotations

from abc import ABC, abstractmethod

from sbserver.types import Base, Task, TaskRun


class TaskStore(ABC):
    """Scheduled tasks of every base and their runs."""

    # scheduled tasks (installation-wide table; every task carries its base name)
    @abstractmethod
    async def create_task(self, task: Task) -> None:
        """Insert a task."""

    @abstractmethod
    async def update_task(self, task: Task) -> bool:
        """Replace a task's definition and schedule (name, type, value, meta, interval, timezone,
        enabled, next_run); False if it does not exist in its base."""

    @abstractmethod
    async def delete_task(self, base: Base, task_id: str) -> bool:
        """Delete a task and its runs; True if it existed."""

    @abstractmethod
    async def task(self, base: Base, task_id: str) -> Task | None:
        """One task of the base."""

    @abstractmethod
    async def tasks(self, base: Base) -> list[Task]:
        """The tasks of the base, by name."""

    @abstractmethod
    async def due_tasks(self, now: float, limit: int) -> list[Task]:
        """Enabled tasks of every base whose next run is at or before ``now``, earliest first."""

    @abstractmethod
    async def next_due(self) -> float | None:
        """The earliest next run of any enabled task."""

    @abstractmethod
    async def claim_task(
        self, task_id: str, due: float, next_run: float, last: str, running_until: float, now: float
    ) -> bool:
        """Take the tick ``due`` of a task: only if its next run is still ``due``, it is enabled and
        no run holds it (``running_until`` <= now). Moves next_run on, sets last and the hold.
        Exactly one caller wins a given tick."""

    @abstractmethod
    async def skip_task(self, task_id: str, due: float, next_run: float, run: TaskRun, keep: int) -> bool:
        """Move past tick ``due`` without running (a run still holds the task), recording the skip."""

    @abstractmethod
    async def finish_task(self, task_id: str, run: TaskRun, keep: int) -> None:
        """Record a finished run (keeping the newest ``keep``) and release the hold."""

    @abstractmethod
    async def task_runs(self, task_id: str, limit: int) -> list[TaskRun]:
        """The newest ``limit`` runs of a task, oldest first."""
