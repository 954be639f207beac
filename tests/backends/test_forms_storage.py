"""The Store conformance suite for form submissions.

Written once and run against every store kind through the fixtures of ``test_storage``; every
test makes its own bases with random names, so tests can share one PostgreSQL database.
"""

from __future__ import annotations

from sbserver.backends.storage.base import Store
from tests.backends import test_storage
from tests.backends.test_storage import make_base

# The fixtures of the Store suite, so these tests run once per store kind exactly as it does.
new_store = test_storage.new_store
store = test_storage.store

NOW = "2024-05-01T10:00:00Z"


async def test_forms_newest_first(store: Store) -> None:
    base, other = await make_base(store), await make_base(store)
    subs = [
        ("contact", {"name": "first", "email": "a@b.c"}),
        ("signup", {"name": "second"}),
        ("contact", {"name": "third", "ünï": "用户 😀", "z": "1", "a": "2"}),
        ("signup", {}),
        ("contact", {"name": "fifth"}),
    ]
    for form, data in subs:
        await store.add_form(base, form, data, NOW)
    await store.add_form(other, "contact", {"name": "elsewhere"}, NOW)

    contact = [data for form, data in subs if form == "contact"][::-1]
    assert await store.forms(base, "contact", 100) == contact
    assert list((await store.forms(base, "contact", 100))[1]) == ["name", "ünï", "z", "a"]
    assert await store.forms(base, "signup", 100) == [{}, {"name": "second"}]
    assert await store.forms(base, None, 100) == [data for _, data in subs][::-1]
    assert await store.forms(base, "", 100) == [data for _, data in subs][::-1]
    assert await store.forms(base, "contact", 2) == contact[:2]
    assert await store.forms(base, None, 1) == [{"name": "fifth"}]
    assert await store.forms(base, "nothing", 100) == []
    assert await store.forms(other, None, 100) == [{"name": "elsewhere"}]
