"""Query clauses: parsing, typed evaluation and sort keys, shared by every store.

A filter is a JSON array of ``[field, operator, value]`` clauses, all ANDed. Comparison is
typed: numbers numerically, strings by code point, booleans for equality only; a string that
reads as a number (``sbserver.clauses.numeric_value``) compares numerically with a number field
(and the reverse); a missing field is null. ``in`` takes a list or a scalar and also matches
array fields sharing an element; arrays and objects compare as JSON (``json_equal``).

The stores compile clauses to SQL (``backends/storage/documents/filters.py``); this module is
the reference their answers are tested against (``tests/backends/test_filters_property.py``).
Parsing also enforces the limits that keep one request from costing the server much: clause
count, ``in`` list length, value sizes and path depth, each a 400 that names the limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from sbserver.clauses import Clause, is_number, json_equal, numeric_value
from sbserver.errors import BadRequest

OPERATORS = ("==", "=", "!=", "<>", ">", "<", ">=", "<=", "in", "!in", "nin")
_FIELD = re.compile(r"^[\w-]+(?:\.[\w-]+)*$")
MAX_CLAUSES = 64
MAX_DEPTH = 16  # segments of a dotted field
MAX_IN = 500  # elements of one in / !in list
MAX_VALUES = 1000  # values in a whole filter (in lists counted element by element)
MAX_TEXT = 4096  # characters of a string value
MAX_JSON = 16384  # bytes of an array or object value (as JSON)

__all__ = ["OPERATORS", "Clause", "check_field", "equal", "lookup", "matcher", "parse_clauses", "sort_value"]


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_field(name: str, where: str) -> tuple[str, ...]:
    if not name or len(name) > 200 or not _FIELD.match(name):
        raise BadRequest(f"invalid field name {_describe(name)} in {where}: use letters, digits, _ - and dots")
    path = tuple(name.split("."))
    if len(path) > MAX_DEPTH:
        raise BadRequest(f"invalid field name in {where}: at most {MAX_DEPTH} dotted parts are allowed")
    return path


def _check_value(value: Any, n: int) -> None:
    """A clause value within the limits; 400 naming the limit otherwise."""
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise BadRequest(f"the {n} query clause's value is too long: at most {MAX_TEXT} characters")
    if isinstance(value, (list, dict)) and len(orjson.dumps(value)) > MAX_JSON:
        raise BadRequest(f"the {n} query clause's value is too large: at most {MAX_JSON} bytes of JSON")


def parse_clauses(raw: Any) -> list[Clause]:
    """Validate a clause array; 400 with StaticBackend's texts on the first problem."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRequest("invalid filter: expected an array of [field, operator, value] clauses")
    if len(raw) > MAX_CLAUSES:
        raise BadRequest(f"invalid filter: at most {MAX_CLAUSES} clauses are allowed")
    clauses = []
    values = 0
    for n, item in enumerate(raw, start=1):
        if not isinstance(item, list) or len(item) != 3:
            raise BadRequest(
                f"the {n} query clause did not contains the required 3 parameters (field, operator, value)"
            )
        field, op, value = item
        if not isinstance(field, str):
            raise BadRequest(f"the {n} query clause's field parameter must be a string: {_describe(field)}")
        if not isinstance(op, str):
            raise BadRequest(f"the {n} query clause's operator must be a string: {_describe(op)}")
        op = op.strip().lower()
        if op not in OPERATORS:
            raise BadRequest(f"the {n} query clause's operator: {item[1]} is not supported at the moment")
        path = check_field(field, f"query clause {n}")
        if op in ("in", "!in", "nin") and isinstance(value, list):
            if len(value) > MAX_IN:
                raise BadRequest(f"the {n} query clause's list is too long: at most {MAX_IN} values")
            for element in value:
                _check_value(element, n)
            values += len(value)
        else:
            _check_value(value, n)
            values += 1
        if values > MAX_VALUES:
            raise BadRequest(f"invalid filter: at most {MAX_VALUES} values in all clauses together")
        clauses.append(Clause(path, op, value))
    return clauses


def lookup(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = doc
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
        if value is None:
            return None
    return value


def _as_number(v: Any) -> float | int | None:
    if is_number(v):
        return v  # type: ignore[no-any-return,unused-ignore]
    return numeric_value(v)


def _numeric_pair(a: Any, b: Any) -> tuple[float | int, float | int] | None:
    if is_number(a) and is_number(b):
        return a, b
    if is_number(a) or is_number(b):
        na, nb = _as_number(a), _as_number(b)
        if na is not None and nb is not None:
            return na, nb
    return None


def equal(a: Any, b: Any) -> bool:
    """A field value (``a``) against a clause value (``b``): numeric strings meet numbers at this
    level only; inside arrays and objects values compare as JSON."""
    if a is None or b is None:
        return a is None and b is None
    pair = _numeric_pair(a, b)
    if pair is not None:
        return pair[0] == pair[1]
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return json_equal(a, b)


def _order(a: Any, b: Any) -> int | None:
    """-1/0/1 when a and b are ordered (numbers or strings), else None."""
    pair = _numeric_pair(a, b)
    if pair is not None:
        x, y = pair
        return (x > y) - (x < y)
    if isinstance(a, str) and isinstance(b, str):
        return (a > b) - (a < b)
    return None


def _member(field: Any, value: Any) -> bool:
    candidates = value if isinstance(value, list) else [value]
    if isinstance(field, list):
        return any(equal(f, c) for f in field for c in candidates)
    return any(equal(field, c) for c in candidates)


def _test(clause: Clause, doc: dict[str, Any]) -> bool:
    field = lookup(doc, clause.path)
    op, value = clause.op, clause.value
    if op in ("==", "="):
        return equal(field, value)
    if op in ("!=", "<>"):
        return not equal(field, value)
    if op == "in":
        return _member(field, value)
    if op in ("!in", "nin"):
        return not _member(field, value)
    cmp = _order(field, value)
    if cmp is None:
        return False
    if op == ">":
        return cmp > 0
    if op == "<":
        return cmp < 0
    if op == ">=":
        return cmp >= 0
    return cmp <= 0


def matcher(clauses: list[Clause]) -> Callable[[dict[str, Any]], bool]:
    """A predicate over a document's data for the ANDed clauses."""
    if not clauses:
        return lambda doc: True
    return lambda doc: all(_test(c, doc) for c in clauses)


_TYPE_RANK_NULL, _TYPE_RANK_NUM, _TYPE_RANK_STR, _TYPE_RANK_BOOL, _TYPE_RANK_OTHER = range(5)


def sort_value(value: Any) -> tuple[int, Any]:
    """Total order over JSON values: null < numbers < strings < booleans < arrays/objects; every
    array and object ties (the sort falls back to creation, then id)."""
    if value is None:
        return (_TYPE_RANK_NULL, 0)
    if isinstance(value, bool):
        return (_TYPE_RANK_BOOL, value)
    if is_number(value):
        return (_TYPE_RANK_NUM, value)
    if isinstance(value, str):
        return (_TYPE_RANK_STR, value)
    return (_TYPE_RANK_OTHER, 0)
