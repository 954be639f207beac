"""The OAuth providers contract: how each app signs its users in with Google, GitHub, ...

One row per app and provider. ``client_secret`` is stored exactly as given: the service seals it
(``services/oauth.py``) before it reaches the store, so the store never holds it in clear.
``options`` is JSON text of the provider's settings besides the client (endpoint overrides, scope).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from sbserver.types import Base


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    provider: str
    client_id: str
    client_secret: str  # sealed
    options: str  # JSON object
    updated: str

    @classmethod
    def of_row(cls, row: Any) -> ProviderConfig:
        """A config from a row of ``COLUMNS``, as both stores select them."""
        return cls(row[0], row[1], row[2], row[3], row[4])


COLUMNS = "provider, client_id, client_secret, options, updated"  # in ProviderConfig's order


class OAuthStore(ABC):
    """The OAuth provider configurations of each base."""

    @abstractmethod
    async def set_oauth_provider(self, base: Base, config: ProviderConfig) -> None:
        """Create or replace the configuration of ``config.provider``."""

    @abstractmethod
    async def oauth_provider(self, base: Base, provider: str) -> ProviderConfig | None:
        """One provider's configuration, or None."""

    @abstractmethod
    async def oauth_providers(self, base: Base) -> list[ProviderConfig]:
        """Every configured provider, by name."""

    @abstractmethod
    async def delete_oauth_provider(self, base: Base, provider: str) -> bool:
        """Remove a configuration; False when there was none."""
