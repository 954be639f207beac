"""The mail contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    html: str
    text: str = ""
    from_email: str = ""
    from_name: str = ""
    to_name: str = ""
    reply_to: str = ""


class Mailer(ABC):
    @abstractmethod
    async def send(self, email: Email) -> None:
        """Deliver one email or raise ``StoreError`` with the reason."""
