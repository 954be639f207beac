"""Property tests: every store's SQL answer to a filter, sort and page equals the reference
evaluator's (``services/query.py``), on SQLite and on PostgreSQL.

Hypothesis generates documents (mixed types at the same field, nested objects, arrays, unicode,
large and negative numbers, numeric strings, ties in the sort field and in creation time) and
filters (every operator, list and scalar values, dotted paths). Each example is written to a
fresh collection, then queried page by page; the totals, counts and the documents bulk update
and bulk delete select are compared too.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sbserver.backends.storage.base import Store
from sbserver.clauses import CREATED, FIELD, ID, Sort
from sbserver.services.query import lookup, matcher, parse_clauses, sort_value
from sbserver.types import ALL_ROWS, Base, Scope, StoredDoc
from tests.backends.test_storage import make_base
from tests.conftest import STORE_KINDS

T = TypeVar("T")
OPS = ["==", "=", "!=", "<>", ">", "<", ">=", "<=", "in", "!in", "nin"]
KEYS = ["a", "b", "ü", "k-1", "0"]
FIELDS = ["a", "b", "ü", "k-1", "0", "n.a", "n.x", "n.0", "a.a", "n.m.a"]
ACCOUNTS = ["acct-1", "acct-2"]
OWNERS = ["user-1", "user-2"]
CREATED_AT = ["2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z", "2024-01-02T00:00:00Z"]


class LoopThread:
    """An event loop in a thread, so synchronous Hypothesis tests can drive an async store."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture(params=STORE_KINDS)
def world(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[tuple[LoopThread, Store, Base]]:
    if request.param == "pg":
        from sbserver.backends.storage.postgresql import PostgresStore

        store: Store = PostgresStore(request.getfixturevalue("pg_url"))
    else:
        from sbserver.backends.storage.sqlite import SQLiteStore

        store = SQLiteStore(tmp_path / "sb.db")
    runner = LoopThread()
    runner.run(store.open())
    base = runner.run(make_base(store))
    yield runner, store, base
    runner.run(store.close())
    runner.stop()


# values: every JSON shape, with the awkward ones made likely

text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=8)
ints = st.one_of(st.integers(-20, 20), st.integers(-(2**63), 2**63 - 1), st.sampled_from([2**53, 2**53 + 1, -(2**63)]))
floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.5, -0.0, 7.0, 1e-7, 2.5, 1e300, 9.223372036854776e18]),
)
numeric_text = st.one_of(ints, floats).flatmap(
    lambda n: st.sampled_from([str(n), f" {n}", f"{n}\t", repr(float(n)) if abs(n) < 1e300 else str(n)])
)
scalars = st.one_of(
    st.none(), st.booleans(), ints, floats, text, numeric_text, st.sampled_from(["7", "abc", "", "Z", "é"])
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "x", "m"]), inner, max_size=2)
    ),
    max_leaves=6,
)


@st.composite
def documents(draw: st.DrawFn) -> list[StoredDoc]:
    out = []
    for _ in range(draw(st.integers(0, 14))):
        data = draw(st.dictionaries(st.sampled_from(KEYS), values, max_size=4))
        if draw(st.booleans()):
            data["n"] = draw(
                st.one_of(st.dictionaries(st.sampled_from(["a", "x", "0", "m"]), values, max_size=3), values)
            )
        out.append(
            StoredDoc(
                str(uuid.uuid4()),
                draw(st.sampled_from(ACCOUNTS)),
                draw(st.sampled_from(OWNERS)),
                draw(st.sampled_from(CREATED_AT)),
                data,
            )
        )
    return out


clause_values = st.one_of(values, st.lists(scalars, max_size=4))
clauses = st.lists(st.tuples(st.sampled_from(FIELDS), st.sampled_from(OPS), clause_values).map(list), max_size=3)
sorts = st.one_of(
    st.builds(Sort, st.just(CREATED), st.booleans()),
    st.builds(Sort, st.just(ID), st.booleans()),
    st.builds(Sort, st.just(FIELD), st.booleans(), st.sampled_from(FIELDS).map(lambda f: tuple(f.split(".")))),
)
scopes = st.sampled_from([ALL_ROWS, Scope(account_id="acct-1"), Scope(account_id="acct-1", owner_id="user-2")])


def reference(docs: list[StoredDoc], raw: list[Any], scope: Scope, sort: Sort) -> list[str]:
    """The ids the evaluator selects, in the evaluator's order."""
    match = matcher(parse_clauses(raw))
    chosen = [
        d
        for d in docs
        if match(d.data)
        and (scope.account_id is None or d.account_id == scope.account_id)
        and (scope.owner_id is None or d.owner_id == scope.owner_id)
    ]
    key: Callable[[StoredDoc], Any]
    if sort.kind == ID:
        key = lambda d: d.id  # noqa: E731
    elif sort.kind == FIELD:
        key = lambda d: (sort_value(lookup(d.data, sort.path)), d.created, d.id)  # noqa: E731
    else:
        key = lambda d: (d.created, d.id)  # noqa: E731
    return [d.id for d in sorted(chosen, key=key, reverse=sort.desc)]


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@SETTINGS
@given(docs=documents(), raw=clauses, sort=sorts, scope=scopes, size=st.integers(1, 6), indexed=st.booleans())
def test_query_pages_equal_the_evaluator(
    world: tuple[LoopThread, Store, Base],
    docs: list[StoredDoc],
    raw: list[Any],
    sort: Sort,
    scope: Scope,
    size: int,
    indexed: bool,
) -> None:
    runner, store, base = world
    col = "p" + uuid.uuid4().hex[:12]
    if indexed:  # the same answers when an index on the filtered and sorted fields serves them
        for field in {".".join(sort.path) or "a", *(c[0] for c in raw)}:
            runner.run(store.create_index(base, col, field))
    if docs:
        runner.run(store.insert_documents(base, col, docs, "744"))
    expected = reference(docs, raw, scope, sort)
    parsed = parse_clauses(raw)
    got: list[str] = []
    for page in range(len(expected) // size + 1):
        found, total = runner.run(store.query_documents(base, col, scope, parsed, sort, size, page * size))
        assert total == len(expected)
        assert [d.id for d in found] == expected[page * size : (page + 1) * size]
        got += [d.id for d in found]
    assert got == expected
    assert runner.run(store.count_documents(base, col, scope, parsed)) == len(expected)


@SETTINGS
@given(docs=documents(), raw=clauses, scope=scopes)
def test_bulk_update_and_delete_select_what_the_evaluator_selects(
    world: tuple[LoopThread, Store, Base], docs: list[StoredDoc], raw: list[Any], scope: Scope
) -> None:
    runner, store, base = world
    col = "u" + uuid.uuid4().hex[:12]
    if docs:
        runner.run(store.insert_documents(base, col, docs, "744"))
    expected = set(reference(docs, raw, scope, Sort()))
    parsed = parse_clauses(raw)
    updated = runner.run(store.update_documents(base, col, scope, parsed, lambda d: {**d.data, "seen": True}))
    assert {d.id for d in updated} == expected
    deleted = runner.run(store.delete_documents(base, col, scope, parse_clauses([["seen", "==", True]])))
    assert {d.id for d in deleted} == expected
    left, total = runner.run(store.query_documents(base, col, ALL_ROWS, [], Sort(), 100, 0))
    assert total == len(docs) - len(expected)
    assert {d.id for d in left} == {d.id for d in docs} - expected
