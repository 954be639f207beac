"""OAuth provider configurations in PostgreSQL, in each base's schema."""

from __future__ import annotations

from sbserver.backends.storage.oauth.base import COLUMNS, OAuthStore, ProviderConfig
from sbserver.backends.storage.postgresql_base import PostgresBase, _count, _schema
from sbserver.types import Base


class PostgresOAuth(PostgresBase, OAuthStore):
    """The OAuth providers contract on PostgreSQL; needs the plumbing of ``PostgresBase``."""

    async def set_oauth_provider(self, base: Base, config: ProviderConfig) -> None:
        c = config
        await self._execute(
            f"INSERT INTO {_schema(base.name)}.oauth_providers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (provider) DO UPDATE SET client_id = EXCLUDED.client_id, "
            "client_secret = EXCLUDED.client_secret, options = EXCLUDED.options, updated = EXCLUDED.updated",
            c.provider,
            c.client_id,
            c.client_secret,
            c.options,
            c.updated,
        )

    async def oauth_provider(self, base: Base, provider: str) -> ProviderConfig | None:
        row = await self._fetchrow(
            f"SELECT {COLUMNS} FROM {_schema(base.name)}.oauth_providers WHERE provider = $1", provider
        )
        return ProviderConfig.of_row(row) if row else None

    async def oauth_providers(self, base: Base) -> list[ProviderConfig]:
        rows = await self._fetch(f"SELECT {COLUMNS} FROM {_schema(base.name)}.oauth_providers ORDER BY provider")
        return [ProviderConfig.of_row(r) for r in rows]

    async def delete_oauth_provider(self, base: Base, provider: str) -> bool:
        status = await self._execute(f"DELETE FROM {_schema(base.name)}.oauth_providers WHERE provider = $1", provider)
        return _count(status) > 0
