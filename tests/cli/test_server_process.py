"""The ``backend server`` process itself: it survives clients that vanish mid-response."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_survives_clients_that_reset_connections(tmp_path: Path) -> None:
    port = _free_port()
    env = dict(os.environ, JWT_SECRET="cli-test", APP_ENV="dev")
    for key in ("DATA_STORE", "DATABASE_URL", "REDIS_URL", "REDIS_HOST"):
        env.pop(key, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sbserver", "server", "--port", str(port), "--data-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                if httpx.get(url + "/ping").text == "true":
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        request = b"GET /db/pub_x?size=500 HTTP/1.1\r\nHost: x\r\nSB-PUBLIC-KEY: dev_memory_pk\r\n\r\n" * 5
        for i in range(300):  # send, then vanish (half the time with a reset) before the answers are read
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(request * 10)
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        time.sleep(0.5)
        assert proc.poll() is None, f"the server died (exit code {proc.returncode})"
        assert httpx.get(url + "/ping").text == "true"
    finally:
        proc.terminate()
        proc.wait(10)
