"""The functions contract: server-side functions, their runs, and the durable job queue."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import orjson

from sbserver.types import Base, FailedRun, FinishedJob, FunctionDef, FunctionRun, Job, QueueState


class FunctionStore(ABC):
    """Functions of a base and their runs; the installation-wide queue of function jobs."""

    # server-side functions
    @abstractmethod
    async def create_function(self, base: Base, fn: FunctionDef) -> None:
        """Insert a function; ``Conflict`` when its name is taken in the base."""

    @abstractmethod
    async def update_function(
        self, base: Base, fn_id: str, code: str, trigger: str, secrets: str | None, updated: str
    ) -> FunctionDef | None:
        """Replace code and trigger (and secrets unless None), bump the version; None if unknown."""

    @abstractmethod
    async def delete_function(self, base: Base, name: str) -> bool:
        """Delete a function and its history by name; True if it existed."""

    @abstractmethod
    async def function_by_name(self, base: Base, name: str) -> FunctionDef | None:
        """The function with that name."""

    @abstractmethod
    async def functions(self, base: Base) -> list[FunctionDef]:
        """Every function of the base, by name."""

    @abstractmethod
    async def functions_for(self, base: Base, triggers: list[str]) -> list[FunctionDef]:
        """The functions whose trigger is one of ``triggers``."""

    @abstractmethod
    async def add_run(self, base: Base, run: FunctionRun, keep: int) -> None:
        """Record a run (setting the function's last run), keeping only its newest ``keep`` runs."""

    @abstractmethod
    async def runs(self, base: Base, fn_id: str, limit: int) -> list[FunctionRun]:
        """The newest ``limit`` runs of a function by start time, oldest first (runs are recorded
        when they end, so a short run started later may be recorded first), without kept inputs."""

    # encryption at rest of function secrets (the store keeps what it is given)
    @abstractmethod
    async def stored_secrets(self) -> list[tuple[str, str, str]]:
        """(base name, function id, secrets as stored) of every function with secrets, every app."""

    @abstractmethod
    async def replace_secrets(self, rows: list[tuple[str, str, str, str]]) -> int:
        """For each (base name, function id, old, new), store ``new`` where ``old`` is still stored
        (a compare-and-set: processes starting together each replace a value once); the count replaced."""

    # per-app limits on functions (runs, rates, scheduled tasks)
    @abstractmethod
    async def function_limits(self, base: Base) -> dict[str, int]:
        """The app's own limits, by name ({} when it has none: the server's apply)."""

    @abstractmethod
    async def set_function_limits(self, base: Base, limits: dict[str, int]) -> None:
        """Replace the app's own limits ({} removes them)."""

    # the durable queue of function runs (installation-wide)
    @abstractmethod
    async def enqueue_jobs(self, jobs: list[Job], owner: str, lease_until: float) -> None:
        """Insert jobs already claimed by ``owner`` until ``lease_until`` (Unix seconds)."""

    @abstractmethod
    async def claim_jobs(self, owner: str, now: float, lease_until: float, limit: int) -> list[Job]:
        """Claim up to ``limit`` jobs whose lease has expired (or never existed), oldest first."""

    @abstractmethod
    async def extend_leases(self, owner: str, job_ids: list[str], lease_until: float) -> None:
        """Push back the lease of those jobs that ``owner`` still holds (it is still working on them)."""

    @abstractmethod
    async def finish_jobs(self, finished: list[FinishedJob], keep: int) -> None:
        """Remove finished jobs and record the runs that come with them, all in one transaction,
        keeping each function's newest ``keep`` runs."""

    # what an app's admin sees of the queue and of failed runs
    @abstractmethod
    async def queued_jobs(self, base: Base, now: float, limit: int) -> QueueState:
        """The base's jobs, oldest first, at most ``limit`` of each state: pending (never claimed,
        or lease expired by ``now``) and running (lease alive at ``now``), and the count of each."""

    @abstractmethod
    async def failed_runs(self, base: Base, limit: int) -> list[FailedRun]:
        """The base's newest ``limit`` failed runs, newest first (run ids are time-ordered), without
        their input (``kept`` says whether it was kept)."""

    @abstractmethod
    async def failed_run(self, base: Base, run_id: str) -> FailedRun | None:
        """The base's failed run ``run_id`` with its input, if kept; None when the base has none."""


def job_rows(jobs: list[Job], owner: str, lease_until: float) -> list[tuple[Any, ...]]:
    """The fn_jobs rows of ``jobs`` claimed by ``owner`` until ``lease_until``, in column order
    (id, base, function_id, payload, created, owner, lease_until, attempts). A job left
    unclaimed (no owner) counts one attempt less: the claim that first runs it is not a retry."""
    tried = 0 if owner else -1
    return [
        (
            j.id,
            j.base,
            j.function_id,
            orjson.dumps(j.payload).decode(),
            j.created,
            owner,
            lease_until,
            j.attempts + tried,
        )
        for j in jobs
    ]


def kept_input(payload: dict[str, Any] | None) -> str:
    """The ``input`` column of a run: its kept payload as JSON text, '' when none was kept."""
    return "" if payload is None else orjson.dumps(payload).decode()
