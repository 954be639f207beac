"""A real server process, driven by the real StaticBackend clients.

``live_server`` starts ``python -m sbserver server`` on a free port with its own data directory,
once per pytest-xdist worker and store kind (SQLite always; PostgreSQL too when
``SB_TEST_PG_URL`` is set), and stops it at the end of the session. Its output goes to
``server.log`` in the worker's temporary directory; the tail is shown when it fails to start.

``run_js`` runs a scenario of ``js/run.mjs`` with the npm client ``@staticbackend/js``;
``run_py`` runs a scenario of ``py_client_runner.py`` with the PyPI client ``staticbackend``,
which lives in its own virtualenv (``.venv-pyclient``) because it pins httpx<0.20 and pydantic 1.
Both runners print one JSON line; the fixtures return it decoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.support import LiveServer, Runner, tail
from tests.conftest import STORE_KINDS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
JS_DIR = HERE / "js"
PY_RUNNER = HERE / "py_client_runner.py"
PYCLIENT_VENV = ROOT / ".venv-pyclient"
PYCLIENT_REQUIREMENT = "staticbackend==0.1.1"

START_TIMEOUT = 45.0
RUNNER_TIMEOUT = 60.0

# Variables of the calling shell that would change which store or cache the server uses.
_INHERITED_SETTINGS = (
    "APP_ENV",
    "DATA_STORE",
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PASSWORD",
    "PORT",
    "SB_DATA_DIR",
    "SB_HOST",
    "SB_CREATE_DEV_APP",
    "ACTIVATE_FLAG",
    "KEEP_PERM_COL_NAME",
    "MAIL_PROVIDER",
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _server_env(kind: str, database_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED_SETTINGS}
    env.update(
        {
            "APP_ENV": "dev",
            "JWT_SECRET": "compat-suite-jwt-secret-0123456789abcdef",
            # Many tests share one server and one client address; the login throttle has its own tests.
            "SB_LOGIN_MAX_FAILURES": "1000",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if kind == "pg":
        env.update({"DATA_STORE": "pg", "DATABASE_URL": database_url})
    env.update(extra or {})
    return env


def _wait_until_ready(proc: subprocess.Popen[bytes], url: str, deadline: float) -> str:
    """'' once ``/ping`` answers ``true``; otherwise why not ('exited' or 'timeout')."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return "exited"
        try:
            r = httpx.get(url + "/ping", timeout=2)
            if r.status_code == 200 and r.text == "true":
                return ""
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return "timeout"


@contextlib.contextmanager
def running_server(
    kind: str, workdir: Path, database_url: str = "", extra_env: dict[str, str] | None = None
) -> Iterator[LiveServer]:
    """A server process on ``kind`` with its data under ``workdir`` (and ``extra_env`` set), stopped on exit."""
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "server.log"
    env = _server_env(kind, database_url, extra_env)
    for attempt in range(3):
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "sbserver", "server", "--port", str(port), "--data-dir", str(data_dir)]
        with log_path.open("ab") as log:
            log.write(f"\n--- attempt {attempt + 1}: {' '.join(cmd)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        why = _wait_until_ready(proc, url, time.monotonic() + START_TIMEOUT)
        if not why:
            break
        _stop(proc)
        # Another process may have taken the port between our probe and the server's bind.
        if why == "exited" and "already in use" in tail(log_path, 20).lower():
            continue
        pytest.fail(
            f"the {kind} server did not start ({why}, exit code {proc.returncode}); "
            f"last lines of {log_path}:\n{tail(log_path)}",
            pytrace=False,
        )
    else:
        pytest.fail(f"no free port for the {kind} server; see {log_path}:\n{tail(log_path)}", pytrace=False)
    try:
        yield LiveServer(url=url, kind=kind, log_path=log_path)
    finally:
        _stop(proc)


def _fresh_database(url: str, suffix: str) -> str:
    """Create (again) an empty database next to the one ``url`` names; return its URL."""
    import asyncpg

    base, _, dbname = url.rpartition("/")
    dbname = dbname.split("?", 1)[0]
    fresh = f"{dbname}_{suffix}"

    async def recreate() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", fresh)
            await conn.execute(f'DROP DATABASE IF EXISTS "{fresh}"')
            await conn.execute(f'CREATE DATABASE "{fresh}"')
        finally:
            await conn.close()

    asyncio.run(recreate())
    return f"{base}/{fresh}"


@pytest.fixture(scope="session", params=STORE_KINDS)
def live_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real server process on the parametrised store kind, shared by the worker's compat tests."""
    kind: str = request.param
    database_url = ""
    if kind == "pg":
        # Its own database: the in-process tests of this worker use the pg_url one at the same time.
        database_url = _fresh_database(request.getfixturevalue("pg_url"), "compat")
    workdir = tmp_path_factory.mktemp(f"compat-{kind}")
    with running_server(kind, workdir, database_url) as server:
        yield server


# --- the client runners -------------------------------------------------------------------


@contextlib.contextmanager
def _exclusive(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[None]:
    """Hold a lock shared by every xdist worker of this run (installs must not race)."""
    root = tmp_path_factory.getbasetemp().parent
    with (root / f"{name}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _missing_tool(tool: str) -> None:
    message = f"{tool} is not installed; the compat tests need it"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _run_checked(cmd: list[str], cwd: Path, what: str) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(
            f"{what} failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}",
            pytrace=False,
        )


def _js_ready() -> bool:
    """node_modules holds exactly the versions package.json pins."""
    pinned: dict[str, str] = json.loads((JS_DIR / "package.json").read_text())["dependencies"]
    for name, version in pinned.items():
        try:
            installed = json.loads((JS_DIR / "node_modules" / name / "package.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        if installed.get("version") != version:
            return False
    return True


@pytest.fixture(scope="session")
def js_client_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/compat/js with its node_modules installed (``npm ci`` from the committed lock)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        _missing_tool("node/npm")
    with _exclusive(tmp_path_factory, "npm-install"):
        if not _js_ready():
            lock = JS_DIR / "package-lock.json"
            cmd = [str(npm), "ci" if lock.is_file() else "install", "--no-audit", "--no-fund"]
            _run_checked(cmd, JS_DIR, "installing the JavaScript client")
    return JS_DIR


def _pyclient_python() -> Path:
    return PYCLIENT_VENV / "bin" / "python"


@pytest.fixture(scope="session")
def pyclient_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of .venv-pyclient, created with the PyPI client on first use."""
    marker = PYCLIENT_VENV / ".sbserver-ready"
    with _exclusive(tmp_path_factory, "pyclient-venv"):
        if not marker.is_file() or marker.read_text().strip() != PYCLIENT_REQUIREMENT:
            python3 = shutil.which("python3") or sys.executable
            if PYCLIENT_VENV.exists():
                shutil.rmtree(PYCLIENT_VENV)
            _run_checked([python3, "-m", "venv", str(PYCLIENT_VENV)], ROOT, "creating .venv-pyclient")
            pip = [str(_pyclient_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            _run_checked([*pip, PYCLIENT_REQUIREMENT], ROOT, f"installing {PYCLIENT_REQUIREMENT}")
            marker.write_text(PYCLIENT_REQUIREMENT + "\n")
    return _pyclient_python()


def _run_runner(cmd: list[str], server: LiveServer, scenario: str, params: dict[str, Any]) -> dict[str, Any]:
    argv = [*cmd, scenario, server.url, server.pk, json.dumps(params)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=RUNNER_TIMEOUT, cwd=HERE)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{scenario} timed out: {exc}\nserver log:\n{server.log_tail()}", pytrace=False)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        pytest.fail(
            f"scenario {scenario!r} failed (exit {done.returncode})\nstdout:\n{done.stdout[-4000:]}\n"
            f"stderr:\n{done.stderr[-4000:]}\nserver log:\n{server.log_tail()}",
            pytrace=False,
        )
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError:
        pytest.fail(f"scenario {scenario!r} printed no JSON line:\n{done.stdout[-4000:]}", pytrace=False)
    return result


@pytest.fixture
def run_js(js_client_dir: Path, live_server: LiveServer) -> Runner:
    """``run_js(scenario, **params)`` -> the JSON the Node runner printed."""
    node = shutil.which("node") or "node"

    def run(scenario: str, **params: Any) -> dict[str, Any]:
        return _run_runner([node, str(js_client_dir / "run.mjs")], live_server, scenario, params)

    return run


@pytest.fixture
def run_py(pyclient_python: Path, live_server: LiveServer) -> Runner:
    """``run_py(scenario, **params)`` -> the JSON py_client_runner.py printed."""

    def run(scenario: str, **params: Any) -> dict[str, Any]:
        return _run_runner([str(pyclient_python), str(PY_RUNNER)], live_server, scenario, params)

    return run
