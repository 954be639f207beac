"""The ``backend`` CLI against a real server: one server process per module and store kind, a fresh
app (tenant) per test, and :func:`App.cli`, which runs the real ``backend`` command with that app's
``.backend.yml`` (``region`` = the server's URL) in the test's own directory."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.conftest import _fresh_database
from tests.conftest import STORE_KINDS
from tests.functions.support import Process, server_process

BACKEND = Path(sys.executable).parent / "backend"
CLI_ENV_KEYS = ("PUBKEY", "REGION", "ROOTTOKEN", "AUTHTOKEN", "EMAIL", "PASSWORD", "NO_COLOR")


def run_cli(workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``backend <args>`` in ``workdir`` (its HOME too), without CLI variables from the outer environment."""
    clean = {k: v for k, v in os.environ.items() if k not in CLI_ENV_KEYS}
    clean.update({"HOME": str(workdir), **env})
    return subprocess.run([str(BACKEND), *args], cwd=workdir, env=clean, capture_output=True, text=True, timeout=60)


def failed(done: subprocess.CompletedProcess[str], reason: str) -> None:
    """Exit code 1, ``ERROR ▶ <reason...>`` as the one line on stderr, nothing on stdout, no traceback."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR ▶ "), done.stderr
    assert reason in lines[0], (reason, done.stderr)
    assert "Traceback" not in done.stderr and "SUCCESS" not in done.stdout, done.stdout


@dataclass
class App:
    """One app of the module's server and a working directory whose .backend.yml names it."""

    url: str
    pk: str
    root: str
    email: str
    password: str
    workdir: Path
    server: Process

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_cli(self.workdir, *args, **env)

    def ok(self, *args: str, **env: str) -> str:
        done = self.cli(*args, **env)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout

    def write_config(self, **values: str) -> Path:
        keys = {"pubKey": self.pk, "region": self.url, "rootToken": self.root, "email": self.email}
        keys.update({"password": self.password, "authToken": "", **values})
        path = self.workdir / ".backend.yml"
        path.write_text("".join(f"{k}: {v}\n" for k, v in keys.items()))
        return path

    def api(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"SB-PUBLIC-KEY": self.pk, "Authorization": f"Bearer {token or self.root}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def api_ok(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        r = self.api(method, path, token, **kw)
        assert r.status_code < 300, (method, path, r.status_code, r.text)
        return r.json()


@pytest.fixture(scope="module", params=STORE_KINDS)
def cli_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """A server process for the module, on SQLite or on PostgreSQL + Redis."""
    kind: str = request.param
    env: dict[str, str] = {}
    if kind == "pg":
        env = {
            "DATA_STORE": "pg",
            "DATABASE_URL": _fresh_database(
                request.getfixturevalue("pg_url"), "cli_" + request.module.__name__.rsplit(".", 1)[-1][5:]
            ),
            "REDIS_URL": request.getfixturevalue("redis_url"),
        }
    with server_process(tmp_path_factory.mktemp(f"cli-{kind}"), env) as proc:
        yield proc


@pytest.fixture
def app(cli_server: Process, tmp_path: Path) -> App:
    """A fresh app on the module's server, with a .backend.yml for it in ``tmp_path``."""
    email = f"cli-{uuid.uuid4().hex[:12]}@cli.example.com"
    r = httpx.get(
        cli_server.url + "/account/init",
        params={"email": email, "ui": "1"},
        headers={"Accept": "application/json"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    new = App(cli_server.url, body["pk"], body["rootToken"], email, body["pw"], tmp_path, cli_server)
    new.write_config()
    return new
