"""OAuth provider configurations in SQLite."""

from __future__ import annotations

from sbserver.backends.storage.oauth.base import COLUMNS, OAuthStore, ProviderConfig
from sbserver.backends.storage.sqlite_base import SQLiteBase
from sbserver.types import Base


class SQLiteOAuth(SQLiteBase, OAuthStore):
    """The OAuth providers contract on SQLite; needs the plumbing of ``SQLiteBase``."""

    async def set_oauth_provider(self, base: Base, config: ProviderConfig) -> None:
        c = config
        await self._write(
            lambda conn: conn.execute(
                f"INSERT OR REPLACE INTO oauth_providers (base, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (base.name, c.provider, c.client_id, c.client_secret, c.options, c.updated),
            )
        )

    async def oauth_provider(self, base: Base, provider: str) -> ProviderConfig | None:
        row = self._one(f"SELECT {COLUMNS} FROM oauth_providers WHERE base = ? AND provider = ?", (base.name, provider))
        return ProviderConfig.of_row(row) if row else None

    async def oauth_providers(self, base: Base) -> list[ProviderConfig]:
        rows = self._all(f"SELECT {COLUMNS} FROM oauth_providers WHERE base = ? ORDER BY provider", (base.name,))
        return [ProviderConfig.of_row(r) for r in rows]

    async def delete_oauth_provider(self, base: Base, provider: str) -> bool:
        removed: int = await self._write(
            lambda conn: (
                conn.execute(
                    "DELETE FROM oauth_providers WHERE base = ? AND provider = ?", (base.name, provider)
                ).rowcount
            )
        )
        return removed > 0
