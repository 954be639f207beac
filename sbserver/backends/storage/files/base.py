"""The file records contract: one record per uploaded file of a base (upstream's ``sb_files``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from sbserver.types import Base

SORTS = ("uploaded", "size")  # the orders ``files`` can list in


@dataclass(frozen=True, slots=True)
class FileRecord:
    id: str
    account_id: str
    name: str  # the display name: the ``name`` field or the uploaded file's name
    key: str  # where the provider keeps the bytes: ``<base>/<accountId>/<id><ext>``
    url: str
    size: int
    uploaded: str

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "accountId": self.account_id,
            "name": self.name,
            "key": self.key,
            "url": self.url,
            "size": self.size,
            "uploaded": self.uploaded,
        }

    @classmethod
    def of_row(cls, row: Any) -> FileRecord:
        """A record from a row of ``COLUMNS``, as both stores select them."""
        return cls(row[0], row[1], row[2], row[3], row[4], int(row[5]), row[6])


COLUMNS = "id, account_id, name, key, url, size, uploaded"  # the stores' column list, in FileRecord's order


class FileStore(ABC):
    """File records of a base. ``account_id`` None means every account of the base."""

    @abstractmethod
    async def add_file(self, base: Base, record: FileRecord) -> None:
        """Store a new record (``Conflict`` when its id exists)."""

    @abstractmethod
    async def file(self, base: Base, file_id: str) -> FileRecord | None:
        """One record, or None."""

    @abstractmethod
    async def files(
        self, base: Base, account_id: str | None, sort: str, desc: bool, limit: int, offset: int
    ) -> list[FileRecord]:
        """Records ordered by ``sort`` (one of ``SORTS``, then id), oldest or smallest first unless ``desc``."""

    @abstractmethod
    async def file_usage(self, base: Base, account_id: str | None) -> tuple[int, int]:
        """(number of files, total bytes)."""

    @abstractmethod
    async def delete_file(self, base: Base, file_id: str) -> FileRecord | None:
        """Remove a record; the removed record, or None when there was none."""
