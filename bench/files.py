"""File upload and download throughput through the HTTP API, on the local provider and on S3
(moto's standalone server, started here), against baselines measured in the same run.

    python bench/files.py                 # a 50 MB file, median of 3 runs
    python bench/files.py --mb 5 --runs 1

Rows (MB/s = 10^6 bytes per second, upload and download):

* ``local: raw disk``: the same bytes written to a file in the data directory's file system
  (fsync, as the provider does) and read back. The ceiling of the local provider.
* ``local: sbserver``: ``POST /storage/upload`` (multipart, streamed to the provider), then
  ``GET`` of the returned URL (``/localfs/<key>``, served by sbserver).
* ``s3: raw boto3``: ``put_object`` / ``get_object`` of the same bytes to the same moto server.
  The ceiling of the S3 provider on this S3 server.
* ``s3: sbserver``: the same upload through sbserver (a multipart upload to the bucket in 8 MiB
  parts); the download is the returned URL, which the bucket serves (sbserver does not proxy S3).

sbserver runs on CPU 0; this client and moto share CPU 1. Every download is checked byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx

from sbserver.services.tenancy import DEV_EMAIL, DEV_PASSWORD, DEV_PK

ROOT = Path(__file__).resolve().parent.parent
KEY, SECRET, REGION = "bench-key", "bench-secret", "us-east-1"
BOUNDARY = "sb-bench-boundary"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited at start (code {proc.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not answer {url} within {timeout:.0f} s")


@contextmanager
def process(args: list[str], env: dict[str, str], ready_url: str, what: str, log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(ready_url, proc, what)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def pinned(cpu: int, args: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *args] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else args


@contextmanager
def moto_server(scratch: Path) -> Iterator[str]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
    args = pinned(1, [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)])
    with process(args, env, f"{endpoint}/moto-api/", "moto server", scratch / "moto.log"):
        yield endpoint


@contextmanager
def sbserver(scratch: Path, name: str, extra_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    backend = shutil.which("backend", path=str(ROOT / ".venv" / "bin")) or "backend"
    env = dict(
        os.environ,
        APP_ENV="dev",
        JWT_SECRET="bench-" + uuid.uuid4().hex,
        SB_UPLOAD_MAX_BYTES=str(10**10),
        **extra_env,
    )
    data = scratch / f"data-{name}"
    args = pinned(0, [backend, "server", "--port", str(port), "--data-dir", str(data), "--no-log"])
    with process(args, env, f"http://127.0.0.1:{port}/ping", f"sbserver ({name})", scratch / f"sbserver-{name}.log"):
        yield f"http://127.0.0.1:{port}"


def multipart(data: bytes) -> tuple[bytes, dict[str, str]]:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="bench.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode(), {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def check(got: bytes, digest: str, what: str) -> None:
    if hashlib.sha256(got).hexdigest() != digest:
        raise SystemExit(f"{what}: the downloaded bytes differ from the uploaded ones")


def through_sbserver(url: str, data: bytes, digest: str, runs: int) -> tuple[list[float], list[float]]:
    body, headers = multipart(data)
    up, down = [], []
    with httpx.Client(base_url=url, headers={"SB-PUBLIC-KEY": DEV_PK}, timeout=600) as c:
        r = c.post("/login", json={"email": DEV_EMAIL, "password": DEV_PASSWORD})
        r.raise_for_status()
        headers["Authorization"] = f"Bearer {r.json()}"
        for _ in range(runs):
            seconds, r = timed(lambda: c.post("/storage/upload", content=body, headers=headers))
            if r.status_code != 200:
                raise SystemExit(f"upload to {url} failed: {r.status_code} {r.text.strip()}")
            up.append(seconds)
            file_url = r.json()["url"]
            with httpx.Client(timeout=600) as outside:  # the file's own URL: sbserver's or the bucket's
                seconds, got = timed(lambda u=file_url: outside.get(u).raise_for_status().content)
            check(got, digest, file_url)
            down.append(seconds)
    return up, down


def raw_disk(directory: Path, data: bytes, digest: str, runs: int) -> tuple[list[float], list[float]]:
    directory.mkdir(parents=True, exist_ok=True)
    up, down = [], []
    for i in range(runs):
        path = directory / f"raw-{i}.bin"

        def write(path: Path = path) -> None:
            with path.open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())

        up.append(timed(write)[0])
        seconds, got = timed(path.read_bytes)  # from the page cache, as a just-uploaded file is served
        check(got, digest, str(path))
        down.append(seconds)
        path.unlink()
    return up, down


def raw_boto3(endpoint: str, data: bytes, digest: str, runs: int) -> tuple[list[float], list[float]]:
    s3 = boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id=KEY, aws_secret_access_key=SECRET
    )
    s3.create_bucket(Bucket="raw-bench")
    up, down = [], []
    for i in range(runs):
        key = f"raw/{i}.bin"
        up.append(timed(lambda key=key: s3.put_object(Bucket="raw-bench", Key=key, Body=data))[0])
        seconds, got = timed(lambda key=key: s3.get_object(Bucket="raw-bench", Key=key)["Body"].read())
        check(got, digest, key)
        down.append(seconds)
    return up, down


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=50, help="file size in MB (10^6 bytes; default 50)")
    ap.add_argument("--runs", type=int, default=3, help="uploads and downloads per row; the median is shown")
    ap.add_argument("--only", choices=["local", "s3"], help="measure one provider only")
    a = ap.parse_args()
    size = a.mb * 1_000_000
    data = os.urandom(size)
    digest = hashlib.sha256(data).hexdigest()
    scratch = Path(tempfile.mkdtemp(prefix="sb-bench-files-"))
    rows: list[tuple[str, list[float], list[float]]] = []
    try:
        if a.only in (None, "local"):
            rows.append(("local: raw disk", *raw_disk(scratch / "raw", data, digest, a.runs)))
            with sbserver(scratch, "local", {}) as url:
                rows.append(("local: sbserver", *through_sbserver(url, data, digest, a.runs)))
        if a.only in (None, "s3"):
            with moto_server(scratch) as endpoint:
                rows.append(("s3: raw boto3", *raw_boto3(endpoint, data, digest, a.runs)))
                s3_env = {
                    "STORAGE_PROVIDER": "s3",
                    "S3_ENDPOINT": endpoint,
                    "S3_REGION": REGION,
                    "S3_BUCKET": "sb-bench",
                    "S3_ACCESSKEY": KEY,
                    "S3_SECRETKEY": SECRET,
                    "SB_S3_CREATE_BUCKET": "1",
                }
                with sbserver(scratch, "s3", s3_env) as url:
                    rows.append(("s3: sbserver", *through_sbserver(url, data, digest, a.runs)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"file of {a.mb} MB, median of {a.runs} run(s); MB/s = 10^6 bytes/s")
    print(f"{'':18} {'upload MB/s':>12} {'download MB/s':>14} {'upload vs raw':>14} {'download vs raw':>16}")
    baseline: tuple[float, float] = (0.0, 0.0)
    for name, up, down in rows:
        up_rate, down_rate = size / 1e6 / statistics.median(up), size / 1e6 / statistics.median(down)
        if "raw" in name:
            baseline = (up_rate, down_rate)
            ratios = ("", "")
        else:
            ratios = (f"{up_rate / baseline[0]:.2f}x", f"{down_rate / baseline[1]:.2f}x")
        print(f"{name:18} {up_rate:12.1f} {down_rate:14.1f} {ratios[0]:>14} {ratios[1]:>16}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
