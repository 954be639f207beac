"""``backend backup`` and ``backend restore``.

SQLite: the backup is a copy of the store file made with SQLite's online backup API in one read
snapshot, while the server keeps serving; restore puts it back (server stopped). PostgreSQL: the
backup is the JSON Lines export of the whole installation read in one ``REPEATABLE READ``
transaction (no ``pg_dump`` needed); restore loads it in one transaction. Either backup restores
into either store. Secrets (``app_secret``, ``jwt_secret`` in the data directory, or
``APP_SECRET`` / ``JWT_SECRET``) and uploaded files are not in a backup: keep them alongside.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sbserver.backends.storage.transfer.records import TransferError
from sbserver.cli.transfer import add_location, load_into, location, progress, run_async, say, source_of


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("backup", help="a consistent copy of the installation, taken while it serves")
    add_location(p, "installation")
    p.add_argument("--out", required=True, type=Path, help="the file to write (must not exist)")
    p.set_defaults(run=run_backup)

    p = sub.add_parser("restore", help="restore a backup into an empty installation")
    p.add_argument("file", type=Path, help="a backup: an SQLite file or a JSON Lines export")
    add_location(p, "target")
    p.add_argument("--force", action="store_true", help="replace whatever the target holds")
    p.set_defaults(run=run_restore)


def run_backup(args: argparse.Namespace) -> int:
    from sbserver.services import transfer

    async def work() -> int:
        where = location(args)
        if where[0] == "sqlite":
            with progress("backing up", None) as advance:
                pages = [0, 0]

                def step(done: int, total: int) -> None:
                    advance(done - pages[0])
                    pages[:] = [done, total]

                transfer.backup_sqlite(Path(where[1]), args.out, step)
            say(f"backed up {where[1]} to {args.out} ({pages[1]} pages, integrity ok)")
            return 0
        source = source_of(where)
        await source.open()
        try:
            total = sum((await source.counts()).values())
            with progress("backing up", total) as advance:
                await transfer.export(source, args.out, kind="pg", advance=advance)
        finally:
            await source.close()
        say(f"backed up PostgreSQL to {args.out} ({total} records, one snapshot)")
        return 0

    return run_async(work)


def run_restore(args: argparse.Namespace) -> int:
    from sbserver.backends.storage.transfer.jsonl import JsonlSource
    from sbserver.backends.storage.transfer.sqlite import SQLiteSource, is_sqlite_file
    from sbserver.services import transfer

    async def work() -> int:
        if not args.file.is_file():
            raise TransferError(f"{args.file}: no such backup file")
        where = location(args)
        if is_sqlite_file(args.file):
            if where[0] == "sqlite":
                transfer.restore_sqlite(args.file, Path(where[1]), force=args.force)
                say(f"restored {args.file} to {where[1]}")
                return 0
            return await load_into(SQLiteSource(args.file), args, require_empty=True, wipe=args.force, what="restored")
        return await load_into(JsonlSource(args.file), args, require_empty=True, wipe=args.force, files=True, what="restored")  # fmt: skip

    return run_async(work)


__all__ = ["add_parsers"]
