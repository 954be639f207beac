"""Backups and moving data: export, import, restore, migrate, and bringing an upstream
StaticBackend database over. The records and both ends live in ``backends/storage/transfer``;
this module runs a transfer from one end to the other and checks it.

Every load is one transaction on the target: on any error (a conflict, a truncated file, a
database refusal) nothing stays written, and file bytes already stored for it are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import sqlite3
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sbserver.backends.files.base import FileProvider
from sbserver.backends.storage.transfer.base import Sink, Source
from sbserver.backends.storage.transfer.jsonl import JsonlWriter
from sbserver.backends.storage.transfer.records import BY_NAME, FILE_DATA, Summary, TransferError
from sbserver.backends.storage.transfer.sqlite import BUSY_MS, is_sqlite_file
from sbserver.backends.storage.transfer.upstream import UpstreamSource
from sbserver.ids import now_iso
from sbserver.services.permissions import permission_of
from sbserver.services.schedule import parse

Advance = Callable[[int], None]  # called with the number of records (or pages) just done
BACKUP_PAGES = 1024  # pages copied per step of an SQLite backup
AHEAD = 2  # batches read ahead of the one being written


def _quiet(n: int) -> None:
    pass


@dataclass
class Loaded:
    summary: Summary  # of the records written
    files: int  # file contents stored


async def export(
    source: Source, out: Path, *, kind: str, app: str | None = None, files: FileProvider | None = None,
    advance: Advance = _quiet,
) -> Summary:  # fmt: skip
    """Write ``source`` (one snapshot) to ``out`` as JSON Lines; with ``files``, each file's
    bytes follow its record. ``out`` appears only once complete."""
    if out.exists():
        raise TransferError(f"{out} already exists: remove it or choose another --out")
    summary = Summary()
    writer = JsonlWriter(out)
    try:
        counts = await source.counts(app)
        writer.open({"created": now_iso(), "source": kind, "app": app, "files": files is not None, "counts": counts})
        async for batch in source.records(app):
            writer.write(batch)
            summary.add_all(batch)
            if files is not None and batch[0]["kind"] == "file":
                for rec in batch:
                    writer.write_file(rec["base"], rec["key"], await _read(files, rec["key"]))
            advance(len(batch))
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    return summary


async def _read(files: FileProvider, key: str) -> bytes:
    if await files.stat(key) is None:
        raise TransferError(f"the bytes of file {key} are missing from the file storage: export without --with-files")
    return b"".join([chunk async for chunk in files.get(key)])


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _summing(summary: Summary) -> Callable[[list[dict[str, Any]]], None]:
    def add(batch: list[dict[str, Any]]) -> None:
        if batch[0]["kind"] != FILE_DATA:
            summary.add_all(batch)

    return add


async def _ahead(
    batches: AsyncIterator[list[dict[str, Any]]], each: Callable[[list[dict[str, Any]]], None]
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """The batches of ``batches``, each passed to ``each`` first, read up to ``AHEAD`` batches
    ahead in a task of their own: the source is read, its rows turned into records and
    checksummed while the target's database works on the batch before (a migration costs the
    larger of the two, not their sum)."""
    queue: asyncio.Queue[list[dict[str, Any]] | Exception | None] = asyncio.Queue(AHEAD)

    async def pump() -> None:
        try:
            async for batch in batches:
                each(batch)
                await queue.put(batch)
        except Exception as exc:  # handed to the reader, which raises it
            await queue.put(exc)
        else:
            await queue.put(None)
        finally:
            if isinstance(batches, AsyncGenerator):
                await batches.aclose()

    task = asyncio.create_task(pump())
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def load(
    source: Source, sink: Sink, *, app: str | None = None, wipe: bool = False, require_empty: bool = False,
    files: FileProvider | None = None, advance: Advance = _quiet,
) -> Loaded:  # fmt: skip
    """Write every record of ``source`` into ``sink`` in one transaction. ``require_empty``:
    refuse a target that holds anything (unless ``wipe``, which replaces it). ``file_data``
    records go to ``files`` (skipped without it)."""
    if require_empty and not wipe and not await sink.is_empty():
        raise TransferError("the target already holds apps or tenants: restore into an empty installation, or pass --force to replace it")  # fmt: skip
    summary = Summary()
    stored: list[str] = []
    await sink.begin(wipe=wipe)
    try:
        async with contextlib.aclosing(_ahead(source.records(app), _summing(summary))) as batches:
            async for batch in batches:
                name = batch[0]["kind"]
                if name == FILE_DATA:
                    if files is not None:
                        for rec in batch:
                            ctype = mimetypes.guess_type(rec["key"])[0] or "application/octet-stream"
                            await files.put(rec["key"], _one(rec["bytes"]), ctype)
                            stored.append(rec["key"])
                else:
                    await sink.write(BY_NAME[name], batch)
                advance(len(batch))
        await sink.commit()
    except BaseException:
        await sink.rollback()
        if files is not None:
            for key in stored:
                await files.delete(key)
        raise
    return Loaded(summary, len(stored))


async def summarize(source: Source, app: str | None = None) -> Summary:
    """Counts and checksums of every record of ``source``."""
    summary = Summary()
    async with contextlib.aclosing(_ahead(source.records(app), _summing(summary))) as batches:
        async for _ in batches:
            pass
    return summary


def compare(a: Summary, b: Summary) -> list[tuple[str, int, int, str, str, bool]]:
    """Per key: (key, count in a, count in b, checksum in a, checksum in b, equal)."""
    ta, tb = a.table(), b.table()
    rows = []
    for key in sorted(set(ta) | set(tb)):
        (na, ha), (nb, hb) = ta.get(key, (0, "-")), tb.get(key, (0, "-"))
        rows.append((key, na, nb, ha, hb, na == nb and ha == hb))
    return rows


def backup_sqlite(db: Path, out: Path, advance: Callable[[int, int], None] | None = None) -> None:
    """Copy an SQLite store with SQLite's online backup API while a server may be writing to it.

    The source connection holds one read transaction through every step, so the copy is the
    database as of one moment (WAL lets the writer go on meanwhile); the copy must pass
    ``PRAGMA integrity_check`` before it is renamed to ``out``."""
    if not is_sqlite_file(db):
        raise TransferError(f"{db} is not an SQLite database (no such file, or another format)")
    if out.exists():
        raise TransferError(f"{out} already exists: remove it or choose another --out")
    tmp = out.with_name(out.name + ".partial")
    tmp.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    try:
        src.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
        src.execute("BEGIN")
        src.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # the snapshot starts here
        dst = sqlite3.connect(tmp)
        try:
            src.backup(
                dst,
                pages=BACKUP_PAGES,
                progress=(lambda _s, remaining, total: advance(total - remaining, total)) if advance else None,
            )
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            dst.close()
        if check != "ok":
            raise TransferError(f"the copy failed its integrity check ({check}): the source may be damaged")
        tmp.replace(out)
    except sqlite3.Error as exc:
        raise TransferError(f"backup failed: {exc}") from exc
    finally:
        src.close()
        tmp.unlink(missing_ok=True)


def restore_sqlite(backup: Path, db: Path, force: bool = False) -> None:
    """Put an SQLite backup in place as the store file ``db`` (the server must be stopped).

    Refuses a ``db`` that holds apps or tenants unless ``force``; the backup is checked first
    and copied beside ``db``, then renamed over it, so a failure leaves ``db`` as it was."""
    if not is_sqlite_file(backup):
        raise TransferError(f"{backup} is not an SQLite database")
    if is_sqlite_file(db) and not force:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            held = conn.execute("SELECT (SELECT COUNT(*) FROM tenants) + (SELECT COUNT(*) FROM bases)").fetchone()[0]
        except sqlite3.Error:
            held = 1
        finally:
            conn.close()
        if held:
            raise TransferError(f"{db} already holds apps or tenants: restore into an empty data directory, or pass --force to replace it")  # fmt: skip
    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = db.with_name(db.name + ".restoring")
    tmp.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    try:
        check = src.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise TransferError(f"{backup} failed its integrity check ({check}): nothing was restored")
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            dst.close()
    except sqlite3.Error as exc:
        tmp.unlink(missing_ok=True)
        raise TransferError(f"restore failed: {exc}") from exc
    finally:
        src.close()
    for suffix in ("-wal", "-shm"):  # the old file's log must not be replayed onto the new one
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    tmp.replace(db)


def _next_run(interval: str, now: float) -> float | None:
    try:
        return parse(interval).next_after(now, now)
    except Exception:  # any interval this scheduler cannot read: the task comes over disabled
        return None


def upstream_source(dsn: str) -> UpstreamSource:
    """A source reading an upstream StaticBackend PostgreSQL database."""
    return UpstreamSource(dsn, lambda col: permission_of(col).digits, _next_run, time.time())


__all__ = [
    "Loaded",
    "TransferError",
    "backup_sqlite",
    "compare",
    "export",
    "load",
    "restore_sqlite",
    "summarize",
    "upstream_source",
]
