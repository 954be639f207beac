"""Reading and writing transfer records in an SQLite store file.

The source reads in one read transaction (WAL: a snapshot that writers running meanwhile do not
disturb). The sink writes in one ``BEGIN IMMEDIATE`` transaction beside a server that may be
running on the same file (its writer waits, up to ``BUSY_MS``), and builds the field indexes in
that same transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from sbserver.backends.storage.documents.filters import nul_free_json, sqlite_index_statements
from sbserver.backends.storage.sqlite_writer import connect
from sbserver.backends.storage.transfer.base import BATCH, Sink, TableSource
from sbserver.backends.storage.transfer.records import BY_NAME, KINDS, Kind, TransferError, to_row

BUSY_MS = 30_000
MAGIC = b"SQLite format 3\x00"


def is_sqlite_file(path: Path) -> bool:
    """True when ``path`` starts with the SQLite file header."""
    try:
        with path.open("rb") as f:
            return f.read(16) == MAGIC
    except OSError:
        return False


def _select(kind: Kind, cols: str = "") -> str:
    cols = cols or ", ".join(kind.fields)
    return f"SELECT {cols} FROM {kind.table}"


class SQLiteSource(TableSource):
    """Records of an SQLite store file, read in one snapshot."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        if not is_sqlite_file(self.path):
            raise TransferError(f"{self.path} is not an sbserver SQLite database (no such file, or another format)")
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
        try:
            conn.execute("BEGIN")
            conn.execute("SELECT COUNT(*) FROM tenants").fetchone()  # the snapshot starts here
        except sqlite3.Error as exc:
            conn.close()
            raise TransferError(f"cannot read {self.path}: {exc}") from exc
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _c(self) -> sqlite3.Connection:
        assert self._conn is not None, "source is not open"
        return self._conn

    def _tables(self) -> set[str]:
        return {r[0] for r in self._c().execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    async def _bases(self) -> list[tuple[str, str, str]]:
        return [tuple(r) for r in self._c().execute("SELECT pk, name, tenant_id FROM bases ORDER BY name")]

    def _query(self, kind: Kind, base: str | None, where: str, param: Any, cols: str = "") -> tuple[str, list[Any]]:
        sql, params = _select(kind, cols), []
        if kind.per_base:
            sql, params = sql + " WHERE base = ?", [base]
        elif where:
            sql, params = sql + " WHERE " + where.format(p="?", sb=""), [param]
        return sql, params

    async def _rows(self, kind: Kind, base: str | None, where: str, param: Any) -> AsyncIterator[list[Sequence[Any]]]:
        sql, params = self._query(kind, base, where, param)
        cur = self._c().execute(f"{sql} ORDER BY {', '.join(kind.order)}", params)
        while rows := cur.fetchmany(BATCH):
            if kind.name == "base":  # kept "|"-joined; a list in records
                rows = [(*r[:3], r[3].split("|") if r[3] else [], *r[4:]) for r in rows]
            yield rows

    async def _count(self, kind: Kind, base: str | None, where: str, param: Any) -> int:
        sql, params = self._query(kind, base, where, param, "COUNT(*)")
        return int(self._c().execute(sql, params).fetchone()[0])


class SQLiteSink(Sink):
    """Writes records into an SQLite store file (created, with its tables, when absent)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        from sbserver.backends.storage.sqlite import SQLiteStore  # applies the migrations

        store = SQLiteStore(self.path, writer="thread")
        await store.open()
        await store.close()
        self._conn = connect(self.path)
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_MS}")

    async def close(self) -> None:
        if self._conn is not None:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            self._conn.close()
            self._conn = None

    def _c(self) -> sqlite3.Connection:
        assert self._conn is not None, "sink is not open"
        return self._conn

    async def is_empty(self) -> bool:
        c = self._c()
        return c.execute("SELECT (SELECT COUNT(*) FROM tenants) + (SELECT COUNT(*) FROM bases)").fetchone()[0] == 0

    async def begin(self, wipe: bool = False) -> None:
        c = self._c()
        c.execute("BEGIN IMMEDIATE")
        if wipe:
            for name, sql in c.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'").fetchall():
                if name.startswith("docidx_") and sql:
                    c.execute(f'DROP INDEX "{name}"')
            for kind in KINDS:
                c.execute(f"DELETE FROM {kind.table}")

    async def write(self, kind: Kind, records: Sequence[dict[str, Any]]) -> None:
        c = self._c()
        cols = ["base", *kind.fields] if kind.per_base else list(kind.fields)
        rows = []
        for rec in records:
            row = to_row(kind, rec)
            if kind.name == "base":
                row[3] = "|".join(row[3])
            rows.append([rec["base"], *row] if kind.per_base else row)
        if kind.name == "document":
            cols.append("safe")
            rows = [[*r, nul_free_json(r[6], rec["data"])] for r, rec in zip(rows, records, strict=True)]
        sql = f"INSERT INTO {kind.table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        try:
            if kind.name == "tenant":
                self._tenants(c, records, sql)
                return
            c.executemany(sql, rows)
            if kind.name == "doc_index":
                for rec in records:
                    for statement in sqlite_index_statements(rec["base"], rec["col"], rec["field"]):
                        c.execute(statement)
        except sqlite3.IntegrityError as exc:
            raise TransferError(
                f"a {kind.name} record already exists in the target ({exc}): nothing was written"
            ) from exc
        except sqlite3.Error as exc:
            raise TransferError(f"cannot write {kind.name} records: {exc}") from exc

    @staticmethod
    def _tenants(c: sqlite3.Connection, records: Sequence[dict[str, Any]], sql: str) -> None:
        """A tenant already there with the same id and email is kept (an app of it is imported)."""
        for rec in records:
            row = c.execute("SELECT email FROM tenants WHERE id = ?", (rec["id"],)).fetchone()
            if row is None:
                c.execute(sql, to_row(BY_NAME["tenant"], rec))
            elif row[0] != rec["email"]:
                raise TransferError(
                    f"tenant {rec['id']} exists in the target with another email ({row[0]}): nothing was written"
                )

    async def commit(self) -> None:
        self._c().execute("COMMIT")

    async def rollback(self) -> None:
        c = self._c()
        if c.in_transaction:
            c.execute("ROLLBACK")
