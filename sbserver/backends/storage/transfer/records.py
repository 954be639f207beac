"""The kinds of records an installation is made of, per store domain, and the stream format.

A record is a flat JSON object: ``{"kind": "<kind>", ...fields}``; records of a base's own tables
also carry ``"base"`` (the base name). Both stores dump every kind with the same field values
(booleans as booleans, whitelists as lists, documents' and forms' data as JSON), in the same
order (each kind by its key, bytewise; sequence-ordered kinds in insertion order), so two dumps of
the same data are equal record for record, and their checksums too.

What is not a record: derived columns (SQLite's ``documents.safe``, PostgreSQL's ``j`` and
``tsv``, which each store computes), the physical indexes behind ``doc_index`` (rebuilt from it),
and the migration bookkeeping.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

FORMAT = "sbserver-export"
VERSION = 1
FILE_DATA = "file_data"  # an uploaded file's bytes (base64), after its ``file`` record (--with-files)


class TransferError(Exception):
    """A transfer refused or failed; the message is one line that says why and what to do."""


@dataclass(frozen=True)
class Kind:
    """One kind of record: its table in both stores and how its columns become JSON."""

    name: str
    domain: str  # the store domain that owns the table (storage/<domain>/)
    table: str  # SQLite table; PostgreSQL: ``sb.<table>`` or ``<base schema>.<table>``
    fields: tuple[str, ...]
    order: tuple[str, ...]  # "seq": insertion order
    per_base: bool = False  # a table of the base's own (SQLite: filtered by its ``base`` column)
    bools: tuple[str, ...] = ()
    floats: tuple[str, ...] = ()
    json: tuple[str, ...] = ()  # text columns holding orjson text, exported as JSON values
    key: tuple[str, ...] = field(default=())  # what identifies a record in an error message
    # Fields added after the format was first written: a record from an older export may lack
    # them, and reads as having these values.
    optional: tuple[tuple[str, Any], ...] = ()


# Load order: a base before anything of it.
KINDS: tuple[Kind, ...] = (
    Kind("tenant", "accounts", "tenants", ("id", "email", "plan", "active", "created"), ("id",), bools=("active",)),
    Kind(
        "base",
        "accounts",
        "bases",
        ("pk", "name", "tenant_id", "whitelist", "active", "email_count", "created"),
        ("pk",),
        bools=("active",),
    ),
    Kind("account", "accounts", "accounts", ("id", "email", "created"), ("id",), per_base=True),
    Kind(
        "user",
        "accounts",
        "users",
        ("id", "account_id", "email", "password", "token", "role", "reset_code", "created"),
        ("id",),
        per_base=True,
    ),
    Kind("collection", "documents", "collections", ("name", "perm", "created"), ("name",), per_base=True),
    Kind(
        "document",
        "documents",
        "documents",
        ("col", "id", "account_id", "owner_id", "created", "data"),
        ("col", "id"),
        per_base=True,
        json=("data",),
    ),
    Kind("doc_index", "documents", "doc_indexes", ("col", "field"), ("col", "field"), per_base=True),
    Kind("search_entry", "search", "fts", ("col", "doc_id", "body"), ("col", "doc_id"), per_base=True),
    Kind("search_term", "search", "fts_terms", ("col", "term"), ("col", "term"), per_base=True),
    Kind("form", "forms", "forms", ("form", "data", "created"), ("seq",), per_base=True, json=("data",)),
    Kind(
        "function",
        "functions",
        "functions",
        ("id", "name", "trigger", "code", "version", "last_updated", "last_run", "secrets"),
        ("id",),
        per_base=True,
    ),
    Kind(
        "function_run",
        "functions",
        "function_runs",
        ("id", "function_id", "version", "started", "completed", "success", "output", "input"),
        ("seq",),
        per_base=True,
        bools=("success",),
        json=("output",),
        optional=(("input", ""),),  # a failed run's kept input (for a retry), since 2026-12-03
    ),
    Kind(
        "file", "files", "files", ("id", "account_id", "name", "key", "url", "size", "uploaded"), ("id",), per_base=True
    ),
    Kind(
        "oauth_provider",
        "oauth",
        "oauth_providers",
        ("provider", "client_id", "client_secret", "options", "updated"),
        ("provider",),
        per_base=True,
    ),
    Kind("fn_limits", "functions", "fn_limits", ("base", "limits"), ("base",)),
    Kind(
        "fn_job",
        "functions",
        "fn_jobs",
        ("id", "base", "function_id", "payload", "created", "owner", "lease_until", "attempts"),
        ("id",),
        floats=("lease_until",),
    ),
    Kind("mail_count", "accounts", "mail_counts", ("base", "month", "sent"), ("base", "month")),
    Kind(
        "task",
        "tasks",
        "tasks",
        (
            "id",
            "base",
            "name",
            "type",
            "value",
            "meta",
            "interval",
            "timezone",
            "enabled",
            "last",
            "next_run",
            "anchor",
            "running_until",
        ),
        ("id",),
        bools=("enabled",),
        floats=("next_run", "anchor", "running_until"),
    ),
    Kind(
        "task_run",
        "tasks",
        "task_runs",
        ("id", "task_id", "due", "started", "completed", "outcome", "error", "output"),
        ("seq",),
        floats=("due",),
    ),
)
BY_NAME: dict[str, Kind] = {k.name: k for k in KINDS}
SYSTEM_KINDS = tuple(k for k in KINDS if not k.per_base)
BASE_KINDS = tuple(k for k in KINDS if k.per_base)
# Tables that hold no records of their own (bookkeeping, or what each store derives).
NOT_RECORDS = frozenset({"sb_migrations", "migrations", "sqlite_sequence"})


def record_fields(kind: Kind) -> tuple[str, ...]:
    """The fields of a record of ``kind``, ``kind`` and ``base`` included, in stream order."""
    return ("kind", "base", *kind.fields) if kind.per_base else ("kind", *kind.fields)


def _converters(kind: Kind) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    out: list[tuple[str, Callable[[Any], Any]]] = []
    for name in kind.fields:
        if name in kind.bools:
            out.append((name, bool))
        elif name in kind.floats:
            out.append((name, float))
        elif name in kind.json:
            out.append((name, orjson.loads))
    return tuple(out)


# Per kind: the fields whose column value needs converting (a million documents go through here,
# so the per-field decisions are made once).
_FROM: dict[str, tuple[tuple[str, Callable[[Any], Any]], ...]] = {k.name: _converters(k) for k in KINDS}
_VALUES = {k.name: operator.itemgetter(*k.fields) for k in KINDS}
_JSON_AT = {k.name: tuple(i for i, f in enumerate(k.fields) if f in k.json) for k in KINDS}


def from_rows(kind: Kind, rows: Iterable[Iterable[Any]], base: str | None = None) -> list[dict[str, Any]]:
    """Records from rows of ``kind.fields`` as either store returns them."""
    names = record_fields(kind)
    head = (kind.name, base) if kind.per_base else (kind.name,)
    out = [dict(zip(names, (*head, *row), strict=True)) for row in rows]
    for name, convert in _FROM[kind.name]:
        for rec in out:
            rec[name] = convert(rec[name])
    return out


def from_row(kind: Kind, row: Iterable[Any], base: str | None = None) -> dict[str, Any]:
    """A record from a row of ``kind.fields`` as either store returns it."""
    return from_rows(kind, [row], base)[0]


def to_row(kind: Kind, rec: dict[str, Any]) -> list[Any]:
    """The column values of a record (JSON fields back to the orjson text the stores keep)."""
    values = _VALUES[kind.name](rec)
    row = list(values) if len(kind.fields) > 1 else [values]
    for i in _JSON_AT[kind.name]:
        row[i] = orjson.dumps(row[i]).decode()
    return row


def check_record(rec: Any, line: int) -> Kind:
    """The kind of a record read from a stream, its fields checked; ``TransferError`` otherwise."""
    if not isinstance(rec, dict) or not isinstance(rec.get("kind"), str):
        raise TransferError(f'line {line}: expected a JSON object with a "kind" field')
    kind = BY_NAME.get(rec["kind"])
    if kind is None:
        raise TransferError(f"line {line}: unknown record kind {rec['kind'][:40]!r}")
    for name, default in kind.optional:
        rec.setdefault(name, default)
    expected = set(record_fields(kind))
    if set(rec) != expected:
        missing, extra = sorted(expected - set(rec)), sorted(set(rec) - expected)
        raise TransferError(f"line {line}: {kind.name} record has missing fields {missing} or unknown fields {extra}")
    for name in kind.fields:
        value = rec[name]
        if name in kind.json:
            continue
        if name in kind.bools:
            ok = isinstance(value, bool)
        elif name in kind.floats:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif name == "whitelist":
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        elif name in ("plan", "email_count", "role", "version", "size", "sent", "attempts"):
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise TransferError(f"line {line}: {kind.name} record: field {name!r} has the wrong type")
    if kind.per_base and not isinstance(rec["base"], str):
        raise TransferError(f"line {line}: {kind.name} record: field 'base' must be a string")
    return kind


_CANONICAL_NL = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


def canonical(rec: dict[str, Any]) -> bytes:
    """The bytes a record is checksummed by: its JSON with sorted keys."""
    return orjson.dumps(rec, option=orjson.OPT_SORT_KEYS)


class Summary:
    """Counts and checksums of a record stream, per kind and per collection of documents.

    Each checksum is a SHA-256 over the canonical JSON of the records in stream order (both
    stores stream in the same order), so any lost, added, changed or reordered record shows."""

    def __init__(self) -> None:
        self._parts: dict[str, list[Any]] = {}  # key -> [count, sha256]

    def add(self, rec: dict[str, Any]) -> None:
        self.add_all((rec,))

    def add_all(self, records: Iterable[dict[str, Any]]) -> None:
        parts = self._parts
        for rec in records:
            data = orjson.dumps(rec, option=_CANONICAL_NL)  # canonical(rec) + b"\n"
            kind = rec["kind"]
            part = parts.get(kind) or parts.setdefault(kind, [0, hashlib.sha256()])
            part[0] += 1
            part[1].update(data)
            if kind == "document":
                key = f"document {rec['base']}/{rec['col']}"
                part = parts.get(key) or parts.setdefault(key, [0, hashlib.sha256()])
                part[0] += 1
                part[1].update(data)

    def table(self) -> dict[str, tuple[int, str]]:
        """Key (kind, or ``document <base>/<collection>``) -> (count, hex checksum), sorted."""
        return {k: (n, h.hexdigest()) for k, (n, h) in sorted(self._parts.items())}


__all__ = [
    "BASE_KINDS",
    "BY_NAME",
    "FILE_DATA",
    "FORMAT",
    "KINDS",
    "NOT_RECORDS",
    "SYSTEM_KINDS",
    "VERSION",
    "Kind",
    "Summary",
    "TransferError",
    "canonical",
    "check_record",
    "from_row",
    "from_rows",
    "record_fields",
    "to_row",
]
