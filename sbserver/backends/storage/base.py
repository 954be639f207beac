"""The store contract every data backend implements, composed from one small contract per domain:
``accounts``, ``documents``, ``search``, ``forms``, ``files``, ``oauth``, ``functions`` and ``tasks`` (each a package
holding ``base.py``, ``sqlite.py`` and ``postgresql.py``).

Every method is a coroutine. Errors: a uniqueness violation raises ``Conflict``; anything the
database itself refuses raises ``StoreError``. Reads of things that do not exist return ``None``
(or an empty list); the services decide whether that is a 404.
"""

from __future__ import annotations

from abc import abstractmethod

from sbserver.backends.storage.accounts.base import AccountStore
from sbserver.backends.storage.documents.base import DocumentStore, Mutation
from sbserver.backends.storage.files.base import FileRecord, FileStore
from sbserver.backends.storage.forms.base import FormStore
from sbserver.backends.storage.functions.base import FunctionStore, job_rows
from sbserver.backends.storage.oauth.base import OAuthStore, ProviderConfig
from sbserver.backends.storage.search.base import SearchStore
from sbserver.backends.storage.tasks.base import TaskStore


class Store(AccountStore, DocumentStore, SearchStore, FormStore, FileStore, OAuthStore, FunctionStore, TaskStore):
    """Tenants, bases, accounts, users, documents, full-text entries, form submissions, file records
    and OAuth provider configurations."""

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


__all__ = ["FileRecord", "Mutation", "ProviderConfig", "Store", "job_rows"]
