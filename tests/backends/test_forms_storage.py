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


async def test_form_names_pages_entries_and_delete(store: Store) -> None:
    base, other = await make_base(store), await make_base(store)
    for i in range(5):
        await store.add_form(base, "contact", {"n": str(i)}, f"2024-05-01T10:00:0{i}Z")
    await store.add_form(base, "Beta", {"n": "b"}, NOW)
    await store.add_form(other, "contact", {"n": "elsewhere"}, NOW)

    assert await store.form_names(base) == [("Beta", 1), ("contact", 5)]
    assert await store.form_names(other) == [("contact", 1)]
    assert await store.form_names(await make_base(store)) == []

    page1 = await store.form_entries(base, "contact", 2, 0)
    page3 = await store.form_entries(base, "contact", 2, 4)
    assert [(s.form, s.data["n"], s.created) for s in page1] == [
        ("contact", "4", "2024-05-01T10:00:04Z"),
        ("contact", "3", "2024-05-01T10:00:03Z"),
    ]
    assert [s.data["n"] for s in page3] == ["0"]
    assert await store.form_entries(base, "contact", 2, 6) == []
    assert await store.form_entries(base, "nothing", 10, 0) == []
    everything = await store.form_entries(base, "contact", 10, 0)
    assert [s.seq for s in everything] == sorted({s.seq for s in everything}, reverse=True)

    newest, theirs = page1[0], (await store.form_entries(other, "contact", 10, 0))[0]
    assert await store.form_entry(base, newest.seq) == newest
    assert await store.form_entry(base, 10**15) is None
    # another base's number names, at most, a submission of this base (PostgreSQL numbers per base)
    same_number = await store.form_entry(base, theirs.seq)
    assert same_number is None or same_number.data["n"] != "elsewhere"
    assert await store.form_entry(other, theirs.seq) == theirs

    assert await store.delete_form_entry(base, newest.seq) is True
    assert await store.delete_form_entry(base, newest.seq) is False
    assert await store.form_entry(base, newest.seq) is None
    assert [d["n"] for d in await store.forms(base, "contact", 100)] == ["3", "2", "1", "0"]
    assert await store.form_names(base) == [("Beta", 1), ("contact", 4)]
    assert await store.forms(other, None, 100) == [{"n": "elsewhere"}]
    # a number never comes back: the next submission gets a new one
    await store.add_form(base, "contact", {"n": "5"}, NOW)
    assert (await store.form_entries(base, "contact", 1, 0))[0].seq > newest.seq
