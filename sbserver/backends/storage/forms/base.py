"""The form submissions contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from sbserver.types import Base


@dataclass(frozen=True, slots=True)
class Submission:
    """One stored submission; ``seq`` is unique in its base and never reused."""

    seq: int
    form: str
    data: dict[str, str]
    created: str


class FormStore(ABC):
    """Form submissions of a base."""

    # forms
    @abstractmethod
    async def add_form(self, base: Base, form: str, data: dict[str, str], created: str) -> None:
        """Store one form submission."""

    @abstractmethod
    async def forms(self, base: Base, form: str | None, limit: int) -> list[dict[str, str]]:
        """Submissions of one form (or of all forms), newest first."""

    @abstractmethod
    async def form_names(self, base: Base) -> list[tuple[str, int]]:
        """The names of the base's forms with their number of submissions, by name."""

    @abstractmethod
    async def form_entries(self, base: Base, form: str, limit: int, offset: int) -> list[Submission]:
        """One page of a form's submissions, newest first."""

    @abstractmethod
    async def form_entry(self, base: Base, seq: int) -> Submission | None:
        """One submission, or None."""

    @abstractmethod
    async def delete_form_entry(self, base: Base, seq: int) -> bool:
        """Remove one submission; whether there was one."""
