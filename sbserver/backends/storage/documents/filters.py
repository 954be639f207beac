"""Filters, sorts and field indexes compiled to SQL, for SQLite and PostgreSQL.

The semantics are those of the reference evaluator (``services/query.py``), rule for rule:
every clause becomes a predicate over one *slot*, a JSON value read from the document (a dotted
field) or, for ``in`` over an array field, each element of that array. A slot is seen through
two expressions, its *rank* and its *value*:

    rank 0 null or missing, 1 number, 2 string, 3 boolean, 4 array or object
    value the number; the string; 0/1 for false/true; NULL for arrays and objects

``ORDER BY rank, value, created, id`` is the evaluator's sort, and an index on
``(scope columns, rank, value, created, id)`` serves equality, range and sort on that field: the
expressions a query uses are built by the same code as the index, so the planner matches them.
(PostgreSQL cannot hold numbers and text in one column, so its value is two: a numeric and a
text in the "C" collation.) Clause values always travel as parameters; field paths, collection
and base names are validated before they are written into SQL as literals (an index on an
expression is only used when the query spells the same literal expression).

A numeric string (``"12"``, ``" -1.5e3 "``) meets numbers: its SQL test only runs on text
values in the range such strings occupy (from TAB to ``9``), so the index narrows it too.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from decimal import Decimal
from typing import Any

import orjson

from sbserver.clauses import FIELD, ID, NUMERIC_SPACE, Clause, Sort, is_number, json_equal, numeric_value


def without_nul(value: Any) -> Any:
    """``value`` with U+0000 in its strings and keys read as U+FFFD, as the stores' JSON views
    read documents (PostgreSQL's jsonb cannot hold U+0000; SQLite's JSON functions end strings
    there)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    if isinstance(value, dict):
        return {k.replace("\x00", "\ufffd"): without_nul(v) for k, v in value.items()}
    return value


def nul_free_json(text: str, data: Any) -> str | None:
    """The JSON SQLite's filters read for a document whose JSON ``text`` may hold U+0000
    (``without_nul`` of its ``data``); None for every other document (they read ``data``)."""
    return orjson.dumps(without_nul(data)).decode() if "\\u0000" in text else None


def literal(text: str) -> str:
    """A SQL string literal (for names validated elsewhere; values always go as parameters)."""
    return "'" + text.replace("'", "''") + "'"


def index_name(base: str, col: str, field: str, scope: str) -> str:
    """A stable, short index name for one (base, collection, field, scope)."""
    digest = hashlib.sha1(f"{base}\x00{col}\x00{field}".encode()).hexdigest()[:20]
    return f"docidx_{digest}_{scope}"


class Slot(ABC):
    """One JSON value as SQL sees it."""

    rank: str
    value: str

    def is_rank(self, n: int) -> str:
        return f"{self.rank} = {n}"

    @abstractmethod
    def is_kind(self, kind: str) -> str:
        """SQL true when the value is an array (``array``) or an object (``object``)."""

    @abstractmethod
    def number_of_text(self) -> str:
        """The number a numeric-string slot stands for, NULL for any other string (rank 2 only)."""

    @abstractmethod
    def json_equals(self, placeholder: str) -> str:
        """SQL true when the (array or object) slot equals the JSON parameter, as ``json_equal``."""


class Compiler(ABC):
    """Builds one statement's filter, order and parameters for one dialect."""

    # The text a numeric string begins with (white space, '-', '.', a digit) lies in [TAB, ':').
    TEXT_LOW = "\t"
    TEXT_HIGH = ":"

    def __init__(self, first_param: int = 1) -> None:
        self.params: list[Any] = []
        self.served = False  # an index serves a clause (``SQLiteCompiler.where_indexed``)
        self.first_param = first_param

    # dialect parts
    @abstractmethod
    def placeholder(self, value: Any, kind: str) -> str:
        """Add a parameter (``kind``: number, text, json) and return its placeholder."""

    @abstractmethod
    def field(self, path: tuple[str, ...]) -> Slot:
        """The slot of a document field."""

    @abstractmethod
    def any_element(self, path: tuple[str, ...], build: Any) -> str:
        """SQL true when the field is an array with an element for which ``build(slot)`` holds."""

    false = "0 = 1"

    # semantics (one rule per evaluator rule). A comparison is a list of *branches*, one per rank
    # it can match, each an AND of a rank and a value test: one range of an index on
    # (rank, value) each.
    def any_of(self, branches: list[str]) -> str:
        return "(" + " OR ".join(f"({b})" for b in branches) + ")" if branches else self.false

    def number_branches(self, slot: Slot, op: str, number: int | float) -> list[str]:
        """A number slot compared with a number; a numeric-string slot too."""
        p = self.placeholder(number, "number")  # placeholders in the order they appear
        low = self.placeholder(self.TEXT_LOW, "text")
        high = self.placeholder(self.TEXT_HIGH, "text")
        q = self.placeholder(number, "number")
        return [
            f"{slot.is_rank(1)} AND {slot.value} {op} {p}",
            f"{slot.is_rank(2)} AND {slot.value} >= {low} AND {slot.value} < {high} AND {slot.number_of_text()} {op} {q}",
        ]

    def text_branches(self, slot: Slot, op: str, text: str) -> list[str]:
        """A string slot compared with a string by code point; a number slot too when the
        string is numeric."""
        number = numeric_value(text)
        numbers = (
            [] if number is None else [f"{slot.is_rank(1)} AND {slot.value} {op} {self.placeholder(number, 'number')}"]
        )
        return [*numbers, f"{slot.is_rank(2)} AND {slot.value} {op} {self.placeholder(text, 'text')}"]

    def equal_branches(self, slot: Slot, value: Any) -> list[str]:
        if value is None:
            return [slot.is_rank(0)]
        if isinstance(value, bool):
            return [f"{slot.is_rank(3)} AND {slot.value} = {1 if value else 0}"]
        if is_number(value):
            return self.number_branches(slot, "=", value)
        if isinstance(value, str):
            return self.text_branches(slot, "=", value)
        kind = "array" if isinstance(value, list) else "object"
        return [f"{slot.is_rank(4)} AND {slot.is_kind(kind)} AND {slot.json_equals(self.placeholder(value, 'json'))}"]

    def order_branches(self, slot: Slot, op: str, value: Any) -> list[str]:
        if is_number(value):
            return self.number_branches(slot, op, value)
        if isinstance(value, str):
            return self.text_branches(slot, op, value)
        return []

    def equal(self, slot: Slot, value: Any) -> str:
        return self.any_of(self.equal_branches(slot, value))

    def branches(self, c: Clause) -> list[str] | None:
        """The branches of a clause an index on its field can serve (equality and order), None
        for the others."""
        if c.op in ("==", "="):
            return self.equal_branches(self.field(c.path), c.value)
        if c.op in ("<", ">", "<=", ">="):
            return self.order_branches(self.field(c.path), c.op, c.value)
        return None

    def member(self, path: tuple[str, ...], value: Any) -> str:
        """``in``: a non-array field equal to a candidate, or an array field with an element
        equal to one. A list candidate never matches a whole field (only an element)."""
        candidates = value if isinstance(value, list) else [value]
        if not candidates:
            return self.false
        slot = self.field(path)
        whole = [self.equal(slot, c) for c in candidates if not isinstance(c, list)]
        parts = []
        if whole:
            parts.append(f"(NOT {slot.is_kind('array')} AND ({' OR '.join(whole)}))")
        parts.append(self.any_element(path, lambda e: " OR ".join(self.equal(e, c) for c in candidates)))
        return "(" + " OR ".join(parts) + ")"

    def clause(self, c: Clause) -> str:
        if c.op in ("==", "="):
            return self.equal(self.field(c.path), c.value)
        if c.op in ("!=", "<>"):
            return self.negate(self.equal(self.field(c.path), c.value))
        if c.op == "in":
            return self.member(c.path, c.value)
        if c.op in ("!in", "nin"):
            return self.negate(self.member(c.path, c.value))
        return self.any_of(self.order_branches(self.field(c.path), c.op, c.value))

    @abstractmethod
    def negate(self, predicate: str) -> str:
        """NOT of a predicate that may be NULL (NULL counts as false)."""

    def where(self, clauses: list[Clause]) -> str:
        """The ANDed clauses, as `` AND (...)`` terms to append to a WHERE ('' for none)."""
        return "".join(f" AND {self.clause(c)}" for c in clauses)

    def order_by(self, sort: Sort) -> str:
        d = " DESC" if sort.desc else ""
        if sort.kind == ID:
            return f"id{d}"
        if sort.kind == FIELD:
            keys = self.sort_keys(sort.path)
            return ", ".join(f"{k}{d}" for k in [*keys, "created", "id"])
        return f"created{d}, id{d}"

    @abstractmethod
    def sort_keys(self, path: tuple[str, ...]) -> list[str]:
        """The expressions a field sort orders by, in order (before created and id)."""


# SQLite


# The JSON a SQLite filter reads: ``data``, or ``safe`` when the document holds U+0000.
SQLITE_DOC = "coalesce(safe, data)"


def sqlite_path(path: tuple[str, ...]) -> str:
    """A JSON path literal: ``'$."a"."b"'`` (segments are letters, digits, _ and -)."""
    return literal("$" + "".join(f'."{p}"' for p in path))


_SQLITE_RANK = (
    "CASE {t} WHEN 'integer' THEN 1 WHEN 'real' THEN 1 WHEN 'text' THEN 2 WHEN 'true' THEN 3 "
    "WHEN 'false' THEN 3 WHEN 'array' THEN 4 WHEN 'object' THEN 4 ELSE 0 END"
)


class SQLiteSlot(Slot):
    def __init__(self, type_sql: str, value_sql: str, json_sql: str) -> None:
        self.type_sql = type_sql
        self.raw = value_sql  # json_extract: numbers, text for strings (and for arrays and objects)
        self.rank = "(" + _SQLITE_RANK.format(t=type_sql) + ")"
        self.value = f"(CASE WHEN {type_sql} IN ('array', 'object') THEN NULL ELSE {value_sql} END)"
        self.json_sql = json_sql

    def is_kind(self, kind: str) -> str:
        return f"coalesce({self.type_sql} = '{kind}', 0)"

    def number_of_text(self) -> str:
        return f"sb_number({self.value})"

    def json_equals(self, placeholder: str) -> str:
        return f"sb_json_equal({self.json_sql}, {placeholder})"


def sqlite_field(path: tuple[str, ...]) -> SQLiteSlot:
    """A field of the document, unqualified: SQLite refuses table names in index expressions."""
    p = sqlite_path(path)
    return SQLiteSlot(
        f"json_type({SQLITE_DOC}, {p})", f"json_extract({SQLITE_DOC}, {p})", f"json_extract({SQLITE_DOC}, {p})"
    )


class SQLiteCompiler(Compiler):
    """``?`` parameters; ``sb_number`` and ``sb_json_equal`` are registered on every connection
    (``register_functions``)."""

    def placeholder(self, value: Any, kind: str) -> str:
        value = without_nul(value)
        self.params.append(orjson.dumps(value).decode() if kind == "json" else value)
        return "?"

    def field(self, path: tuple[str, ...]) -> Slot:
        return sqlite_field(path)

    def any_element(self, path: tuple[str, ...], build: Any) -> str:
        p = sqlite_path(path)
        slot = SQLiteSlot("e.type", "e.value", "e.value")
        return (
            f"(json_type({SQLITE_DOC}, {p}) = 'array' AND EXISTS (SELECT 1 FROM json_each({SQLITE_DOC}, {p}) AS e "
            f"WHERE {build(slot)}))"
        )

    def negate(self, predicate: str) -> str:
        return f"NOT coalesce({predicate}, 0)"

    # Scan forms: the same rules with fewer JSON calls per row, for rows no index narrowed (an
    # index needs the rank and value expressions it was built on: ``branches``). json_extract
    # gives a number for a number, 1/0 for true/false, text for a string and JSON text (``[``,
    # ``{``) for an array or object; each value test comes first (it fails for most rows) and the
    # type test after it rules out the kinds that share its SQL type.
    scanning = True

    def branches(self, c: Clause) -> list[str] | None:
        self.scanning = False
        try:
            return super().branches(c)
        finally:
            self.scanning = True

    def clause(self, c: Clause) -> str:
        patterns = sqlite_prefilter(c) if self.scanning else None
        if patterns is None:
            return super().clause(c)
        # The marks come before the clause's: parameters in text order.
        first, *rest = [f"data GLOB {self.placeholder(p, 'text')}" for p in patterns]
        tests = [first, f"({' OR '.join(rest)})"] if rest else [first]
        return f"({' AND '.join(tests)} AND {super().clause(c)})"

    def number_branches(self, slot: Slot, op: str, number: int | float) -> list[str]:
        if not self.scanning or not isinstance(slot, SQLiteSlot):
            return super().number_branches(slot, op, number)
        x, t = slot.raw, slot.type_sql
        p = self.placeholder(number, "number")
        low = self.placeholder(self.TEXT_LOW, "text")
        high = self.placeholder(self.TEXT_HIGH, "text")
        q = self.placeholder(number, "number")
        return [
            f"{x} {op} {p} AND {t} IN ('integer', 'real')",
            f"{x} >= {low} AND {x} < {high} AND {t} = 'text' AND sb_number({x}) {op} {q}",
        ]

    def text_branches(self, slot: Slot, op: str, text: str) -> list[str]:
        if not self.scanning or not isinstance(slot, SQLiteSlot):
            return super().text_branches(slot, op, text)
        x, t = slot.raw, slot.type_sql
        number = numeric_value(text)
        numbers = (
            [] if number is None else [f"{x} {op} {self.placeholder(number, 'number')} AND {t} IN ('integer', 'real')"]
        )
        return [*numbers, f"{x} {op} {self.placeholder(text, 'text')} AND {t} = 'text'"]

    def equal_branches(self, slot: Slot, value: Any) -> list[str]:
        if not self.scanning or not isinstance(slot, SQLiteSlot):
            return super().equal_branches(slot, value)
        t = slot.type_sql
        if value is None:
            return [f"coalesce({t}, 'null') = 'null'"]
        if isinstance(value, bool):
            return [f"{t} = '{'true' if value else 'false'}'"]
        if isinstance(value, (list, dict)):
            kind = "array" if isinstance(value, list) else "object"
            return [f"{t} = '{kind}' AND {slot.json_equals(self.placeholder(value, 'json'))}"]
        return super().equal_branches(slot, value)  # numbers and strings: the methods above

    def where_indexed(self, clauses: list[Clause], indexes: dict[str, str], frame: str) -> str:
        """``where``, with the first clause an index can serve read through it: SQLite plans an
        OR of ranges as a scan, so that clause becomes ``rowid IN`` a UNION ALL of one
        sub-select per branch, each a range of the field's index (named, as SQLite may prefer a
        scope index that reads the whole scope). ``indexes`` maps indexed fields to the index of
        the scope; ``frame`` is the sub-selects' WHERE up to the clause (base, collection and
        scope, its parameters numbered)."""
        out = []
        for c in clauses:
            name = None if self.served else indexes.get(c.field)
            branches = None if name is None else self.branches(c)
            if branches:
                self.served = True
                subs = " UNION ALL ".join(
                    f'SELECT rowid FROM documents INDEXED BY "{name}" WHERE {frame} AND {b}' for b in branches
                )
                out.append(f" AND documents.rowid IN ({subs})")
            else:
                out.append(f" AND {self.clause(c)}")
        return "".join(out)

    def sort_keys(self, path: tuple[str, ...]) -> list[str]:
        slot = sqlite_field(path)
        return [slot.rank, slot.value]


def _glob_literal(text: str) -> str:
    """``text`` matched literally by GLOB."""
    return text.replace("[", "[[]").replace("*", "[*]").replace("?", "[?]")


def sqlite_prefilter(c: Clause) -> list[str] | None:
    """For an equality, GLOB patterns the stored JSON must match for the document to match:
    the field's key followed by the value as the store's JSON writer (orjson, compact) spells it
    (GLOB stops at the first match, far sooner than the JSON functions parse a document). The
    first pattern must match; then, when there are more, one of the others (tested only on the
    documents the first lets through). For a number, first its first character or a string's
    quote (a numeric string may match it), then the number itself ended as a member value ends
    or followed by a fraction (7 is also 7.0), or a string (0 is also -0.0). None when no such
    test is sure: nulls, floats, large integers (orjson writes those with exponents), numeric
    strings, arrays and objects, and strings holding U+0000 or U+FFFD (``without_nul``)."""
    if c.op not in ("==", "="):
        return None
    key = "*" + _glob_literal(orjson.dumps(c.path[-1]).decode()) + ":"
    value = c.value
    if isinstance(value, bool):
        return [key + ("true" if value else "false") + "*"]
    if isinstance(value, int):
        if abs(value) >= 10**15:
            return None
        first = str(value)[0]
        if value == 0:
            return [key + '[-0"]*', key + "0[,}.]*", key + "-0.0*", key + '"*']
        return [key + f'[{first}"]*', key + f"{value}[,}}.]*", key + '"*']
    if isinstance(value, str):
        if numeric_value(value) is not None or "\x00" in value or "\ufffd" in value:
            return None
        return [key + _glob_literal(orjson.dumps(value).decode()) + "*"]
    return None


def sqlite_number(value: Any) -> int | float | None:
    """``sb_number``: the number a numeric string stands for (see ``clauses.numeric_value``)."""
    return numeric_value(value)


def sqlite_json_equal(a: Any, b: Any) -> int:
    """``sb_json_equal``: two JSON texts hold equal values (``clauses.json_equal``)."""
    if not isinstance(a, str) or not isinstance(b, str):
        return 0
    try:
        return int(json_equal(orjson.loads(a), orjson.loads(b)))
    except orjson.JSONDecodeError:
        return 0


def register_functions(conn: Any) -> None:
    """Add the filter functions to a sqlite3 connection (deterministic, so usable anywhere)."""
    conn.create_function("sb_number", 1, sqlite_number, deterministic=True)
    conn.create_function("sb_json_equal", 2, sqlite_json_equal, deterministic=True)


# Index scopes: which rows a query reads decides the index that serves it.
SCOPES = {"o": "account_id, owner_id, ", "a": "account_id, ", "r": ""}


def sqlite_index_statements(base: str, col: str, field: str) -> list[str]:
    """The three indexes of a field (owner scope, account scope, every row), partial on the
    base and collection."""
    slot = sqlite_field(tuple(field.split(".")))
    where = f"base = {literal(base)} AND col = {literal(col)}"
    return [
        f'CREATE INDEX IF NOT EXISTS "{index_name(base, col, field, s)}" ON documents '
        f"({lead}{slot.rank}, {slot.value}, created, id) WHERE {where}"
        for s, lead in SCOPES.items()
    ]


# PostgreSQL


def _pg_array(path: tuple[str, ...]) -> str:
    """A text-array literal of path segments: ``'{"a","b"}'``."""
    return literal("{" + ",".join(f'"{p}"' for p in path) + "}")


def _pg_guarded(path: tuple[str, ...]) -> str:
    """``j #> '{a,b}'``; a numeric segment below the top reads NULL unless its parent is an
    object (PostgreSQL would index into an array; the evaluator only walks objects)."""
    whole = f"(j #> {_pg_array(path)})"
    guards = [
        f"jsonb_typeof(j #> {_pg_array(path[:i])}) = 'object'"
        for i, part in enumerate(path)
        if i and part.lstrip("-").isdigit()
    ]
    if not guards:
        return whole
    return f"(CASE WHEN {' AND '.join(guards)} THEN {whole} END)"


_PG_NUMERIC_RE = literal("^[ \\t\\n\\r\\f\\v]*-?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]{1,3})?[ \\t\\n\\r\\f\\v]*$")
_PG_SPACE = " || ".join(f"chr({ord(c)})" for c in NUMERIC_SPACE)


class PostgresSlot(Slot):
    def __init__(self, x: str) -> None:
        t = f"jsonb_typeof({x})"
        self.x = x
        self.type_sql = t
        self.rank = (
            f"(CASE {t} WHEN 'number' THEN 1 WHEN 'string' THEN 2 WHEN 'boolean' THEN 3 "
            "WHEN 'array' THEN 4 WHEN 'object' THEN 4 ELSE 0 END)"
        )
        self.number = (
            f"(CASE {t} WHEN 'number' THEN ({x})::numeric WHEN 'boolean' THEN ({x})::boolean::int::numeric END)"
        )
        self.text = f"((CASE WHEN {t} = 'string' THEN {x} #>> '{{}}' END) COLLATE \"C\")"
        self.value = self.number  # numbers and booleans; strings compare through ``text``

    def is_kind(self, kind: str) -> str:
        return f"coalesce({self.type_sql} = '{kind}', false)"

    def number_of_text(self) -> str:
        return f"(CASE WHEN {self.text} ~ {_PG_NUMERIC_RE} THEN btrim({self.text}, {_PG_SPACE})::numeric END)"

    def json_equals(self, placeholder: str) -> str:
        return f"({self.x} = {placeholder})"


class PostgresCompiler(Compiler):
    """``$n`` parameters numbered from ``first_param``; documents read through the stored
    ``jsonb`` column ``j`` (generated from ``data`` by ``sb.doc_json``). ``indexed``: the fields
    with an index, whose clauses are left as the index's expressions (no prefilter)."""

    def __init__(self, first_param: int = 1, indexed: frozenset[str] = frozenset()) -> None:
        super().__init__(first_param)
        self.indexed = indexed

    def placeholder(self, value: Any, kind: str) -> str:
        if kind == "number":
            self.params.append(value if isinstance(value, int) else Decimal(repr(value)))
            cast = "numeric"
        elif kind == "json":
            self.params.append(orjson.dumps(without_nul(value)).decode())
            cast = "jsonb"
        else:
            self.params.append(without_nul(value))
            cast = "text"
        return f"${self.first_param + len(self.params) - 1}::{cast}"

    def field(self, path: tuple[str, ...]) -> Slot:
        return PostgresSlot(_pg_guarded(path))

    def any_element(self, path: tuple[str, ...], build: Any) -> str:
        x = _pg_guarded(path)
        slot = PostgresSlot("e.v")
        return (
            f"EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof({x}) = 'array' THEN {x} END) AS e(v) "
            f"WHERE {build(slot)})"
        )

    def negate(self, predicate: str) -> str:
        return f"NOT coalesce({predicate}, false)"

    def clause(self, c: Clause) -> str:
        """An equality with a value ``pg_prefilter`` accepts first asks whether the document
        contains the field with that value (one ``@>`` per row, where the branches read the
        field several times); the branch for numeric strings keeps its own type test first."""
        contained = None if c.field in self.indexed else pg_prefilter(c)
        if contained is None:
            return super().clause(c)
        first, *rest = self.equal_branches(self.field(c.path), c.value)
        return self.any_of([f"j @> {self.placeholder(contained, 'json')} AND {first}", *rest])

    def text_branches(self, slot: Slot, op: str, text: str) -> list[str]:
        assert isinstance(slot, PostgresSlot)
        number = numeric_value(text)
        numbers = (
            [] if number is None else [f"{slot.is_rank(1)} AND {slot.number} {op} {self.placeholder(number, 'number')}"]
        )
        return [*numbers, f"{slot.is_rank(2)} AND {slot.text} {op} {self.placeholder(text, 'text')}"]

    def number_branches(self, slot: Slot, op: str, number: int | float) -> list[str]:
        assert isinstance(slot, PostgresSlot)
        p = self.placeholder(number, "number")
        low = self.placeholder(self.TEXT_LOW, "text")
        high = self.placeholder(self.TEXT_HIGH, "text")
        return [
            f"{slot.is_rank(1)} AND {slot.number} {op} {p}",
            f"{slot.is_rank(2)} AND {slot.text} >= {low} AND {slot.text} < {high} AND {slot.number_of_text()} {op} {p}",
        ]

    def sort_keys(self, path: tuple[str, ...]) -> list[str]:
        slot = PostgresSlot(_pg_guarded(path))
        return [slot.rank, slot.number, slot.text]


def pg_prefilter(c: Clause) -> dict[str, Any] | None:
    """For an equality, a JSON object every matching document contains (``j @> it``): the field
    with the value, nested as the path says. jsonb containment compares numbers numerically and
    strings exactly, as the branches do, so it never drops a match; the first branch still
    decides. None when no such object is sure: nulls (a missing field matches them), floats,
    numeric strings (a number matches them), arrays and objects (containment is looser), and
    strings holding U+0000 or U+FFFD (``without_nul``)."""
    if c.op not in ("==", "="):
        return None
    value = c.value
    if isinstance(value, bool) or (isinstance(value, int) and abs(value) < 10**15):
        pass
    elif isinstance(value, str):
        if numeric_value(value) is not None or "\x00" in value or "\ufffd" in value:
            return None
    else:
        return None
    contained: Any = value
    for part in reversed(c.path):
        contained = {part: contained}
    found: dict[str, Any] = contained
    return found


def pg_statistics_statement(schema: str, field: str) -> str:
    """Extended statistics on the expressions a field's indexes are built on (PostgreSQL 14
    and later), one object per field for every collection of the base's schema. PostgreSQL
    ignores what ANALYZE gathers on the expressions of a partial index: without these, it
    guesses each expression's selectivity and may read a wider scope's index, then filter out
    every other user's matches."""
    slot = PostgresSlot(_pg_guarded(tuple(field.split("."))))
    digest = hashlib.sha1(field.encode()).hexdigest()[:20]
    return (
        f'CREATE STATISTICS IF NOT EXISTS {schema}."docstat_{digest}" '
        f"ON {slot.rank}, {slot.number}, {slot.text} FROM {schema}.documents"
    )


def pg_index_statements(schema: str, col: str, field: str, base: str) -> list[str]:
    """The three indexes of a field (owner scope, account scope, every row), partial on the
    collection; ``schema`` is the base's quoted schema."""
    slot = PostgresSlot(_pg_guarded(tuple(field.split("."))))
    return [
        f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{index_name(base, col, field, s)}" ON {schema}.documents '
        f"({lead}{slot.rank}, {slot.number}, {slot.text}, created, id) WHERE col = {literal(col)}"
        for s, lead in SCOPES.items()
    ]
