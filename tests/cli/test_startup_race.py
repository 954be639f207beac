"""Processes started at the same moment on a fresh PostgreSQL database: each creates the schema
and the development app if absent, and none dies because another did it first."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.compat.conftest import START_TIMEOUT, _free_port, _fresh_database, _server_env, _stop, _wait_until_ready

PROCESSES = 3


@pytest.mark.parametrize("round_", range(2))
def test_three_processes_start_together_on_a_fresh_database(
    pg_url: str, redis_url: str, tmp_path: Path, round_: int
) -> None:
    env = _server_env("pg", _fresh_database(pg_url, f"startrace{round_}"))
    env["REDIS_URL"] = redis_url
    ports = [_free_port() for _ in range(PROCESSES)]
    procs, logs = [], []
    for i, port in enumerate(ports):
        log = (tmp_path / f"p{i}.log").open("wb")
        logs.append(log)
        cmd = [sys.executable, "-m", "sbserver", "server", "--port", str(port), "--data-dir", str(tmp_path / f"d{i}")]
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
    try:
        deadline = time.monotonic() + START_TIMEOUT
        for i, (proc, port) in enumerate(zip(procs, ports, strict=True)):
            why = _wait_until_ready(proc, f"http://127.0.0.1:{port}", deadline)
            assert not why, f"process {i} did not start ({why}):\n{(tmp_path / f'p{i}.log').read_text()[-3000:]}"
        tokens = set()
        for port in ports:
            r = httpx.post(
                f"http://127.0.0.1:{port}/login",
                json={"email": "admin@dev.com", "password": "devpw1234"},
                headers={"SB-PUBLIC-KEY": "dev_memory_pk"},
            )
            assert r.status_code == 200, r.text
            tokens.add(r.json())
        assert len(tokens) == PROCESSES  # three sessions of the one admin every process sees
    finally:
        for proc in procs:
            _stop(proc)
        for log in logs:
            log.close()
    for i in range(PROCESSES):
        text = (tmp_path / f"p{i}.log").read_text()
        assert "Traceback" not in text and "Conflict" not in text, text[-3000:]
