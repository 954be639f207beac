"""The store contract every data backend implements.

Every method is a coroutine. Errors: a uniqueness violation raises ``Conflict``; anything the
database itself refuses raises ``StoreError``. Reads of things that do not exist return ``None``
(or an empty list); the services decide whether that is a 404.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import orjson

from sbserver.types import (
    Account,
    Base,
    FinishedJob,
    FunctionDef,
    FunctionRun,
    Job,
    QueuedJobs,
    Scope,
    StoredDoc,
    Task,
    TaskRun,
    Tenant,
    User,
)

# A mutation receives the current document and returns its new data, or None to leave it as is.
# It may raise (an SBError) to abort; it runs inside the store's write transaction.
Mutation = Callable[[StoredDoc], "dict[str, Any] | None"]
# A predicate over a document's data (the client fields).
Predicate = Callable[[dict[str, Any]], bool]


class Store(ABC):
    """Tenants, bases, accounts, users, documents, full-text entries and form submissions."""

    kind: str = "abstract"

    @abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections; pending writes are finished first."""

    @abstractmethod
    async def ping(self) -> bool:
        """True when the database answers."""

    # tenants and bases
    @abstractmethod
    async def create_tenant(self, tenant: Tenant) -> None:
        """Insert a tenant; ``Conflict`` if its email is taken."""

    @abstractmethod
    async def tenant_by_email(self, email: str) -> Tenant | None:
        """The tenant with that (lower-cased) email."""

    @abstractmethod
    async def create_base(self, base: Base) -> None:
        """Insert a base and create its storage namespace; ``Conflict`` if pk or name is taken."""

    @abstractmethod
    async def base_by_pk(self, pk: str) -> Base | None:
        """The base with that public key."""

    @abstractmethod
    async def bases_of_tenant(self, tenant_id: str) -> list[Base]:
        """Every base of a tenant, oldest first."""

    # accounts and users
    @abstractmethod
    async def create_account_with_user(self, base: Base, account: Account, user: User) -> None:
        """Insert an account and its first user in one transaction; ``Conflict`` on a taken email."""

    @abstractmethod
    async def create_user(self, base: Base, user: User) -> None:
        """Insert a user into an existing account; ``Conflict`` on a taken email."""

    @abstractmethod
    async def user_by_email(self, base: Base, email: str) -> User | None:
        """The user with that (lower-cased) email."""

    @abstractmethod
    async def user_by_id(self, base: Base, user_id: str) -> User | None:
        """The user with that id."""

    @abstractmethod
    async def root_user(self, base: Base) -> User | None:
        """The base's oldest user of role 100 or more (its administrator)."""

    @abstractmethod
    async def users_of_account(self, base: Base, account_id: str) -> list[User]:
        """The users of one account, oldest first."""

    @abstractmethod
    async def accounts(self, base: Base) -> list[Account]:
        """Every account of the base, oldest first."""

    @abstractmethod
    async def delete_user(self, base: Base, user_id: str) -> bool:
        """Remove one user row (its account and documents stay); True if it existed."""

    @abstractmethod
    async def set_password(self, base: Base, user_id: str, password_hash: str) -> None:
        """Replace a user's password hash."""

    @abstractmethod
    async def set_reset_code(self, base: Base, email: str, code: str) -> bool:
        """Store a password-reset code for the user with that email; False if no such user."""

    @abstractmethod
    async def reset_password(self, base: Base, email: str, code: str, password_hash: str) -> bool:
        """Set the password where email and a non-empty code match, clearing the code."""

    # documents: every read returns documents in creation order (created, then id)
    @abstractmethod
    async def insert_documents(
        self, base: Base, col: str, docs: list[StoredDoc], perm: str, queue: QueuedJobs | None = None
    ) -> None:
        """Insert documents all-or-nothing, registering the collection (with its permission digits)
        on first use; ``queue``'s function jobs go in the same transaction."""

    @abstractmethod
    async def get_document(self, base: Base, col: str, doc_id: str, scope: Scope) -> StoredDoc | None:
        """One document, if it exists inside the scope."""

    @abstractmethod
    async def get_documents(self, base: Base, col: str, ids: list[str], scope: Scope) -> list[StoredDoc]:
        """The documents among ``ids`` that exist inside the scope; missing ids are skipped."""

    @abstractmethod
    async def list_documents(
        self, base: Base, col: str, scope: Scope, desc: bool, limit: int, offset: int
    ) -> tuple[list[StoredDoc], int]:
        """A page of the scope in creation order, and the number of documents in the scope."""

    @abstractmethod
    async def count_documents(self, base: Base, col: str, scope: Scope) -> int:
        """How many documents the scope holds."""

    @abstractmethod
    async def scan_documents(self, base: Base, col: str, scope: Scope) -> list[StoredDoc]:
        """Every document of the scope in creation order (the input of filtered queries)."""

    @abstractmethod
    async def update_document(
        self, base: Base, col: str, doc_id: str, scope: Scope, mutate: Mutation
    ) -> StoredDoc | None:
        """Atomically read, mutate and write one document; None when it is not in the scope."""

    @abstractmethod
    async def update_documents(
        self, base: Base, col: str, scope: Scope, match: Predicate, mutate: Mutation
    ) -> list[StoredDoc]:
        """Atomically mutate every matching document of the scope; returns the changed ones."""

    @abstractmethod
    async def delete_document(self, base: Base, col: str, doc_id: str, scope: Scope) -> StoredDoc | None:
        """Delete one document of the scope; returns it as it was, None if it was not there."""

    @abstractmethod
    async def delete_documents(self, base: Base, col: str, scope: Scope, match: Predicate) -> list[StoredDoc]:
        """Atomically delete every matching document of the scope; returns them as they were."""

    @abstractmethod
    async def collections(self, base: Base) -> dict[str, str]:
        """Every collection ever written, mapped to the permission digits it was created with."""

    @abstractmethod
    async def create_index(self, base: Base, col: str, field: str) -> None:
        """Make lookups on a document field faster; idempotent."""

    # full-text search
    @abstractmethod
    async def index_text(self, base: Base, col: str, doc_id: str, text: str) -> None:
        """Index (or re-index) the text of one document."""

    @abstractmethod
    async def search_text(self, base: Base, col: str, keywords: list[str], limit: int) -> list[str]:
        """Ids of the documents whose text holds every keyword, best match first."""

    # forms
    @abstractmethod
    async def add_form(self, base: Base, form: str, data: dict[str, str], created: str) -> None:
        """Store one form submission."""

    @abstractmethod
    async def forms(self, base: Base, form: str | None, limit: int) -> list[dict[str, str]]:
        """Submissions of one form (or of all forms), newest first."""

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
        when they end, so a short run started later may be recorded first)."""

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
