"""The Store conformance suite for full-text search.

Written once and run against every store kind through the fixtures of ``test_storage``; every
test makes its own bases with random names, so tests can share one PostgreSQL database.
"""

from __future__ import annotations

import random

import pytest

from sbserver.backends.storage.base import Store
from sbserver.backends.storage.text import MAX_CANDIDATES, candidates
from tests.backends import test_storage
from tests.backends.test_storage import make_base, uid

# The fixtures of the Store suite, so these tests run once per store kind exactly as it does.
new_store = test_storage.new_store
store = test_storage.store

COL = "posts_764_"


async def test_search_text(store: Store) -> None:
    base = await make_base(store)
    adding, expos = uid(), uid()
    await store.index_text(base, COL, adding, "adding this to search index")
    await store.index_text(base, COL, expos, "Montreal Expos were the best in 95")
    assert await store.search_text(base, COL, ["adding", "search"], 10) == [adding]
    assert await store.search_text(base, COL, ["ADDING", "Search"], 10) == [adding]  # case-insensitive
    assert await store.search_text(base, COL, ["montreal"], 10) == [expos]
    assert await store.search_text(base, COL, ["expos", "95"], 10) == [expos]
    assert await store.search_text(base, COL, ["montr"], 10) == [expos]  # prefix
    assert await store.search_text(base, COL, ["montreal", "search"], 10) == []  # every keyword
    assert await store.search_text(base, COL, [], 10) == []
    assert await store.search_text(base, COL, ["", " "], 10) == []
    assert await store.search_text(base, COL, ["adding", ""], 10) == [adding]  # empty ones dropped


async def test_search_best_match_first_and_limit(store: Store) -> None:
    base = await make_base(store)
    weak, strong = uid(), uid()
    await store.index_text(base, COL, weak, "a walrus in a long text about many other things entirely")
    await store.index_text(base, COL, strong, "walrus walrus walrus")
    assert await store.search_text(base, COL, ["walrus"], 10) == [strong, weak]
    assert await store.search_text(base, COL, ["walrus"], 1) == [strong]
    many = [uid() for _ in range(30)]
    for i in many:
        await store.index_text(base, "many", i, "common words")
    found = await store.search_text(base, "many", ["common"], 25)
    assert len(found) == 25 and set(found) <= set(many)


async def test_reindex_replaces(store: Store) -> None:
    base = await make_base(store)
    i = uid()
    await store.index_text(base, COL, i, "alpha beta")
    await store.index_text(base, COL, i, "gamma delta")
    assert await store.search_text(base, COL, ["alpha"], 10) == []
    assert await store.search_text(base, COL, ["gamma"], 10) == [i]
    await store.index_text(base, COL, i, "alpha again")
    assert await store.search_text(base, COL, ["alpha"], 10) == [i]
    assert await store.search_text(base, COL, ["gamma"], 10) == []
    # Any text can be indexed, NUL and emoji included.
    await store.index_text(base, COL, i, "nul\x00separated 😀 émigré")
    assert await store.search_text(base, COL, ["émigré"], 10) == [i]
    assert await store.search_text(base, COL, ["alpha"], 10) == []


@pytest.mark.parametrize(
    "keyword",
    [
        'a" OR "b',
        '"',
        "*",
        "NEAR(",
        "NEAR(a b)",
        ":",
        "body:",
        "&",
        "|",
        "!",
        "!quoted",
        "(",
        ")",
        "-",
        "+",
        "^",
        "'",
        "a'b",
        "\\",
        "<->",
        "a <2> b",
        "a:*",
        "AND",
        "OR",
        "NOT",
        "x_y",
        "_",
        "😀",
        "\u0000",
        "w" * 3000,
    ],
)
async def test_search_keywords_never_raise(store: Store, keyword: str) -> None:
    base = await make_base(store)
    i = uid()
    await store.index_text(base, COL, i, "quoted text with a b and x_y NEAR or not")
    for keywords in ([keyword], [keyword, "quoted"], ["quoted", keyword], keyword.split(" ")):
        found = await store.search_text(base, COL, keywords, 10)
        assert found in ([], [i])


async def test_search_is_isolated_per_base_and_collection(store: Store) -> None:
    base, other = await make_base(store), await make_base(store)
    i = uid()
    await store.index_text(base, COL, i, "isolated marmalade")
    await store.index_text(base, "second", uid(), "unrelated")
    assert await store.search_text(base, COL, ["marmalade"], 10) == [i]
    assert await store.search_text(base, "second", ["marmalade"], 10) == []
    assert await store.search_text(other, COL, ["marmalade"], 10) == []
    await store.index_text(other, COL, i, "another body")
    assert await store.search_text(base, COL, ["marmalade"], 10) == [i]  # not replaced by the other base


async def test_fuzzy_expansion_in_sql_equals_the_reference(store: Store) -> None:
    """The vocabulary lookup in SQL finds exactly the terms ``text.candidates`` finds, over words
    dense in near neighbours (three letters, so one edit apart is common), unicode included."""
    rng = random.Random(12)
    alphabet = "abé"
    vocab = sorted({"".join(rng.choice(alphabet) for _ in range(rng.randint(2, 6))) for _ in range(120)})
    base = await make_base(store)
    ids = {}
    for w in vocab:
        ids[w] = uid()
        await store.index_text(base, COL, ids[w], f"zz {w}")
    keywords = sorted({"".join(rng.choice(alphabet) for _ in range(rng.randint(3, 6))) for _ in range(40)})
    for kw in keywords:
        near = set(candidates(kw, vocab))
        assert len(near) < MAX_CANDIDATES
        expected = {ids[w] for w in vocab if w.startswith(kw) or w in near}
        assert set(await store.search_text(base, COL, [kw], 500)) == expected, kw
