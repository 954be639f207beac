"""``backend backup`` / ``backend restore``: a backup taken while a server writes is whole and
consistent; restores bring back every record, into an empty target only unless ``--force``."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.cli.test_transfer import ROOT, cli, dump, fill, location_args, place

DEV_PK = "dev_memory_pk"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sqlite_backup_while_a_live_server_writes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATA_STORE", "DATABASE_URL", "REDIS_URL", "REDIS_HOST")}
    env.update(JWT_SECRET="backup-test", APP_ENV="dev")
    server = subprocess.Popen(
        [sys.executable, "-m", "sbserver", "server", "--port", str(port), "--data-dir", str(data)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    acked: list[int] = []
    stop = threading.Event()
    errors: list[str] = []
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(url + "/ping").text == "true":
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        with httpx.Client(base_url=url, headers={"SB-PUBLIC-KEY": DEV_PK}) as c:
            token = c.post("/login", json={"email": "admin@dev.com", "password": "devpw1234"}).json()

        def writer() -> None:  # one document at a time: each acknowledged before the next is sent
            with httpx.Client(base_url=url, headers={"SB-PUBLIC-KEY": DEV_PK, "Authorization": f"Bearer {token}"}) as c:
                i = 0
                while not stop.is_set():
                    r = c.post("/db/items", json={"seq": i, "pad": "x" * 2000})
                    if not r.is_success:
                        errors.append(r.text)
                        return
                    acked.append(i)
                    i += 1

        thread = threading.Thread(target=writer)
        thread.start()
        while len(acked) < 300 and thread.is_alive():
            time.sleep(0.02)
        assert not errors, errors
        before = len(acked)
        out = tmp_path / "backup.db"
        done = cli("backup", "--data-dir", str(data), "--out", str(out))
        during = len(acked)
        while len(acked) < during + 20 and thread.is_alive():  # the server still writes after the backup
            time.sleep(0.02)
        stop.set()
        thread.join()
        assert not errors, errors
        assert done.returncode == 0, done.stderr
        assert "integrity ok" in done.stdout
        assert during > before, "the server wrote nothing while the backup ran"
    finally:
        stop.set()
        server.terminate()
        server.wait(20)

    conn = sqlite3.connect(out)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    seqs = sorted(r[0] for r in conn.execute("SELECT json_extract(data, '$.seq') FROM documents WHERE col = 'items'"))
    conn.close()
    assert len(seqs) >= before  # every write acknowledged before the backup started
    assert seqs == list(range(len(seqs)))  # a prefix: no gap, nothing half-written

    again = cli("backup", "--data-dir", str(data), "--out", str(out))
    assert again.returncode == 1 and "already exists" in again.stderr

    restored = tmp_path / "restored"
    done = cli("restore", str(out), "--data-dir", str(restored))
    assert done.returncode == 0, done.stderr
    items = [r for r in dump("sqlite", str(restored)) if r["kind"] == "document" and r["col"] == "items"]
    assert sorted(r["data"]["seq"] for r in items) == seqs


@pytest.mark.parametrize("kind", ["sqlite", "pg"])
@pytest.mark.parametrize("into", ["sqlite", "pg"])
def test_backup_restore_every_record(kind: str, into: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    source, target = place(kind, tmp_path, request, "src"), place(into, tmp_path, request, "dst")
    fill(kind, source)
    out = tmp_path / ("backup.db" if kind == "sqlite" else "backup.jsonl")
    done = cli("backup", *location_args(kind, source), "--out", str(out))
    assert done.returncode == 0, done.stderr
    done = cli("restore", str(out), *location_args(into, target))
    assert done.returncode == 0, done.stderr
    before = dump(kind, source)
    assert dump(into, target) == before

    # a target that holds anything is refused, and left as it was; --force replaces it
    other = place(kind, tmp_path, request, "other")
    fill(kind, other, apps=1, docs=3)
    other_out = tmp_path / ("other.db" if kind == "sqlite" else "other.jsonl")
    assert cli("backup", *location_args(kind, other), "--out", str(other_out)).returncode == 0
    refused = cli("restore", str(other_out), *location_args(into, target))
    assert refused.returncode == 1 and "already holds apps or tenants" in refused.stderr and "--force" in refused.stderr
    assert dump(into, target) == before
    forced = cli("restore", str(other_out), *location_args(into, target), "--force")
    assert forced.returncode == 0, forced.stderr
    assert dump(into, target) == dump(kind, other)


def test_restore_bad_input(tmp_path: Path) -> None:
    missing = cli("restore", str(tmp_path / "none.db"), "--data-dir", str(tmp_path / "t"))
    assert missing.returncode == 1 and "no such backup file" in missing.stderr
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a backup\n")
    bad = cli("restore", str(junk), "--data-dir", str(tmp_path / "t"))
    assert bad.returncode == 1 and "is not an sbserver export" in bad.stderr
    assert not (tmp_path / "t" / "sbserver.db").exists()
    no_store = cli("backup", "--data-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "b.db"))
    assert no_store.returncode == 1 and "is not an SQLite database" in no_store.stderr
