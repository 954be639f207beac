"""The full-text search contract."""

from __future__ import annotations

from abc import ABC, abstractmethod

from sbserver.types import Base


class SearchStore(ABC):
    """Full-text entries of documents, per base and collection."""

    # full-text search
    @abstractmethod
    async def index_text(self, base: Base, col: str, doc_id: str, text: str) -> None:
        """Index (or re-index) the text of one document."""

    @abstractmethod
    async def search_text(self, base: Base, col: str, keywords: list[str], limit: int) -> list[str]:
        """Ids of the documents whose text holds every keyword, best match first."""
