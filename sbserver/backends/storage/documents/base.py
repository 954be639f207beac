"""The documents contract: documents of a base's collections, their scopes and indexes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from sbserver.clauses import Clause, Sort
from sbserver.types import Base, QueuedJobs, Scope, StoredDoc

# A mutation receives the current document and returns its new data, or None to leave it as is.
# It may raise (an SBError) to abort; it runs inside the store's write transaction.
Mutation = Callable[[StoredDoc], "dict[str, Any] | None"]
# How many matching documents a bulk write reads (and holds) at a time.
BATCH = 500


class DocumentStore(ABC):
    """Documents, grouped in collections; every read returns them in creation order."""

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
    async def query_documents(
        self, base: Base, col: str, scope: Scope, clauses: list[Clause], sort: Sort, limit: int, offset: int
    ) -> tuple[list[StoredDoc], int]:
        """A page of the scope's documents matching every clause, in ``sort`` order (a field sort
        ties by creation, then id), and how many match in all. A negative ``limit`` reads every
        match (for tests and tools; requests always page)."""

    @abstractmethod
    async def count_documents(self, base: Base, col: str, scope: Scope, clauses: list[Clause] | None = None) -> int:
        """How many documents of the scope match every clause (all of them without clauses)."""

    @abstractmethod
    async def update_document(
        self, base: Base, col: str, doc_id: str, scope: Scope, mutate: Mutation
    ) -> StoredDoc | None:
        """Atomically read, mutate and write one document; None when it is not in the scope."""

    @abstractmethod
    async def update_documents(
        self, base: Base, col: str, scope: Scope, clauses: list[Clause], mutate: Mutation
    ) -> list[StoredDoc]:
        """Atomically mutate every document of the scope matching the clauses, reading them
        ``BATCH`` at a time in creation order; returns the changed ones."""

    @abstractmethod
    async def delete_document(self, base: Base, col: str, doc_id: str, scope: Scope) -> StoredDoc | None:
        """Delete one document of the scope; returns it as it was, None if it was not there."""

    @abstractmethod
    async def delete_documents(self, base: Base, col: str, scope: Scope, clauses: list[Clause]) -> list[StoredDoc]:
        """Atomically delete every document of the scope matching the clauses; returns them as
        they were."""

    @abstractmethod
    async def collections(self, base: Base) -> dict[str, str]:
        """Every collection ever written, mapped to the permission digits it was created with."""

    @abstractmethod
    async def create_index(self, base: Base, col: str, field: str) -> None:
        """Index a document field (a dotted path) for equality, range and sort: one index per
        scope kind (owner, account, every row) on the field's rank and value; idempotent."""

    @abstractmethod
    async def indexes(self, base: Base, col: str) -> list[str]:
        """The indexed fields of a collection, sorted."""

    @abstractmethod
    async def explain_query(
        self, base: Base, col: str, scope: Scope, clauses: list[Clause], sort: Sort, count: bool = False
    ) -> str:
        """The database's plan for the page query, or with ``count`` for the count query
        (``EXPLAIN QUERY PLAN`` / ``EXPLAIN``), as text."""
