"""Filter clauses and the value rules every store shares: what a numeric string is, and when two
nested JSON values are equal.

The services parse and evaluate filters (``services/query.py``, the reference); the stores
compile the same clauses to SQL (``backends/storage/documents/filters.py``). Both need these
rules, and they must agree to the last character, so they live here, below both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Characters a numeric string may carry around its number (ASCII white space, as str.strip
# without Unicode spaces), and the digits it may use (ASCII only).
NUMERIC_SPACE = " \t\n\r\f\v"
_DIGITS = frozenset("0123456789")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


# Sort kinds: by creation (created, then id), by id alone, or by a document field.
CREATED, ID, FIELD = "created", "id", "field"


@dataclass(frozen=True, slots=True)
class Sort:
    """How a page is ordered: ``kind`` one of CREATED, ID, FIELD (then ``path`` is the field);
    a field sort orders by ``services.query.sort_value``, ties by creation, then id."""

    kind: str = CREATED
    desc: bool = False
    path: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Clause:
    """One ``[field, operator, value]`` filter clause; ``path`` is the dotted field, split."""

    path: tuple[str, ...]
    op: str
    value: Any

    @property
    def field(self) -> str:
        return ".".join(self.path)


def _digits(s: str, i: int) -> int:
    """Index of the first non-digit at or after ``i``."""
    while i < len(s) and s[i] in _DIGITS:
        i += 1
    return i


def is_numeric_text(s: str) -> bool:
    """True when ``s`` reads as a number: ``-?(\\d+\\.?\\d*|\\.\\d+)([eE][+-]?\\d{1,3})?`` with
    ASCII digits, optionally surrounded by ASCII white space. One linear pass, no regex."""
    t = s.strip(NUMERIC_SPACE)
    i = 1 if t.startswith("-") else 0
    start = i
    i = _digits(t, i)
    whole = i - start
    if i < len(t) and t[i] == ".":
        j = _digits(t, i + 1)
        if whole == 0 and j == i + 1:
            return False
        i = j
    elif whole == 0:
        return False
    if i < len(t) and t[i] in "eE":
        i += 1
        if i < len(t) and t[i] in "+-":
            i += 1
        j = _digits(t, i)
        if not 1 <= j - i <= 3:
            return False
        i = j
    return i == len(t)


def numeric_value(value: Any) -> int | float | None:
    """The number a numeric string stands for: an int when it has no fraction or exponent and fits
    in 64 bits, else a float. None for anything that is not a numeric string."""
    if not isinstance(value, str) or not is_numeric_text(value):
        return None
    t = value.strip(NUMERIC_SPACE)
    if "." in t or "e" in t or "E" in t or len(t) > 20:  # 20: "-" and 19 digits, int64's widest
        return float(t)  # beyond a double's range: an infinity, as JSON numbers read back
    n = int(t)
    return n if INT64_MIN <= n <= INT64_MAX else float(t)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_equal(a: Any, b: Any) -> bool:
    """Equality of two JSON values as stored: numbers numerically, booleans only with booleans,
    strings exactly (no numeric-string reading), arrays in order, objects by key."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_number(a) or is_number(b):
        return is_number(a) and is_number(b) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return False
