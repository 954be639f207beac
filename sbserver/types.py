"""Plain data shared by services and backends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JSON = Any
Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    email: str
    plan: int = 1
    active: bool = True
    created: str = ""


@dataclass(frozen=True, slots=True)
class Base:
    """One application database. ``id`` is the public key, ``name`` the storage namespace."""

    id: str
    name: str
    tenant_id: str
    whitelist: tuple[str, ...] = ("localhost",)
    active: bool = True
    created: str = ""


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    email: str
    created: str = ""


@dataclass(frozen=True, slots=True)
class User:
    id: str
    account_id: str
    email: str
    token: str
    role: int
    created: str = ""
    password: str = field(default="", repr=False)
    reset_code: str = field(default="", repr=False)

    def public(self) -> dict[str, Any]:
        """The JSON shape clients see: never the user token nor the password hash."""
        return {
            "id": self.id,
            "accountId": self.account_id,
            "email": self.email,
            "role": self.role,
            "created": self.created,
        }


ROLE_USER = 0
ROLE_OWNER = 50
ROLE_ROOT = 100


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling, inside which base."""

    base: str  # base name
    account_id: str
    user_id: str
    email: str
    role: int
    user_token: str = field(default="", repr=False)

    @property
    def is_root(self) -> bool:
        return self.role >= ROLE_ROOT

    def public(self) -> dict[str, Any]:
        return {
            "accountId": self.account_id,
            "userId": self.user_id,
            "email": self.email,
            "role": self.role,
            "id": self.user_id,
        }


PUBLIC_CALLER_ID = "public_repo_called"


@dataclass(slots=True)
class StoredDoc:
    """A document as stored: the client's fields in ``data``, system fields beside them."""

    id: str
    account_id: str
    owner_id: str
    created: str
    data: dict[str, Any]

    def public(self) -> dict[str, Any]:
        """The JSON clients see: the data plus ``id`` and ``accountId`` (never the owner)."""
        out = dict(self.data)
        out["id"] = self.id
        out["accountId"] = self.account_id
        return out


@dataclass(frozen=True, slots=True)
class Scope:
    """Which rows a caller may touch: all (both None), one account, or one user of an account."""

    account_id: str | None = None
    owner_id: str | None = None


ALL_ROWS = Scope()


ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(slots=True)
class FunctionDef:
    """A server-side function of one base."""

    id: str
    name: str
    trigger: str
    code: str
    version: int = 1
    last_updated: str = ""
    last_run: str = ZERO_TIME
    secrets: str = field(default="", repr=False)

    def public(self, history: list[FunctionRun] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "accountId": "",
            "name": self.name,
            "trigger": self.trigger,
            "code": self.code,
            "version": self.version,
            "lastUpdated": self.last_updated,
            "lastRun": self.last_run,
            "history": [r.public() for r in history or []],
        }
        return out


@dataclass(slots=True)
class FunctionRun:
    """One recorded run of a function."""

    id: str
    function_id: str
    version: int
    started: str
    completed: str
    success: bool
    output: list[str]
    # What a failed run of an event was called with (a job's payload), kept so the admin can
    # run it again; None when not kept (successful runs, web and task runs, inputs too large).
    payload: dict[str, Any] | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "functionId": self.function_id,
            "version": self.version,
            "started": self.started,
            "completed": self.completed,
            "success": self.success,
            "output": self.output,
        }


@dataclass(slots=True)
class Job:
    """A durable request to run one function for one event, claimed by one process at a time."""

    id: str
    base: str  # base name
    function_id: str
    payload: dict[str, Any]
    created: str
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class QueuedJobs:
    """Function jobs written in the same transaction as the documents whose event they run for:
    the write and its runs are durable together. Claimed by ``owner`` until ``lease_until``."""

    jobs: list[Job]
    owner: str
    lease_until: float


@dataclass(frozen=True, slots=True)
class FinishedJob:
    """A job that ended: removed from the queue with its run recorded (no run when nothing ran)."""

    job_id: str
    base: Base | None = None
    run: FunctionRun | None = None


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """A job of one app's queue as its admin sees it: which function, since when, who holds it."""

    id: str
    function_id: str
    function_name: str  # '' when the function was deleted since
    created: str
    attempts: int
    owner: str  # the process holding it ('' while never claimed)
    lease_until: float  # Unix seconds (0 while never claimed)


@dataclass(frozen=True, slots=True)
class QueueState:
    """One app's queued jobs, oldest first: pending (never claimed, or their lease expired) and
    running (claimed by a process whose lease is alive), a bounded list and a count of each."""

    pending: list[QueuedJob]
    running: list[QueuedJob]
    pending_count: int
    running_count: int


@dataclass(frozen=True, slots=True)
class FailedRun:
    """A failed run with its function's name; ``kept``: whether its input was kept (for a retry)."""

    function_name: str
    run: FunctionRun
    kept: bool


@dataclass(slots=True)
class Task:
    """A scheduled task of one base. Times are Unix seconds except ``last`` (RFC 3339)."""

    id: str
    base: str  # base name
    name: str
    type: str  # function | message | http
    value: str
    meta: str
    interval: str
    timezone: str = "UTC"
    enabled: bool = True
    last: str = ZERO_TIME
    next_run: float = 0.0
    anchor: float = 0.0  # creation time: @every schedules count from it
    running_until: float = 0.0  # a run holds the task until then (or until it finishes)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "value": self.value,
            "meta": self.meta,
            "interval": self.interval,
            "last": self.last,
            "base": self.base,
            "timezone": self.timezone,
            "enabled": self.enabled,
            "next": _rfc3339(self.next_run) if self.enabled and self.next_run else ZERO_TIME,
        }


@dataclass(slots=True)
class TaskRun:
    """One tick of a task: run, failed, or skipped because the previous run was still going."""

    id: str
    task_id: str
    due: float
    started: str
    completed: str
    outcome: str  # success | failed | skipped
    error: str = ""
    output: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "taskId": self.task_id,
            "due": _rfc3339(self.due),
            "started": self.started,
            "completed": self.completed,
            "outcome": self.outcome,
            "error": self.error,
            "output": self.output,
        }


def _rfc3339(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
