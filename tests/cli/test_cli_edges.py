"""Rough edges of the ``backend`` CLI a new user meets first: a busy port, a server the CLI
cannot reach, a function that does not exist."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functions.support import Process, server_process

BACKEND = Path(sys.executable).parent / "backend"
CLI_ENV_KEYS = ("PUBKEY", "REGION", "ROOTTOKEN", "AUTHTOKEN", "EMAIL", "PASSWORD")


def cli(workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in CLI_ENV_KEYS}
    clean.update({"HOME": str(workdir), **env})
    return subprocess.run([str(BACKEND), *args], cwd=workdir, env=clean, capture_output=True, text=True, timeout=60)


def test_a_busy_port_is_said_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = cli(tmp_path, "server", "--port", str(port), "--data-dir", str(tmp_path / "data"), APP_ENV="dev")
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use: choose another with -p/--port (or PORT)" in done.stderr
    assert "Public key" not in done.stdout and "Traceback" not in done.stderr, (done.stdout, done.stderr)
    assert not (tmp_path / "data" / "sbserver.db").exists()  # nothing opened


def test_login_to_a_server_that_is_not_there_says_so(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens once it is closed
    done = cli(tmp_path, "login", "--dev", "--host", f"http://127.0.0.1:{port}")
    assert done.returncode == 1
    assert f"cannot reach the server at http://127.0.0.1:{port}" in done.stderr, done.stderr
    assert "invalid root token" not in done.stderr
    assert "backend login --host <url>" in done.stderr
    assert not (tmp_path / ".backend.yml").exists()


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    with server_process(tmp_path_factory.mktemp("cli-edges"), {}) as server:
        yield server


def test_login_dev_with_host_then_deleting_a_missing_function_fails(dev_server: Process, tmp_path: Path) -> None:
    done = cli(tmp_path, "login", "--dev", "--host", dev_server.url)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, (done.stdout, done.stderr)
    assert f"region: {dev_server.url}\n" in (tmp_path / ".backend.yml").read_text()
    done = cli(tmp_path, "function", "delete", "nosuch")
    assert done.returncode == 1, done.stdout
    assert "no function named nosuch: nothing deleted" in done.stderr
    assert "SUCCESS" not in done.stdout
    (tmp_path / "fn.js").write_text("function handle() { log('hi'); }\n")
    done = cli(tmp_path, "function", "add", "--name", "hello", "--trigger", "web", "--source", "./fn.js")
    assert done.returncode == 0, done.stderr
    done = cli(tmp_path, "function", "delete", "hello")
    assert done.returncode == 0 and "the function hello has been deleted" in done.stdout, done.stderr
    assert cli(tmp_path, "function", "delete", "hello").returncode == 1


def test_region_from_the_environment_points_login_dev_elsewhere(dev_server: Process, tmp_path: Path) -> None:
    done = cli(tmp_path, "login", "--dev", REGION=dev_server.url)
    assert done.returncode == 0, done.stderr
    assert f"set up for {dev_server.url}" in done.stdout


def test_workers_past_one_on_sqlite_is_refused_rather_than_ignored(tmp_path: Path) -> None:
    done = cli(tmp_path, "server", "--workers", "2", "--data-dir", str(tmp_path / "data"), APP_ENV="dev")
    assert done.returncode == 2
    assert "--workers 2 needs PostgreSQL and Redis" in done.stderr  # tests/cli/test_workers.py runs them
