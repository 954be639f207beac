"""``backend export`` / ``import`` / ``migrate``: every record arrives, record for record, between
SQLite and PostgreSQL both ways; refusals leave the target as it was."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from sbserver.backends.files.local import LocalFiles
from sbserver.backends.storage.base import FileRecord, ProviderConfig, Store
from sbserver.backends.storage.postgresql import PostgresStore
from sbserver.backends.storage.sqlite import SQLiteStore
from sbserver.backends.storage.transfer.postgresql import PostgresSource
from sbserver.backends.storage.transfer.records import KINDS, NOT_RECORDS
from sbserver.backends.storage.transfer.sqlite import SQLiteSource
from sbserver.types import Account, Base, FunctionDef, FunctionRun, Job, StoredDoc, Task, TaskRun, Tenant, User

ROOT = Path(__file__).resolve().parents[2]


# helpers shared with test_backup.py and test_upstream_import.py
def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``backend <args>`` as a user would, in its own process."""
    full = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATA_STORE", "SB_DATA_DIR")}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "sbserver", *args], capture_output=True, text=True, env=full, cwd=ROOT, timeout=120
    )


def new_pg(pg_url: str) -> str:
    """A fresh empty database derived from the worker's (dropped with it at the end of the session)."""
    base, _, name = pg_url.rpartition("/")
    db = f"{name}_x{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(f'CREATE DATABASE "{db}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return f"{base}/{db}"


def store_for(kind: str, where: str) -> Store:
    return PostgresStore(where) if kind == "pg" else SQLiteStore(Path(where) / "sbserver.db", writer="thread")


def location_args(kind: str, where: str) -> list[str]:
    return ["--database-url", where] if kind == "pg" else ["--data-dir", where]


def dump(kind: str, where: str, app: str | None = None) -> list[dict[str, Any]]:
    """Every record of an installation, in stream order."""

    async def read() -> list[dict[str, Any]]:
        source = PostgresSource(where) if kind == "pg" else SQLiteSource(Path(where) / "sbserver.db")
        await source.open()
        try:
            return [rec async for batch in source.records(app) for rec in batch]
        finally:
            await source.close()

    return asyncio.run(read())


def by_kind(records: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for rec in records:
        counts[rec["kind"]] = counts.get(rec["kind"], 0) + 1
    return counts


T0 = 1_780_000_000.0


def stamp(i: int) -> str:
    return f"2026-05-{1 + i % 28:02d}T10:{i % 60:02d}:00.{i:06d}Z"


async def populate(store: Store, data_dir: Path | None = None, apps: int = 2, docs: int = 60) -> list[Base]:
    """An installation with every kind of record: two tenants, ``apps`` apps, users, documents
    (odd ones too: NUL, unicode, floats, nesting), indexes, search entries, forms, functions and
    runs, tasks and runs, queued jobs, limits, mail counts, files (bytes under ``data_dir``) and
    OAuth providers."""
    files = LocalFiles(data_dir / "files") if data_dir is not None else None
    bases = []
    for t in range(2):
        await store.create_tenant(Tenant(f"tenant-{t}", f"owner{t}@example.com", 1 + t, t == 0, stamp(t)))
    for a in range(apps):
        name = f"app{a}x{uuid.uuid4().hex[:6]}"
        base = Base(f"pk-{name}", name, f"tenant-{a % 2}", ("localhost", f"a{a}.example.com"), True, stamp(a))
        await store.create_base(base)
        bases.append(base)
        users = []
        for u in range(3):
            acct = Account(f"acct-{a}-{u}", f"u{u}@app{a}.com", stamp(u))
            user = User(
                f"user-{a}-{u}", acct.id, acct.email, f"tok-{a}-{u}", [100, 50, 0][u], stamp(u), f"$2b$10$hash{u}", ""
            )
            await store.create_account_with_user(base, acct, user)
            users.append(user)
        await store.set_reset_code(base, users[2].email, "code-123")
        for col, perm in (("posts", "740"), ("pub_notes_766_", "766"), ("big", "740")):
            batch = []
            for i in range(docs if col == "big" else 7):
                u = users[i % 3]
                data: dict[str, Any] = {"n": i, "title": f"T{i} é中文", "f": i / 7, "tags": ["x", {"deep": [1, None]}]}
                if i == 3:
                    data["nul"] = "a\u0000b"
                batch.append(StoredDoc(f"doc-{i:04d}", u.account_id, u.id, stamp(i), data))
            await store.insert_documents(base, col, batch, perm)
            await store.index_text(base, col, batch[0].id, f"hello world {col}")
        await store.create_index(base, "posts", "title")
        await store.create_index(base, "big", "n")
        for i in range(4):
            await store.add_form(base, f"form{i % 2}", {"email": f"f{i}@x.com", "msg": "hi"}, stamp(i))
        fn = FunctionDef(f"fn-{a}", "onpost", "db:posts", "function handle(c,t,d){}", 3, stamp(1), stamp(2), "K=v")
        await store.create_function(base, fn)
        for i in range(3):
            run = FunctionRun(f"run-{a}-{i}", fn.id, 3, stamp(i), stamp(i + 1), i != 1, ["started", f"line {i}"])
            if i == 1:  # a failed run keeps its input for a retry, and moves with it
                run.payload = {"kind": "db", "channel": "db-posts", "data": {"title": f"t{a}"}}
            await store.add_run(base, run, 100)
        await store.set_function_limits(base, {"tasks": 7})
        await store.count_email(base, "2026-05")
        task = Task(f"task-{a}", name, "nightly", "message", "x", '{"channel":"c"}', "0 3 * * *", "UTC", True,
                    stamp(3), T0 + 3600, T0, 0.0)  # fmt: skip
        await store.create_task(task)
        await store.finish_task(task.id, TaskRun(f"trun-{a}", task.id, T0, stamp(1), stamp(2), "ok", "", ["done"]), 100)
        await store.enqueue_jobs([Job(f"job-{a}", name, fn.id, '{"x":1}', stamp(5))], "", 0.0)
        for i in range(2):
            key = f"{name}/{users[0].account_id}/file{i}.txt"
            await store.add_file(base, FileRecord(f"file-{a}-{i}", users[0].account_id, f"file{i}.txt", key, f"/localfs/{key}", 5 + i, stamp(i)))  # fmt: skip
            if files is not None:

                async def chunks(i: int = i) -> Any:
                    yield b"bytes" + b"!" * i

                await files.put(key, chunks(), "text/plain")
        await store.set_oauth_provider(base, ProviderConfig("github", "cid", "sealed-secret", "{}", stamp(4)))
    return bases


def fill(kind: str, where: str, data_dir: Path | None = None, **kw: Any) -> list[Base]:
    async def go() -> list[Base]:
        store = store_for(kind, where)
        await store.open()
        try:
            return await populate(store, data_dir, **kw)
        finally:
            await store.close()

    return asyncio.run(go())


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> str:
    return new_pg(request.getfixturevalue("pg_url"))


def place(kind: str, tmp_path: Path, request: pytest.FixtureRequest, name: str) -> str:
    if kind == "pg":
        return new_pg(request.getfixturevalue("pg_url"))
    path = tmp_path / name
    path.mkdir()
    return str(path)


# tests
def test_every_table_is_a_record_kind(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """A table added by a migration but unknown to the transfer would be lost: fail here first."""
    tables = {k.table for k in KINDS}
    fill("sqlite", str(tmp_path), apps=1, docs=1)
    conn = sqlite3.connect(tmp_path / "sbserver.db")
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    fts_shadow = {n for n in names if n.startswith("fts_") and n != "fts_terms"}
    assert names - tables - NOT_RECORDS - fts_shadow == set()
    where = place("pg", tmp_path, request, "pg")
    bases = fill("pg", where, apps=1, docs=1)

    async def pg_tables() -> set[tuple[str, str]]:
        conn = await asyncpg.connect(where)
        try:
            rows = await conn.fetch("SELECT schemaname, tablename FROM pg_tables WHERE schemaname IN ('sb', $1)", bases[0].name)  # fmt: skip
            return {(r[0], r[1]) for r in rows}
        finally:
            await conn.close()

    found = asyncio.run(pg_tables())
    assert {t for s, t in found} - tables - NOT_RECORDS == set()


@pytest.mark.parametrize("src,dst", [("sqlite", "pg"), ("pg", "sqlite"), ("sqlite", "sqlite")])
def test_export_import_round_trip(src: str, dst: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    source, target = place(src, tmp_path, request, "src"), place(dst, tmp_path, request, "dst")
    fill(src, source, tmp_path / "src" if src == "sqlite" else None)
    out = tmp_path / "all.jsonl"
    files_flag = ["--with-files"] if src == "sqlite" else []
    done = cli("export", *location_args(src, source), "--out", str(out), *files_flag)
    assert done.returncode == 0, done.stderr
    assert "exported to" in done.stdout and "document" in done.stdout
    header = orjson.loads(out.read_bytes().split(b"\n", 1)[0])
    assert header["format"] == "sbserver-export" and header["counts"]["document"] == 2 * (60 + 14)
    done = cli("import", str(out), *location_args(dst, target))
    assert done.returncode == 0, done.stderr
    before, after = dump(src, source), dump(dst, target)
    assert by_kind(after) == by_kind(before)
    assert after == before  # every record, every field, same order
    if src == "sqlite" and dst == "sqlite":
        assert "stored 4 files" in done.stdout
        files = sorted((Path(target) / "files").rglob("*.txt"))
        assert [f.read_bytes() for f in files] == [b"bytes", b"bytes!"] * 2


def test_export_one_app(tmp_path: Path) -> None:
    bases = fill("sqlite", str(tmp_path))
    out = tmp_path / "one.jsonl"
    done = cli("export", "--data-dir", str(tmp_path), "--app", bases[1].id, "--out", str(out))
    assert done.returncode == 0, done.stderr
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()[1:-1]]
    assert [r["pk"] for r in records if r["kind"] == "base"] == [bases[1].id]
    assert [r["id"] for r in records if r["kind"] == "tenant"] == [bases[1].tenant_id]
    assert {r["base"] for r in records if "base" in r} == {bases[1].name}
    assert records == dump("sqlite", str(tmp_path), bases[1].id)
    unknown = cli("export", "--data-dir", str(tmp_path), "--app", "nope", "--out", str(tmp_path / "x.jsonl"))
    assert unknown.returncode == 1 and "no app with public key 'nope'" in unknown.stderr
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "x.jsonl.partial").exists()


def exported_sqlite(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A filled SQLite installation (``src``), an empty directory (``dst``), and ``src`` exported."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    fill("sqlite", str(src))
    out = tmp_path / "all.jsonl"
    assert cli("export", "--data-dir", str(src), "--out", str(out)).returncode == 0
    return src, dst, out


def test_import_refuses_conflicts_and_bad_files_writing_nothing(tmp_path: Path) -> None:
    _, dst, out = exported_sqlite(tmp_path)
    assert cli("import", str(out), "--data-dir", str(dst)).returncode == 0
    before = dump("sqlite", str(dst))
    again = cli("import", str(out), "--data-dir", str(dst))
    assert (
        again.returncode == 1
        and "already exists in the target" in again.stderr
        and "nothing was written" in again.stderr
    )
    assert len(again.stderr.strip().splitlines()) == 1
    assert dump("sqlite", str(dst)) == before

    lines = out.read_bytes().splitlines(keepends=True)
    cases = {
        "truncated": (b"".join(lines[:-1]), "truncated: no end line"),
        "bad json": (b"".join([*lines[:5], b"{nope\n", *lines[5:]]), "line 6: not JSON"),
        "bad record": (
            b"".join([*lines[:3], b'{"kind":"user","base":"x"}\n', *lines[3:]]),
            "line 4: user record has missing fields",
        ),
        "unknown kind": (b"".join([*lines[:2], b'{"kind":"zzz"}\n', *lines[2:]]), "unknown record kind 'zzz'"),
        "not an export": (b"hello\n", "is not an sbserver export"),
        "wrong count": (b"".join([*lines[:-1], b'{"kind":"end","records":3}\n']), "the end line counts 3 records"),
    }
    for name, (content, message) in cases.items():
        empty = tmp_path / f"empty-{name.replace(' ', '-')}"
        empty.mkdir()
        bad = tmp_path / f"{name}.jsonl"
        bad.write_bytes(content)
        done = cli("import", str(bad), "--data-dir", str(empty))
        assert done.returncode == 1 and message in done.stderr, (name, done.stderr)
        if (empty / "sbserver.db").exists():  # a header it cannot read stops it before the target is touched
            assert dump("sqlite", str(empty)) == [], name
    missing = cli("import", str(tmp_path / "none.jsonl"), "--data-dir", str(dst))
    assert missing.returncode == 1 and "cannot read" in missing.stderr


def test_migrate_sqlite_to_postgresql_verifies_and_prints(tmp_path: Path, pg: str) -> None:
    fill("sqlite", str(tmp_path))
    done = cli("migrate", "--data-dir", str(tmp_path), "--to", pg)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("user ") and line.rstrip().endswith("ok") for line in lines)
    for base in dump("sqlite", str(tmp_path)):
        if base["kind"] == "base":
            assert any(line.startswith(f"document {base['name']}/big ") for line in lines)
    assert "MISMATCH" not in done.stdout and "counts and checksums match" in done.stdout
    assert dump("pg", pg) == dump("sqlite", str(tmp_path))

    again = cli("migrate", "--data-dir", str(tmp_path), "--to", pg)
    assert again.returncode == 1 and "already holds apps or tenants" in again.stderr
    not_pg = cli("migrate", "--data-dir", str(tmp_path), "--to", str(tmp_path / "x.db"))
    assert not_pg.returncode == 1 and "--to must be a PostgreSQL URL" in not_pg.stderr
    no_source = cli("migrate", "--data-dir", str(tmp_path / "nothing"), "--to", pg)
    assert no_source.returncode == 1 and "is not an sbserver SQLite database" in no_source.stderr


def test_migrated_installation_serves(tmp_path: Path, pg: str) -> None:
    """The PostgreSQL store opens on the migrated data and answers queries through its indexes."""
    bases = fill("sqlite", str(tmp_path), apps=1)
    assert cli("migrate", "--data-dir", str(tmp_path), "--to", pg).returncode == 0

    async def check() -> None:
        store = PostgresStore(pg)
        await store.open()
        try:
            base = await store.base_by_pk(bases[0].id)
            assert base == bases[0]
            assert await store.indexes(base, "big") == ["n"]
            assert await store.search_text(base, "posts", ["hello"], 10) == ["doc-0000"]
            assert [f.name for f in await store.functions(base)] == ["onpost"]
        finally:
            await store.close()

    asyncio.run(check())


def test_import_reads_an_export_made_before_runs_kept_their_input(tmp_path: Path) -> None:
    src, dst, out = exported_sqlite(tmp_path)
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    kept = [r for r in records if r.get("kind") == "function_run" and r["input"]]
    assert kept and all(orjson.loads(r["input"])["channel"] == "db-posts" for r in kept), kept
    for r in records:  # the format before 2026-12-03: function_run records had no input field
        if r.get("kind") == "function_run":
            del r["input"]
    old = tmp_path / "old.jsonl"
    old.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    done = cli("import", str(old), "--data-dir", str(dst))
    assert done.returncode == 0, done.stderr
    runs = [r for r in dump("sqlite", str(dst)) if r["kind"] == "function_run"]
    assert runs and all(r["input"] == "" for r in runs)
    expected = [r for r in dump("sqlite", str(src)) if r["kind"] != "function_run"]
    assert [r for r in dump("sqlite", str(dst)) if r["kind"] != "function_run"] == expected
