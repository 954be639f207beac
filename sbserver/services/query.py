"""Query clauses: parsing, typed evaluation and sort keys, shared by every store.

A filter is a JSON array of ``[field, operator, value]`` clauses, all ANDed. Comparison is
typed: numbers numerically, strings by code point, booleans for equality only; a string that
reads as a number compares numerically with a number field (and the reverse); a missing field
is null. ``in`` takes a list or a scalar and also matches array fields sharing an element.
Fields never reach SQL: evaluation happens here, so SQLite and PostgreSQL agree exactly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sbserver.errors import BadRequest

OPERATORS = ("==", "=", "!=", "<>", ">", "<", ">=", "<=", "in", "!in", "nin")
_NUMERIC = re.compile(r"^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_FIELD = re.compile(r"^[\w-]+(?:\.[\w-]+)*$")
MAX_CLAUSES = 64


@dataclass(frozen=True, slots=True)
class Clause:
    path: tuple[str, ...]
    op: str
    value: Any

    @property
    def field(self) -> str:
        return ".".join(self.path)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_field(name: str, where: str) -> tuple[str, ...]:
    if not name or len(name) > 200 or not _FIELD.match(name):
        raise BadRequest(f"invalid field name {_describe(name)} in {where}: use letters, digits, _ - and dots")
    return tuple(name.split("."))


def parse_clauses(raw: Any) -> list[Clause]:
    """Validate a clause array; 400 with StaticBackend's texts on the first problem."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRequest("invalid filter: expected an array of [field, operator, value] clauses")
    if len(raw) > MAX_CLAUSES:
        raise BadRequest(f"invalid filter: at most {MAX_CLAUSES} clauses are allowed")
    clauses = []
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


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _as_number(v: Any) -> float | int | None:
    if _is_number(v):
        return v  # type: ignore[no-any-return,unused-ignore]
    if isinstance(v, str) and _NUMERIC.match(v.strip()):
        try:
            return float(v) if any(c in v for c in ".eE") else int(v)
        except ValueError:
            return None
    return None


def _numeric_pair(a: Any, b: Any) -> tuple[float | int, float | int] | None:
    if _is_number(a) and _is_number(b):
        return a, b
    if _is_number(a) or _is_number(b):
        na, nb = _as_number(a), _as_number(b)
        if na is not None and nb is not None:
            return na, nb
    return None


def equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    pair = _numeric_pair(a, b)
    if pair is not None:
        return pair[0] == pair[1]
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return bool(a == b)


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
    """Total order over JSON values: null < numbers < strings < booleans < arrays/objects."""
    if value is None:
        return (_TYPE_RANK_NULL, 0)
    if isinstance(value, bool):
        return (_TYPE_RANK_BOOL, value)
    if _is_number(value):
        return (_TYPE_RANK_NUM, value)
    if isinstance(value, str):
        return (_TYPE_RANK_STR, value)
    return (_TYPE_RANK_OTHER, repr(value))
