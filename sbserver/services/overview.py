"""The admin dashboard's numbers for one app: what it holds, and its function runs of the last day.

Runs come from each function's recorded history, which keeps the last ``SB_FUNCTION_HISTORY``
runs per function: a function that ran more often than that in a day shows its latest runs only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sbserver.backends.storage import Store
from sbserver.errors import Forbidden
from sbserver.types import ALL_ROWS, ROLE_ROOT, Base, Identity

HOURS = 24


@dataclass(frozen=True)
class Hour:
    """Function runs that started in the hour from ``start`` (UTC)."""

    start: datetime
    runs: int
    failures: int


@dataclass(frozen=True)
class Overview:
    documents: int
    collections: int
    users: int
    files: int
    file_bytes: int
    functions: int
    hours: tuple[Hour, ...]  # the last 24 hours, oldest first; the last one is the current hour

    @property
    def runs(self) -> int:
        return sum(h.runs for h in self.hours)

    @property
    def failures(self) -> int:
        return sum(h.failures for h in self.hours)


def _parse(stamp: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class OverviewService:
    def __init__(self, store: Store, history: int) -> None:
        self.store = store
        self.history = history

    async def of(self, caller: Identity, base: Base, now: datetime | None = None) -> Overview:
        if caller.role < ROLE_ROOT:
            raise Forbidden("not enough permission")
        names = [name for name in await self.store.collections(base) if not name.startswith("sb_")]
        documents = 0
        for name in names:
            documents += await self.store.count_documents(base, name, ALL_ROWS)
        files, file_bytes = await self.store.file_usage(base, None)
        functions = await self.store.functions(base)
        now = now or datetime.now(UTC)
        first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)
        runs, failures = [0] * HOURS, [0] * HOURS
        for fn in functions:
            for run in await self.store.runs(base, fn.id, self.history):
                started = _parse(run.started)
                if started is None or started < first or started > now:
                    continue
                slot = min(HOURS - 1, int((started - first).total_seconds() // 3600))
                runs[slot] += 1
                failures[slot] += 0 if run.success else 1
        hours = tuple(Hour(first + timedelta(hours=i), runs[i], failures[i]) for i in range(HOURS))
        return Overview(
            documents=documents,
            collections=len(names),
            users=await self.store.count_users(base),
            files=files,
            file_bytes=file_bytes,
            functions=len(functions),
            hours=hours,
        )
