"""Unit tests of ``sbserver.services.query``: clause parsing and its error texts (spec 03 section
6.5), typed comparisons (6.3), ``in``/``!in`` (6.4), dotted paths, and the sort order (section 5).
"""

from __future__ import annotations

from typing import Any

import pytest

from sbserver.errors import BadRequest
from sbserver.services.query import (
    OPERATORS,
    Clause,
    check_field,
    equal,
    lookup,
    matcher,
    parse_clauses,
    sort_value,
)


def matches(doc: dict[str, Any], field: str, op: str, value: Any) -> bool:
    return matcher(parse_clauses([[field, op, value]]))(doc)


def error_of(raw: Any) -> str:
    with pytest.raises(BadRequest) as info:
        parse_clauses(raw)
    assert info.value.status == 400
    return info.value.message


# parsing


def test_no_filter() -> None:
    assert parse_clauses(None) == []
    assert parse_clauses([]) == []
    assert matcher([])({"anything": 1}) is True


def test_parses_every_operator_of_the_spec() -> None:
    ops = ["==", "=", "!=", "<>", ">", "<", ">=", "<=", "in", "!in", "nin"]
    assert set(ops) <= set(OPERATORS)
    clauses = parse_clauses([["a", op, 1] for op in ops])
    assert [c.op for c in clauses] == ops
    assert clauses[0] == Clause(("a",), "==", 1)
    assert clauses[0].field == "a"


def test_dotted_field_is_a_path() -> None:
    (clause,) = parse_clauses([["address.city", "==", "x"]])
    assert clause.path == ("address", "city") and clause.field == "address.city"


@pytest.mark.parametrize("raw", [{"a": 1}, "a", 5, True])
def test_filter_that_is_not_an_array(raw: Any) -> None:
    assert error_of(raw)


@pytest.mark.parametrize(
    ("raw", "n"),
    [
        ([[]], 1),
        ([["a"]], 1),
        ([["a", "=="]], 1),
        ([["a", "==", 1, 2]], 1),
        (["a"], 1),
        ([{"a": 1}], 1),
        ([None], 1),
        ([["a", "==", 1], ["b", "=="]], 2),
        ([["a", "==", 1], ["b", "==", 2], "c"], 3),
    ],
)
def test_clause_without_three_parameters(raw: Any, n: int) -> None:
    assert error_of(raw) == f"the {n} query clause did not contains the required 3 parameters (field, operator, value)"


def test_field_must_be_a_string() -> None:
    assert error_of([[5, "==", 1]]) == "the 1 query clause's field parameter must be a string: 5"
    assert error_of([["a", "==", 1], [None, "==", 1]]).startswith(
        "the 2 query clause's field parameter must be a string: "
    )
    assert error_of([[["a"], "==", 1]]).startswith("the 1 query clause's field parameter must be a string: ")


def test_operator_must_be_a_string() -> None:
    assert error_of([["a", 3, 1]]) == "the 1 query clause's operator must be a string: 3"
    assert error_of([["a", "==", 1], ["a", None, 1]]).startswith("the 2 query clause's operator must be a string: ")


@pytest.mark.parametrize("op", ["~", "=~", "LIKE", "$eq", "", "===", "=>", "contains"])
def test_unsupported_operator(op: str) -> None:
    assert error_of([["a", op, 1]]) == f"the 1 query clause's operator: {op} is not supported at the moment"
    assert error_of([["a", "==", 1], ["a", op, 1]]).startswith("the 2 query clause's operator: ")


def test_first_problem_is_reported() -> None:
    assert error_of([["a", "~", 1], [5, "==", 1]]).startswith("the 1 query clause's operator: ~")


@pytest.mark.parametrize("field", ["a') OR 1=1 --", "$.x", "a..b", "a[0]", "", ".a", "a.", "a b", "a'", "a;b", "*"])
def test_unsafe_field_names_are_refused(field: str) -> None:
    with pytest.raises(BadRequest):
        parse_clauses([[field, "==", 1]])
    with pytest.raises(BadRequest):
        check_field(field, "sort")


@pytest.mark.parametrize("field", ["a", "a_b", "a-b", "a.b.c", "A1", "priority", "sb_created"])
def test_plain_field_names_are_accepted(field: str) -> None:
    assert check_field(field, "sort") == tuple(field.split("."))


def test_same_field_and_operator_twice_applies_both() -> None:
    # upstream keeps only the last clause of a field+operator pair; every clause must apply
    match = matcher(parse_clauses([["a", ">", 1], ["a", ">", 5]]))
    assert match({"a": 3}) is False
    assert match({"a": 6}) is True
    match = matcher(parse_clauses([["a", "!=", 1], ["a", "!=", 2]]))
    assert match({"a": 2}) is False and match({"a": 3}) is True


# typed comparison (spec 03 section 6.3)


def test_numbers_compare_numerically() -> None:
    doc = {"n": 10, "f": 2.5}
    assert matches(doc, "n", ">", 9)
    assert not matches(doc, "n", "<", 9)
    assert matches(doc, "n", "==", 10.0)
    assert matches(doc, "f", "<", 3)
    assert matches(doc, "f", ">=", 2.5) and matches(doc, "f", "<=", 2.5)
    assert not matches(doc, "n", ">", 10)
    assert matches({"n": 2**53 + 1}, "n", ">", 2**53)  # exact, no float rounding
    assert matches({"n": -1}, "n", "<", 0)


def test_strings_compare_by_code_point() -> None:
    assert matches({"s": "b"}, "s", ">", "a")
    assert matches({"s": "Z"}, "s", "<", "a")  # 'Z' (90) < 'a' (97)
    assert matches({"s": "\u00e9"}, "s", ">", "z")  # é (233) > z (122)
    assert matches({"s": "10"}, "s", "<", "9")  # two strings: text order
    assert matches({"s": "abc"}, "s", "==", "abc")
    assert not matches({"s": "abc"}, "s", "==", "ABC")
    assert matches({"s": "ab"}, "s", "<", "abc")


def test_booleans_support_equality_only() -> None:
    doc = {"b": True, "f": False}
    assert matches(doc, "b", "==", True) and not matches(doc, "b", "==", False)
    assert matches(doc, "b", "!=", False)
    for op in (">", "<", ">=", "<="):
        assert not matches(doc, "b", op, False), op
        assert not matches(doc, "b", op, True), op
        assert not matches(doc, "f", op, True), op


def test_bool_and_number_never_equal() -> None:
    assert not matches({"b": True}, "b", "==", 1)
    assert not matches({"b": False}, "b", "==", 0)
    assert not matches({"n": 1}, "n", "==", True)
    assert not matches({"n": 0}, "n", "==", False)
    assert matches({"b": True}, "b", "!=", 1)
    assert not matches({"n": 1}, "n", ">", False)
    assert not matches({"n": 1}, "n", ">=", True)
    assert not matches({"b": True}, "b", "==", "true")
    assert not matches({"b": True}, "b", "==", "1")


def test_null_value() -> None:
    assert matches({"a": None}, "a", "==", None)
    assert matches({}, "a", "==", None)
    assert not matches({"a": 0}, "a", "==", None)
    assert not matches({"a": ""}, "a", "==", None)
    assert not matches({"a": False}, "a", "==", None)
    assert matches({"a": 0}, "a", "!=", None)
    assert matches({"a": False}, "a", "!=", None)
    assert matches({"a": ""}, "a", "!=", None)
    assert not matches({"a": None}, "a", "!=", None)
    assert not matches({}, "a", "!=", None)
    for op in (">", "<", ">=", "<="):
        assert not matches({"a": 1}, "a", op, None), op
        assert not matches({"a": None}, "a", op, None), op


def test_missing_field_behaves_as_null() -> None:
    doc = {"other": 1}
    assert not matches(doc, "a", "==", 5)
    assert matches(doc, "a", "!=", 5)
    for op in (">", "<", ">=", "<="):
        assert not matches(doc, "a", op, 5), op
        assert not matches(doc, "a", op, "x"), op


def test_mismatched_types() -> None:
    doc = {"n": 5, "s": "abc", "l": [1], "o": {"a": 1}}
    assert not matches(doc, "n", "==", "abc")
    assert matches(doc, "n", "!=", "abc")
    for op in (">", "<", ">=", "<="):
        assert not matches(doc, "n", op, "abc"), op
        assert not matches(doc, "s", op, 5), op
        assert not matches(doc, "l", op, 1), op
        assert not matches(doc, "o", op, 1), op
    assert not matches(doc, "s", "==", ["abc"])
    assert matches(doc, "s", "!=", ["abc"])


def test_numeric_strings_compare_numerically_with_numbers() -> None:
    assert matches({"n": 5}, "n", "==", "5")
    assert matches({"n": 5}, "n", "==", "5.0")
    assert matches({"n": 1000}, "n", "==", "1e3")
    assert matches({"n": 10}, "n", ">", "9")  # numeric, not text
    assert matches({"n": -2}, "n", "<", "-1.5")
    assert matches({"s": "10"}, "s", ">", 9)  # the reverse: string field, number value
    assert matches({"s": "5"}, "s", "==", 5)
    assert not matches({"s": "5"}, "s", "!=", 5)
    assert matches({"s": "0.5"}, "s", "<", 1)


@pytest.mark.parametrize("text", ["abc", "5abc", "NaN", "nan", "inf", "Infinity", "-inf", "0x10", "1_000", "", " "])
def test_non_numeric_strings_do_not_compare_with_numbers(text: str) -> None:
    assert not matches({"n": 5}, "n", "==", text)
    assert not matches({"n": 5}, "n", ">", text)
    assert not matches({"n": 5}, "n", "<", text)
    assert not matches({"s": text}, "s", ">", -(10**9))
    assert not matches({"s": text}, "s", "<", 10**9)


def test_equal_is_typed_and_recursive() -> None:
    assert equal([1, "a"], [1, "a"])
    assert not equal([1, "a"], ["a", 1])
    assert equal({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})
    assert not equal({"a": 1}, {"a": 1, "b": 2})
    assert not equal([True], [1])
    assert equal(None, None)
    assert not equal(None, 0)


# in / !in (spec 03 section 6.4)


def test_in_with_a_list_value() -> None:
    assert matches({"s": "open"}, "s", "in", ["open", "closed"])
    assert not matches({"s": "pending"}, "s", "in", ["open", "closed"])
    assert matches({"tags": ["red", "blue"]}, "tags", "in", ["red", "none"])
    assert not matches({"tags": ["green"]}, "tags", "in", ["red", "none"])
    assert matches({"n": 2}, "n", "in", [1, 2, 3])
    assert not matches({"n": 2}, "n", "in", [])
    assert not matches({"b": True}, "b", "in", [1])


def test_in_with_a_scalar_value() -> None:
    assert matches({"tags": ["red", "blue"]}, "tags", "in", "red")
    assert not matches({"tags": ["green"]}, "tags", "in", "red")
    assert matches({"s": "red"}, "s", "in", "red")
    assert not matches({"s": "reddish"}, "s", "in", "red")
    assert matches({"nums": [1, 2]}, "nums", "in", 2)


def test_in_on_missing_or_empty_fields() -> None:
    assert not matches({}, "tags", "in", ["red"])
    assert not matches({"tags": []}, "tags", "in", ["red"])
    assert not matches({"tags": None}, "tags", "in", "red")


@pytest.mark.parametrize("op", ["!in", "nin"])
def test_not_in_is_the_exact_negation(op: str) -> None:
    docs: list[dict[str, Any]] = [
        {"s": "open"},
        {"s": "pending"},
        {"tags": ["red", "blue"]},
        {"tags": ["green"]},
        {"tags": []},
        {},
        {"s": None},
        {"n": 2},
    ]
    for field, value in (("s", ["open", "closed"]), ("tags", ["red"]), ("tags", "red"), ("n", [2]), ("s", [])):
        for doc in docs:
            assert matches(doc, field, op, value) is not matches(doc, field, "in", value), (doc, field, value)
    assert matches({}, "tags", op, ["red"])  # a missing field matches !in


# dotted paths


def test_dotted_paths_address_nested_objects() -> None:
    doc = {"address": {"city": "Montreal", "geo": {"lat": 45.5}}, "top": 1}
    assert matches(doc, "address.city", "==", "Montreal")
    assert matches(doc, "address.geo.lat", ">", 45)
    assert not matches(doc, "address.zip", "!=", None)
    assert matches(doc, "address.zip", "==", None)
    assert lookup(doc, ("address", "geo", "lat")) == 45.5


def test_dotted_paths_through_non_objects_are_null() -> None:
    assert lookup({"address": "Montreal"}, ("address", "city")) is None
    assert lookup({"address": ["x"]}, ("address", "city")) is None
    assert lookup({"address": None}, ("address", "city")) is None
    assert lookup({}, ("a", "b", "c")) is None
    assert matches({"address": 5}, "address.city", "==", None)


def test_a_literal_dotted_key_is_not_a_path() -> None:
    doc = {"address.city": "Montreal", "address": {"city": "Laval"}}
    assert matches(doc, "address.city", "==", "Laval")
    assert not matches(doc, "address.city", "==", "Montreal")


def test_falsy_values_are_found() -> None:
    assert lookup({"a": {"b": 0}}, ("a", "b")) == 0
    assert lookup({"a": {"b": False}}, ("a", "b")) is False
    assert lookup({"a": {"b": ""}}, ("a", "b")) == ""
    assert matches({"a": {"b": 0}}, "a.b", "==", 0)
    assert matches({"a": {"b": False}}, "a.b", "==", False)


# sort order (spec 03 section 5): null/missing < numbers < strings < booleans


def test_sort_value_type_order() -> None:
    values: list[Any] = ["b", True, 2, None, "B", 10, 1.5, False, "", -3]
    ordered = sorted(values, key=sort_value)
    assert ordered[0] is None
    assert ordered[1:5] == [-3, 1.5, 2, 10]
    assert ordered[5:8] == ["", "B", "b"]
    assert set(ordered[8:]) == {True, False} and all(isinstance(v, bool) for v in ordered[8:])


def test_sort_value_numbers_and_strings() -> None:
    assert sorted([10, 9, 100, 2.5], key=sort_value) == [2.5, 9, 10, 100]
    assert sorted(["10", "9", "100"], key=sort_value) == ["10", "100", "9"]  # strings stay text
    assert sorted(["\u00e9", "z", "Z", "a"], key=sort_value) == ["Z", "a", "z", "\u00e9"]
    assert sort_value(1) == sort_value(1.0)


def test_sort_value_is_total_over_json_values() -> None:
    values: list[Any] = [[1], {"a": 1}, None, 1, "x", True, [], {}]
    ordered = sorted(values, key=sort_value)  # must not raise on mixed types
    assert ordered[0] is None
    assert ordered[1:4] == [1, "x", True]
