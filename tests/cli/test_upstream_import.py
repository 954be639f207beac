"""``backend import-upstream``: an upstream StaticBackend PostgreSQL database, built here from
the layout spec/01-model.md and 03-database.md describe (schema ``sb`` with customers and apps;
one schema per base with ``sb_accounts``, ``sb_tokens``, the other system tables and one table per
collection), comes over record for record, and its users log in with their old passwords."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import asyncpg
import bcrypt
import httpx

from tests.cli.test_transfer import ROOT, by_kind, cli, dump, new_pg

APP_ID = str(uuid.uuid4())
CUSTOMER = str(uuid.uuid4())
ACCOUNT = str(uuid.uuid4())
USER = str(uuid.uuid4())
OTHER_USER = str(uuid.uuid4())
FN = str(uuid.uuid4())
SCHEMA = "aXk3mPqR7sTz"
CREATED = datetime(2024, 3, 1, 12, 30, 15, 123456)

UPSTREAM_DDL = f"""
CREATE SCHEMA sb;
CREATE TABLE sb.customers (id uuid PRIMARY KEY, email text UNIQUE NOT NULL, stripe_id text NOT NULL,
    sub_id text NOT NULL, is_active boolean NOT NULL, created timestamp NOT NULL, plan integer DEFAULT 0,
    external_logins bytea);
CREATE TABLE sb.apps (id uuid PRIMARY KEY, customer_id uuid REFERENCES sb.customers(id) ON DELETE CASCADE,
    name text UNIQUE NOT NULL, allowed_domain text[], is_active boolean NOT NULL,
    monthly_email_sent integer NOT NULL, created timestamp NOT NULL);
CREATE SCHEMA {SCHEMA};
CREATE TABLE {SCHEMA}.sb_accounts (id uuid PRIMARY KEY, email text UNIQUE NOT NULL, created timestamp NOT NULL);
CREATE TABLE {SCHEMA}.sb_tokens (id uuid PRIMARY KEY, account_id uuid REFERENCES {SCHEMA}.sb_accounts(id),
    token text UNIQUE NOT NULL, email text UNIQUE NOT NULL, password text NOT NULL, role integer NOT NULL,
    reset_code text NOT NULL, created timestamp NOT NULL);
CREATE TABLE {SCHEMA}.sb_forms (id uuid PRIMARY KEY, name text NOT NULL, data jsonb NOT NULL, created timestamp NOT NULL);
CREATE TABLE {SCHEMA}.sb_files (id uuid PRIMARY KEY, account_id uuid, key text UNIQUE NOT NULL, url text NOT NULL,
    size integer NOT NULL, uploaded timestamp NOT NULL);
CREATE TABLE {SCHEMA}.sb_functions (id uuid PRIMARY KEY, function_name text UNIQUE NOT NULL,
    trigger_topic text NOT NULL, code text NOT NULL, version integer NOT NULL, last_updated timestamp NOT NULL,
    last_run timestamp NOT NULL);
CREATE TABLE {SCHEMA}.sb_function_logs (id uuid PRIMARY KEY, function_id uuid REFERENCES {SCHEMA}.sb_functions(id),
    version integer NOT NULL, started timestamp NOT NULL, completed timestamp NOT NULL, success boolean NOT NULL,
    output text[] NOT NULL);
CREATE TABLE {SCHEMA}.sb_tasks (id uuid PRIMARY KEY, name text UNIQUE NOT NULL, type text NOT NULL,
    value text NOT NULL, meta text NOT NULL, interval text NOT NULL, last_run timestamp NOT NULL);
CREATE TABLE {SCHEMA}.tasks (id uuid PRIMARY KEY, account_id uuid, owner_id uuid, data jsonb NOT NULL, created timestamp NOT NULL);
CREATE TABLE {SCHEMA}.pub_notes_766_ (id uuid PRIMARY KEY, account_id uuid, owner_id uuid, data jsonb NOT NULL, created timestamp NOT NULL);
"""


async def build(url: str) -> list[str]:
    """Fill the upstream database; returns the ids of the user's documents in ``tasks``."""
    conn = await asyncpg.connect(url)
    pw = bcrypt.hashpw(b"oldpassword1", bcrypt.gensalt(10)).decode().replace("$2b$", "$2a$")  # as Go writes it
    try:
        await conn.execute(UPSTREAM_DDL)
        await conn.execute(
            "INSERT INTO sb.customers VALUES ($1, 'Boss@Example.com', '', '', true, $2, 2, NULL)", CUSTOMER, CREATED
        )
        await conn.execute(
            "INSERT INTO sb.apps VALUES ($1, $2, $3, ARRAY['localhost'], true, 4, $4)",
            APP_ID,
            CUSTOMER,
            SCHEMA,
            CREATED,
        )
        await conn.execute(f"INSERT INTO {SCHEMA}.sb_accounts VALUES ($1, 'boss@example.com', $2)", ACCOUNT, CREATED)
        for uid, email, role, token in (
            (USER, "boss@example.com", 100, "tok-1"),
            (OTHER_USER, "amy@example.com", 0, "tok-2"),
        ):
            await conn.execute(
                f"INSERT INTO {SCHEMA}.sb_tokens VALUES ($1, $2, $3, $4, $5, $6, '', $7)",
                uid, ACCOUNT, token, email, pw, role, CREATED,
            )  # fmt: skip
        ids = []
        for i in range(25):
            doc = str(uuid.uuid4())
            ids.append(doc)
            data = f'{{"title": "task {i}", "done": {"true" if i % 2 else "false"}, "n": {i}.5, "tags": ["é", "中"]}}'
            await conn.execute(
                f"INSERT INTO {SCHEMA}.tasks VALUES ($1, $2, $3, $4::jsonb, $5)",
                doc, ACCOUNT, USER if i < 20 else OTHER_USER, data, CREATED.replace(second=i),
            )  # fmt: skip
        await conn.execute(
            f"INSERT INTO {SCHEMA}.pub_notes_766_ VALUES ($1, $2, $3, '{{\"x\": 1}}', $4)",
            str(uuid.uuid4()), ACCOUNT, USER, CREATED,
        )  # fmt: skip
        await conn.execute(
            f"INSERT INTO {SCHEMA}.sb_forms VALUES ($1, 'contact', '{{\"email\": \"a@b.c\"}}', $2)",
            str(uuid.uuid4()), CREATED,
        )  # fmt: skip
        await conn.execute(
            f"INSERT INTO {SCHEMA}.sb_files VALUES ($1, $2, 'k/{ACCOUNT}/f.png', 'https://cdn/f.png', 42, $3)",
            str(uuid.uuid4()), ACCOUNT, CREATED,
        )  # fmt: skip
        await conn.execute(
            f"INSERT INTO {SCHEMA}.sb_functions VALUES ($1, 'hello', 'web', 'function handle() {{}}', 2, $2, $3)",
            FN, CREATED, datetime(1, 1, 1),
        )  # fmt: skip
        await conn.execute(
            f"INSERT INTO {SCHEMA}.sb_function_logs VALUES ($1, $2, 2, $3, $3, true, ARRAY['started', 'ok'])",
            str(uuid.uuid4()), FN, CREATED,
        )  # fmt: skip
        await conn.execute(
            f"INSERT INTO {SCHEMA}.sb_tasks VALUES ($1, 'nightly', 'function', 'hello', '', '0 3 * * *', $2)",
            str(uuid.uuid4()), datetime(1, 1, 1),
        )  # fmt: skip
        return ids
    finally:
        await conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_import_upstream_database(tmp_path: Path, pg_url: str) -> None:
    upstream = new_pg(pg_url)
    ids = asyncio.run(build(upstream))
    data = tmp_path / "data"
    done = cli("import-upstream", "--from", upstream, "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    assert "26 document" in done.stdout and "2 user" in done.stdout

    records = dump("sqlite", str(data))
    counts = by_kind(records)
    assert counts == {
        "tenant": 1, "base": 1, "account": 1, "user": 2, "collection": 2, "document": 26, "form": 1,
        "function": 1, "function_run": 1, "file": 1, "task": 1,
    }  # fmt: skip
    base = next(r for r in records if r["kind"] == "base")
    assert (base["pk"], base["name"], base["whitelist"], base["email_count"]) == (APP_ID, SCHEMA, ["localhost"], 4)
    assert next(r for r in records if r["kind"] == "tenant")["email"] == "boss@example.com"
    docs = {r["id"]: r for r in records if r["kind"] == "document" and r["col"] == "tasks"}
    assert sorted(docs) == sorted(ids)
    assert docs[ids[3]]["data"] == {"title": "task 3", "done": True, "n": 3.5, "tags": ["é", "中"]}
    assert docs[ids[3]]["created"] == "2024-03-01T12:30:03.123456Z"
    assert {r["name"]: r["perm"] for r in records if r["kind"] == "collection"} == {"pub_notes_766_": "766", "tasks": "740"}  # fmt: skip
    fn = next(r for r in records if r["kind"] == "function")
    assert (fn["name"], fn["trigger"], fn["version"], fn["last_run"]) == ("hello", "web", 2, "0001-01-01T00:00:00Z")
    task = next(r for r in records if r["kind"] == "task")
    assert task["enabled"] and task["next_run"] > time.time() and task["base"] == SCHEMA

    again = cli("import-upstream", "--from", upstream, "--data-dir", str(data))
    assert again.returncode == 1 and "already exists" in again.stderr
    assert dump("sqlite", str(data)) == records
    not_upstream = cli("import-upstream", "--from", new_pg(pg_url), "--data-dir", str(tmp_path / "d2"))
    assert not_upstream.returncode == 1 and "not an upstream StaticBackend database" in not_upstream.stderr

    # a server on the result: the old password logs in, and the user's documents are there
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATA_STORE", "DATABASE_URL", "REDIS_URL", "REDIS_HOST")}
    env.update(JWT_SECRET="upstream-test", APP_ENV="dev", SB_CREATE_DEV_APP="0")
    server = subprocess.Popen(
        [sys.executable, "-m", "sbserver", "server", "--port", str(port), "--data-dir", str(data)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(url + "/ping").text == "true":
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        with httpx.Client(base_url=url, headers={"SB-PUBLIC-KEY": APP_ID}) as c:
            wrong = c.post("/login", json={"email": "boss@example.com", "password": "nope-nope"})
            assert wrong.status_code >= 400
            r = c.post("/login", json={"email": "Boss@Example.com", "password": "oldpassword1"})
            assert r.status_code == 200, r.text
            auth = {"Authorization": f"Bearer {r.json()}"}
            me = c.get("/me", headers=auth).json()
            assert (me["userId"], me["accountId"], me["role"]) == (USER, ACCOUNT, 100)
            page = c.get("/db/tasks?size=100", headers=auth).json()
            assert page["total"] == 25 and {d["id"] for d in page["results"]} == set(ids)
            one = c.get(f"/db/tasks/{ids[3]}", headers=auth).json()
            assert one["title"] == "task 3" and one["accountId"] == ACCOUNT
            amy = c.post("/login", json={"email": "amy@example.com", "password": "oldpassword1"})
            assert amy.status_code == 200, amy.text
    finally:
        server.terminate()
        server.wait(20)
