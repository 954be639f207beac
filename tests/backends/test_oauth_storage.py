"""OAuth provider configurations on every store kind (the Store suite's fixtures).

Create, read, replace (an upsert keeps one row per app and provider), list in name order,
delete; each base sees only its own; a store reopened on the same data (and after the migration
that added the table) reads back the same values.
"""

from __future__ import annotations

from collections.abc import Callable

from sbserver.backends.storage.base import Store
from sbserver.backends.storage.oauth.base import ProviderConfig
from tests.backends import test_storage
from tests.backends.test_storage import make_base

new_store = test_storage.new_store
store = test_storage.store


def config(provider: str, client_id: str = "cid", secret: str = "enc:v1:sealed", options: str = "{}") -> ProviderConfig:
    return ProviderConfig(provider, client_id, secret, options, "2026-01-02T03:04:05Z")


async def test_set_read_replace_list_and_delete(store: Store) -> None:
    base, other = await make_base(store), await make_base(store)
    assert await store.oauth_provider(base, "google") is None
    assert await store.oauth_providers(base) == []

    google = config("google", options='{"tokenUrl":"https://idp.example/token"}')
    await store.set_oauth_provider(base, google)
    await store.set_oauth_provider(base, config("github"))
    assert await store.oauth_provider(base, "google") == google
    assert [c.provider for c in await store.oauth_providers(base)] == ["github", "google"]

    replaced = config("google", client_id="cid-2", secret="enc:v1:other", options="{}")
    await store.set_oauth_provider(base, replaced)
    assert await store.oauth_provider(base, "google") == replaced
    assert len(await store.oauth_providers(base)) == 2

    # bases are isolated
    assert await store.oauth_provider(other, "google") is None
    assert await store.oauth_providers(other) == []
    assert await store.delete_oauth_provider(other, "google") is False

    assert await store.delete_oauth_provider(base, "google") is True
    assert await store.delete_oauth_provider(base, "google") is False
    assert [c.provider for c in await store.oauth_providers(base)] == ["github"]


async def test_values_survive_a_reopen(new_store: Callable[[], Store]) -> None:
    first = new_store()
    await first.open()
    try:
        base = await make_base(first)
        stored = config("twitter", secret="enc:v1:" + "x" * 300, options='{"scope":"users.read"}')
        await first.set_oauth_provider(base, stored)
    finally:
        await first.close()
    again = new_store()
    await again.open()
    try:
        assert await again.oauth_provider(base, "twitter") == stored
    finally:
        await again.close()
