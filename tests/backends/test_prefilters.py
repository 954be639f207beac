"""The cheap first tests of an equality scan (SQLite's GLOB on the JSON text, PostgreSQL's ``@>``):
given only where they can never drop a match. That they never change an answer is the property
suite's job (tests/backends/test_filters_property.py, on both stores); this says when each applies.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from sbserver.backends.storage.base import Store
from sbserver.backends.storage.documents.filters import PostgresCompiler, pg_prefilter, sqlite_prefilter
from sbserver.clauses import Clause, Sort
from sbserver.services.query import matcher, parse_clauses
from sbserver.types import ALL_ROWS, StoredDoc
from tests.backends import test_storage
from tests.backends.test_storage import make_base

new_store = test_storage.new_store
store = test_storage.store


def eq(field: str, value: Any, op: str = "==") -> Clause:
    return Clause(tuple(field.split(".")), op, value)


@pytest.mark.parametrize(
    ("clause", "contained"),
    [
        (eq("k", 7), {"k": 7}),
        (eq("k", -3, "="), {"k": -3}),
        (eq("a.b.c", True), {"a": {"b": {"c": True}}}),
        (eq("name", "ada"), {"name": "ada"}),
        (eq("a.0", "x"), {"a": {"0": "x"}}),  # a numeric segment: containment wants an object too
        (eq("k", None), None),  # a missing field equals null
        (eq("k", 7.5), None),
        (eq("k", 10**15), None),
        (eq("k", "7"), None),  # a numeric string also matches the number 7
        (eq("k", " 1e3 "), None),
        (eq("k", "a\x00b"), None),
        (eq("k", "a\ufffdb"), None),
        (eq("k", [1]), None),
        (eq("k", {"a": 1}), None),
        (eq("k", 7, "!="), None),
        (eq("k", 7, ">="), None),
    ],
)
def test_pg_prefilter_only_where_it_cannot_drop_a_match(clause: Clause, contained: Any) -> None:
    assert pg_prefilter(clause) == contained


def test_pg_equality_asks_containment_first_and_keeps_the_numeric_string_branch() -> None:
    compiler = PostgresCompiler(first_param=3)
    sql = compiler.clause(eq("k", 7))
    first, second = sql.split(") OR (")
    assert first.startswith("((j @> $6::jsonb AND ") and "@>" not in second, sql  # after 7 and the text bounds
    assert compiler.params[-1] == '{"k":7}'
    assert "numeric" in second and "'string'" in second  # "7" as a string still matches 7
    plain = PostgresCompiler(first_param=1)
    assert "@>" not in plain.clause(eq("k", 7.5)) and "@>" not in plain.clause(eq("k", "7"))


@pytest.mark.parametrize(
    ("clause", "pattern"),
    [
        (eq("k", 7), ['*"k":[7"]*', '*"k":7[,}.]*', '*"k":"*']),
        (eq("k", -12), ['*"k":[-"]*', '*"k":-12[,}.]*', '*"k":"*']),
        (eq("k", 0), ['*"k":[-0"]*', '*"k":0[,}.]*', '*"k":-0.0*', '*"k":"*']),
        (eq("k", True), ['*"k":true*']),
        (eq("name", "a*b"), ['*"name":"a[*]b"*']),
        (eq("k", None), None),
        (eq("k", 7.5), None),
        (eq("k", "7"), None),
        (eq("k", 7, "<"), None),
    ],
)
def test_sqlite_prefilter_patterns(clause: Clause, pattern: list[str] | None) -> None:
    assert sqlite_prefilter(clause) == pattern


def test_pg_leaves_an_indexed_field_to_its_index() -> None:
    """On an indexed field the clause stays exactly the index's expressions (the planner matches
    them), without a containment test on every row the index returns."""
    assert "@>" not in PostgresCompiler(indexed=frozenset({"k"})).clause(eq("k", 7))
    assert "@>" in PostgresCompiler(indexed=frozenset({"other"})).clause(eq("k", 7))


TRICKY: list[Any] = [7, 7.0, "7", " 7 ", "07", "7.0", "7e0", ".7e1", 70, 17, -7, "x7", 0, -0.0, 0.0, "0", "-0"]
TRICKY += ["0.0", " -0 ", None, True, False, [7], [0], {"k": 7}, "", -12, -12.0, "-12", -120]


@pytest.mark.parametrize("value", [7, 0, -12, True, "x7"])
async def test_an_equality_scan_finds_what_the_evaluator_finds(store: Store, value: Any) -> None:
    """Every spelling of a value that equals it (floats, numeric strings, -0.0) passes the
    prefilters, at the top and nested, and a lookalike inside a string does not confuse them."""
    base = await make_base(store)
    docs = [
        StoredDoc(str(uuid.uuid4()), "a", "u", f"2024-01-01T00:00:{i:02d}Z", data)
        for i, v in enumerate(TRICKY)
        for data in ({"k": v}, {"a": {"k": v}, "k": "pad"}, {"s": f'"k":{v},', "k": [v]})
    ]
    await store.insert_documents(base, "c", docs, "744")
    for field in ("k", "a.k"):
        clauses = parse_clauses([[field, "==", value]])
        found, total = await store.query_documents(base, "c", ALL_ROWS, clauses, Sort(), 1000, 0)
        expected = [d.id for d in docs if matcher(clauses)(d.data)]
        assert expected and [d.id for d in found] == expected and total == len(expected), field
