"""The form submissions contract."""

from __future__ import annotations

from abc import ABC, abstractmethod

from sbserver.types import Base


class FormStore(ABC):
    """Form submissions of a base."""

    # forms
    @abstractmethod
    async def add_form(self, base: Base, form: str, data: dict[str, str], created: str) -> None:
        """Store one form submission."""

    @abstractmethod
    async def forms(self, base: Base, form: str | None, limit: int) -> list[dict[str, str]]:
        """Submissions of one form (or of all forms), newest first."""
