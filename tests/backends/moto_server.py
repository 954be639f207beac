"""A real S3 and SES server for the tests: moto's standalone server (``moto[server]``), a
subprocess on a free local port, one per test session (so one per xdist worker).

``moto`` (S3) and ``moto_ses`` (SES) are session fixtures (a plugin of tests/conftest.py): each
starts a server, waits until it answers and kills it at the end. They FAIL when moto cannot
start: the S3 and SES suites never skip silently. ``Moto`` gives boto3 clients for the server and
reads what it holds (``sent_emails``: the raw messages SES accepted, from moto's
``/moto-api/data.json``). SES has a server of its own because that page dumps every model of the
server and fails (500) once S3 holds some states (it raised NoSuchBucket after the S3 suite).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sbserver.backends.aws import session
from tests.backends.smtp_inbox import free_port

REGION = "us-east-1"
ACCESS_KEY, SECRET_KEY = "testing-key", "testing-secret"
START_TIMEOUT = 30.0


@dataclass
class Moto:
    endpoint: str
    process: subprocess.Popen[bytes]
    log: Path

    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        """A client of ``service`` on this server (one per service, kept)."""
        if service not in self.clients:
            self.clients[service] = session().client(
                service,
                endpoint_url=self.endpoint,
                region_name=REGION,
                aws_access_key_id=ACCESS_KEY,
                aws_secret_access_key=SECRET_KEY,
            )
        return self.clients[service]

    def new_bucket(self) -> str:
        """A fresh empty bucket (tests never share one)."""
        name = "sb-test-" + uuid.uuid4().hex[:16]
        self.client("s3").create_bucket(Bucket=name)
        return name

    def sent_emails(self) -> list[dict[str, Any]]:
        """Every raw message SES accepted so far, oldest first: ``{source, destinations, raw_data}``."""
        with urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=10) as answer:
            data = json.load(answer)
        return list(data.get("ses", {}).get("RawMessage", []))


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def start_moto(log: Path) -> Moto:
    """Start moto's server on a free port and wait until it answers; ``RuntimeError`` with its log
    when it exits or does not answer within ``START_TIMEOUT`` seconds."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # a terminal's Ctrl-C reaches the tests, which stop it in order
        )
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers(endpoint):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_moto(process)
            raise RuntimeError(f"moto server did not start on {endpoint}: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    return Moto(endpoint, process, log)


def stop_moto(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _serve(tmp_path_factory: pytest.TempPathFactory, what: str) -> Iterator[Moto]:
    try:
        server = start_moto(tmp_path_factory.mktemp("moto") / f"moto-{what}.log")
    except (OSError, RuntimeError) as exc:
        pytest.fail(f"moto server (moto[server], the {what} test server) cannot start: {exc}")
    try:
        yield server
    finally:
        stop_moto(server.process)


@pytest.fixture(scope="session", name="moto")
def moto_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    yield from _serve(tmp_path_factory, "S3")


@pytest.fixture(scope="session", name="moto_ses")
def moto_ses_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    yield from _serve(tmp_path_factory, "SES")
