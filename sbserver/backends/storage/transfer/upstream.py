"""An upstream StaticBackend PostgreSQL database read as transfer records.

Upstream keeps the installation in schema ``sb`` (``sb.customers``: the tenants; ``sb.apps``:
the bases, the public key being the row's UUID) and each base in a schema named after it:
``sb_accounts``, ``sb_tokens`` (users, with bcrypt password hashes), ``sb_forms``, ``sb_files``,
``sb_functions``, ``sb_function_logs``, ``sb_tasks``, and one table per collection (``id``,
``account_id``, ``owner_id``, ``data`` jsonb, ``created``). Everything is read in one
``REPEATABLE READ READ ONLY`` transaction. Tables an older upstream lacks read as empty, and
columns it lacks take the defaults upstream has since given them.

What does not come over: uploaded files' bytes (they live in upstream's file storage: the
``file`` records keep their keys and URLs), the full-text index (upstream keeps it in a file of
its own), and the encrypted OAuth settings (sealed with upstream's key, in another format).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from sbserver.backends.storage.transfer.base import BATCH, Source
from sbserver.backends.storage.transfer.postgresql import Snapshot
from sbserver.backends.storage.transfer.records import BY_NAME, TransferError

ZERO_TIME = "0001-01-01T00:00:00Z"
# Collections: every table of a base's schema but upstream's own.
_SYSTEM = ("sb_accounts", "sb_tokens", "sb_forms", "sb_files", "sb_functions", "sb_function_logs", "sb_tasks")


def _iso(value: Any) -> str:
    """A timestamp as sbserver stores it (RFC 3339 UTC with microseconds); Go's zero time as is."""
    if value is None:
        return ZERO_TIME
    if not isinstance(value, datetime):
        return str(value)
    if value.year <= 1:
        return ZERO_TIME
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


class UpstreamSource(Snapshot, Source):
    """Records of an upstream database. ``perm_of(collection)`` gives a collection's permission
    digits; ``schedule(interval, now)`` a task's next run (None: the interval is not valid here,
    the task comes over disabled)."""

    def __init__(
        self, dsn: str, perm_of: Callable[[str], str], schedule: Callable[[str, float], float | None], now: float
    ) -> None:
        self.dsn = dsn
        self.perm_of = perm_of
        self.schedule = schedule
        self.now = now
        self._columns: dict[tuple[str, str], set[str]] = {}  # (schema, table) -> columns
        self._physical: dict[str, str] = {}  # app name -> its schema

    async def open(self) -> None:
        conn = await self._open_snapshot(self.dsn)
        try:
            for schema, table, column in await conn.fetch(
                "SELECT table_schema, table_name, column_name FROM information_schema.columns"
            ):
                self._columns.setdefault((schema, table), set()).add(column)
        except BaseException:
            await conn.close()
            raise
        if ("sb", "customers") not in self._columns or ("sb", "apps") not in self._columns:
            await conn.close()
            raise TransferError("not an upstream StaticBackend database: no sb.customers and sb.apps tables")
        self._conn = conn

    def _has(self, schema: str, table: str, column: str = "") -> bool:
        cols = self._columns.get((schema, table))
        return cols is not None and (not column or column in cols)

    async def _apps(self, app: str | None) -> list[asyncpg.Record]:
        rows = await self._c().fetch('SELECT * FROM sb.apps ORDER BY name COLLATE "C"')
        if app is not None:
            rows = [r for r in rows if str(r["id"]) == app]
            if not rows:
                raise TransferError(f"no app with public key {app!r} in the upstream database")
        for r in rows:
            # Upstream creates schemas unquoted, so PostgreSQL folds their names to lower case.
            self._physical[r["name"]] = r["name"] if (r["name"], "sb_tokens") in self._columns else r["name"].lower()
            if (self._physical[r["name"]], "sb_tokens") not in self._columns:
                raise TransferError(f"upstream app {r['name']} has no schema with an sb_tokens table")
        return rows

    def _collections(self, schema: str) -> list[str]:
        return sorted(t for s, t in self._columns if s == schema and not t.startswith("sb_") and t not in _SYSTEM)

    async def _fetch(self, sql: str, *args: Any) -> AsyncIterator[list[asyncpg.Record]]:
        cursor = await self._c().cursor(sql, *args)
        while rows := await cursor.fetch(BATCH):
            yield rows

    async def counts(self, app: str | None = None) -> dict[str, int]:
        counts = dict.fromkeys(BY_NAME, 0)
        async for batch in self.records(app):
            counts[batch[0]["kind"]] += len(batch)
        return counts

    async def records(self, app: str | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        apps = await self._apps(app)
        tenants = sorted({str(a["customer_id"]) for a in apps})
        rows = await self._c().fetch('SELECT * FROM sb.customers WHERE id::text = ANY($1) ORDER BY id::text COLLATE "C"', tenants)  # fmt: skip
        if rows:
            yield [
                {
                    "kind": "tenant",
                    "id": str(r["id"]),
                    "email": r["email"].lower(),
                    "plan": int(r["plan"]) if "plan" in r else 1,
                    "active": bool(r["is_active"]),
                    "created": _iso(r["created"]),
                }
                for r in rows
            ]
        if apps:
            yield [
                {
                    "kind": "base",
                    "pk": str(a["id"]),
                    "name": a["name"],
                    "tenant_id": str(a["customer_id"]),
                    "whitelist": list(a["allowed_domain"] or ["localhost"]),
                    "active": bool(a["is_active"]),
                    "email_count": int(a["monthly_email_sent"] or 0),
                    "created": _iso(a["created"]),
                }
                for a in apps
            ]
        for a in apps:
            async for batch in self._base(a["name"], _iso(a["created"])):
                yield batch
        for a in apps:
            async for batch in self._tasks(a["name"]):
                yield batch

    async def _base(self, s: str, created: str) -> AsyncIterator[list[dict[str, Any]]]:
        p = self._physical[s]
        q = f'"{p}"'  # the schema name comes from the database itself (the sink checks the app name)
        async for rows in self._fetch(f'SELECT * FROM {q}.sb_accounts ORDER BY id::text COLLATE "C"'):
            yield [{"kind": "account", "base": s, "id": str(r["id"]), "email": r["email"].lower(), "created": _iso(r["created"])} for r in rows]  # fmt: skip
        async for rows in self._fetch(f'SELECT * FROM {q}.sb_tokens ORDER BY id::text COLLATE "C"'):
            yield [
                {
                    "kind": "user",
                    "base": s,
                    "id": str(r["id"]),
                    "account_id": str(r["account_id"]),
                    "email": r["email"].lower(),
                    "password": r["password"],
                    "token": r["token"],
                    "role": int(r["role"]),
                    "reset_code": r["reset_code"] or "",
                    "created": _iso(r["created"]),
                }
                for r in rows
            ]
        cols = self._collections(p)
        first: dict[str, str] = {}
        for col in cols:
            first[col] = _iso(await self._c().fetchval(f'SELECT MIN(created) FROM {q}."{col}"'))
        if cols:
            yield [
                {
                    "kind": "collection",
                    "base": s,
                    "name": c,
                    "perm": self.perm_of(c),
                    "created": first[c] if first[c] != ZERO_TIME else created,
                }
                for c in cols
            ]
        for col in cols:
            async for rows in self._fetch(f'SELECT * FROM {q}."{col}" ORDER BY id::text COLLATE "C"'):
                yield [
                    {
                        "kind": "document",
                        "base": s,
                        "col": col,
                        "id": str(r["id"]),
                        "account_id": str(r["account_id"]),
                        "owner_id": str(r["owner_id"]),
                        "created": _iso(r["created"]),
                        "data": _json(r["data"]),
                    }
                    for r in rows
                ]
        if self._has(p, "sb_forms"):
            async for rows in self._fetch(f"SELECT * FROM {q}.sb_forms ORDER BY created, id"):
                yield [{"kind": "form", "base": s, "form": r["name"], "data": _json(r["data"]), "created": _iso(r["created"])} for r in rows]  # fmt: skip
        if self._has(p, "sb_functions"):
            async for rows in self._fetch(f'SELECT * FROM {q}.sb_functions ORDER BY id::text COLLATE "C"'):
                yield [
                    {
                        "kind": "function",
                        "base": s,
                        "id": str(r["id"]),
                        "name": r["function_name"],
                        "trigger": r["trigger_topic"],
                        "code": r["code"],
                        "version": int(r["version"]),
                        "last_updated": _iso(r["last_updated"]),
                        "last_run": _iso(r["last_run"]),
                        "secrets": "",
                    }
                    for r in rows
                ]
        if self._has(p, "sb_function_logs"):
            async for rows in self._fetch(f"SELECT * FROM {q}.sb_function_logs ORDER BY started, id"):
                yield [
                    {
                        "kind": "function_run",
                        "base": s,
                        "id": str(r["id"]),
                        "function_id": str(r["function_id"]),
                        "version": int(r["version"]),
                        "started": _iso(r["started"]),
                        "completed": _iso(r["completed"]),
                        "success": bool(r["success"]),
                        "output": list(r["output"] or []),
                        "input": "",
                    }
                    for r in rows
                ]
        if self._has(p, "sb_files"):
            async for rows in self._fetch(f'SELECT * FROM {q}.sb_files ORDER BY id::text COLLATE "C"'):
                yield [
                    {
                        "kind": "file",
                        "base": s,
                        "id": str(r["id"]),
                        "account_id": str(r["account_id"]),
                        "name": r["key"].rsplit("/", 1)[-1],
                        "key": r["key"],
                        "url": r["url"],
                        "size": int(r["size"]),
                        "uploaded": _iso(r["uploaded"]),
                    }
                    for r in rows
                ]

    async def _tasks(self, s: str) -> AsyncIterator[list[dict[str, Any]]]:
        p = self._physical[s]
        if not self._has(p, "sb_tasks"):
            return
        async for rows in self._fetch(f'SELECT * FROM "{p}".sb_tasks ORDER BY id::text COLLATE "C"'):
            batch = []
            for r in rows:
                nxt = self.schedule(r["interval"], self.now)
                batch.append(
                    {
                        "kind": "task",
                        "id": str(r["id"]),
                        "base": s,
                        "name": r["name"],
                        "type": r["type"],
                        "value": r["value"],
                        "meta": r["meta"],
                        "interval": r["interval"],
                        "timezone": "UTC",
                        "enabled": nxt is not None,
                        "last": _iso(r["last_run"]),
                        "next_run": float(nxt or 0.0),
                        "anchor": float(self.now),
                        "running_until": 0.0,
                    }
                )
            yield batch
