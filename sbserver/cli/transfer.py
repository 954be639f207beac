"""``backend export``, ``backend import``, ``backend migrate`` and ``backend import-upstream``:
moving an installation's data (the JSON Lines format is described in
``sbserver/backends/storage/transfer/jsonl.py``).

Where data lives: ``--data-dir D`` (the SQLite store ``D/sbserver.db``) or ``--database-url URL``
(PostgreSQL, or an SQLite file path); without either, ``DATABASE_URL`` / ``SB_DATA_DIR`` as the
server reads them (default ``./.sbdata``). Every failure exits 1 with one line saying why.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg

from sbserver.backends.storage.transfer.base import Sink, Source
from sbserver.backends.storage.transfer.records import Summary, TransferError

DB_FILE = "sbserver.db"


# where data lives
def add_location(p: argparse.ArgumentParser, role: str) -> None:
    p.add_argument("--data-dir", default=None, help=f"the {role}'s data directory (SQLite store; default ./.sbdata)")
    p.add_argument("--database-url", default=None, help=f"the {role}'s database: postgresql://... (or an SQLite file)")


def is_pg(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://")) or "host=" in url


def location(args: argparse.Namespace) -> tuple[str, str]:
    """("pg", dsn) or ("sqlite", path of the store file), from the flags or the environment."""
    url = args.database_url or ("" if args.data_dir else os.environ.get("DATABASE_URL", "").strip())
    if url and is_pg(url):
        return "pg", url
    if url and url.lower() != "mem":
        return "sqlite", url
    return "sqlite", str(Path(args.data_dir or os.environ.get("SB_DATA_DIR") or ".sbdata") / DB_FILE)


def source_of(where: tuple[str, str]) -> Source:
    kind, target = where
    if kind == "pg":
        from sbserver.backends.storage.transfer.postgresql import PostgresSource

        return PostgresSource(target)
    from sbserver.backends.storage.transfer.sqlite import SQLiteSource

    return SQLiteSource(Path(target))


def sink_of(where: tuple[str, str]) -> Sink:
    kind, target = where
    if kind == "pg":
        from sbserver.backends.storage.transfer.postgresql import PostgresSink

        return PostgresSink(target)
    from sbserver.backends.storage.transfer.sqlite import SQLiteSink

    return SQLiteSink(Path(target))


def files_of(args: argparse.Namespace, where: tuple[str, str]) -> Any:
    """The file provider of the installation (local files under its data directory, or S3 as
    ``STORAGE_PROVIDER`` says)."""
    from sbserver.backends.files import create_file_provider
    from sbserver.settings import from_env

    data_dir = args.data_dir or (str(Path(where[1]).parent) if where[0] == "sqlite" else None)
    return create_file_provider(from_env(data_dir=data_dir))


# output
def say(text: str) -> None:
    print(text, flush=True)


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal; otherwise nothing until the summary."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def run_async(work: Callable[[], Awaitable[int]]) -> int:
    """Run a command's coroutine; a refusal or failure is one line on stderr and exit code 1."""
    from sbserver.errors import SBError

    try:
        return asyncio.run(work())  # type: ignore[arg-type]
    except TransferError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except SBError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, sqlite3.Error) as exc:
        print(f"error: database error: {exc}".splitlines()[0], file=sys.stderr)
    except KeyboardInterrupt:
        print("error: interrupted: nothing was written", file=sys.stderr)
    return 1


def print_counts(summary: Summary, title: str) -> None:
    rows = [(k, n) for k, (n, _) in summary.table().items() if not k.startswith("document ")]
    say(f"{title}: " + (", ".join(f"{n} {k}" for k, n in rows) or "nothing"))


def print_comparison(rows: list[tuple[str, int, int, str, str, bool]]) -> None:
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table("table / collection", "source", "target", "source sha256", "target sha256", "")
        for key, na, nb, ha, hb, ok in rows:
            table.add_row(key, str(na), str(nb), ha[:16], hb[:16], "[green]ok[/]" if ok else "[red]MISMATCH[/]")
        Console().print(table)
        return
    width = max([len(r[0]) for r in rows] + [18])
    print(
        f"{'table/collection':<{width}}  {'source':>8}  {'target':>8}  {'source sha256':<64}  {'target sha256':<64}  check"
    )
    for key, na, nb, ha, hb, ok in rows:
        print(f"{key:<{width}}  {na:>8}  {nb:>8}  {ha:<64}  {hb:<64}  {'ok' if ok else 'MISMATCH'}")


# commands
def add_parsers(sub: Any) -> None:
    p = sub.add_parser("export", help="write an installation (or one app) to a JSON Lines file")
    add_location(p, "installation")
    p.add_argument("--app", default=None, metavar="PUBLIC_KEY", help="only this app (and its tenant)")
    p.add_argument("--out", required=True, type=Path, help="the file to write (must not exist)")
    p.add_argument("--with-files", action="store_true", help="include uploaded files' bytes (base64)")
    p.set_defaults(run=run_export)

    p = sub.add_parser("import", help="add the apps of an export file to an installation (all or nothing)")
    p.add_argument("file", type=Path)
    add_location(p, "target")
    p.set_defaults(run=run_import)

    p = sub.add_parser("migrate", help="move an SQLite installation to an empty PostgreSQL database, verified")
    p.add_argument("--data-dir", default=None, help="the SQLite installation (default $SB_DATA_DIR or ./.sbdata)")
    p.add_argument("--to", required=True, metavar="URL", help="postgresql://... (its sbserver tables must be empty)")
    p.set_defaults(run=run_migrate, database_url=None)

    p = sub.add_parser("import-upstream", help="bring the data of an upstream StaticBackend PostgreSQL database over")
    p.add_argument(
        "--from", dest="source", required=True, metavar="URL", help="the upstream database, postgresql://..."
    )
    p.add_argument("--app", default=None, metavar="PUBLIC_KEY", help="only this upstream app")
    add_location(p, "target")
    p.set_defaults(run=run_import_upstream)


def run_export(args: argparse.Namespace) -> int:
    from sbserver.services import transfer

    async def work() -> int:
        where = location(args)
        source = source_of(where)
        files = files_of(args, where) if args.with_files else None
        await source.open()
        try:
            total = sum((await source.counts(args.app)).values())
            with progress("exporting", total) as advance:
                summary = await transfer.export(source, args.out, kind=where[0], app=args.app, files=files, advance=advance)  # fmt: skip
        finally:
            await source.close()
        print_counts(summary, f"exported to {args.out}")
        return 0

    return run_async(work)


async def load_into(
    source: Source, args: argparse.Namespace, *, require_empty: bool = False, wipe: bool = False, files: bool = False,
    app: str | None = None, what: str = "imported",
) -> int:  # fmt: skip
    from sbserver.services import transfer

    where = location(args)
    sink = sink_of(where)
    provider = files_of(args, where) if files else None
    await source.open()
    try:
        await sink.open()
        try:
            total = sum((await source.counts(app)).values())
            with progress(what.replace("ed", "ing"), total) as advance:
                loaded = await transfer.load(
                    source, sink, app=app, wipe=wipe, require_empty=require_empty, files=provider, advance=advance
                )
        finally:
            await sink.close()
    finally:
        await source.close()
    print_counts(loaded.summary, f"{what} into {where[1] if where[0] == 'sqlite' else 'PostgreSQL'}")
    if loaded.files:
        say(f"stored {loaded.files} files")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from sbserver.backends.storage.transfer.jsonl import JsonlSource

    return run_async(lambda: load_into(JsonlSource(args.file), args, files=True))


def run_import_upstream(args: argparse.Namespace) -> int:
    from sbserver.services import transfer

    if not is_pg(args.source):
        print("error: --from must be a PostgreSQL URL (postgresql://...)", file=sys.stderr)
        return 1
    return run_async(lambda: load_into(transfer.upstream_source(args.source), args, app=args.app))


def run_migrate(args: argparse.Namespace) -> int:
    from sbserver.backends.storage.transfer.postgresql import PostgresSink, PostgresSource
    from sbserver.services import transfer

    if not is_pg(args.to):
        print("error: --to must be a PostgreSQL URL (postgresql://...)", file=sys.stderr)
        return 1

    async def work() -> int:
        where = location(args)
        if where[0] != "sqlite":
            raise TransferError("migrate moves an SQLite installation: give its --data-dir")
        source, sink = source_of(where), PostgresSink(args.to)
        await source.open()
        try:
            await sink.open()
            try:
                total = sum((await source.counts()).values())
                with progress("migrating", total) as advance:
                    loaded = await transfer.load(source, sink, require_empty=True, advance=advance)
            finally:
                await sink.close()
        finally:
            await source.close()
        target = PostgresSource(args.to)
        await target.open()
        try:
            with progress("verifying", total):
                after = await transfer.summarize(target)
        finally:
            await target.close()
        rows = transfer.compare(loaded.summary, after)
        print_comparison(rows)
        bad = [r[0] for r in rows if not r[5]]
        if bad:
            print(f"error: {len(bad)} tables or collections differ after the migration: {', '.join(bad[:5])}", file=sys.stderr)  # fmt: skip
            return 1
        say(f"migrated {total} records: counts and checksums match")
        return 0

    return run_async(work)
