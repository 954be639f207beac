"""The file provider suite, run on every provider: ``local`` (a directory) and ``s3`` (a bucket of
moto's standalone S3 server, started by tests/backends/moto_server.py; nothing is mocked).

Byte-exact round trips of several MB (several multipart parts on S3), ranges, stat and ETag,
delete, puts that fail or are cancelled half-way leaving nothing (no file, no temporary, no object,
no unfinished multipart upload), keys of any other shape refused. Then what is one provider's
own: local's root confinement, S3's bucket check at start, ACL, URLs and settings.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sbserver.backends.files import create_file_provider
from sbserver.backends.files.base import FileProvider, InvalidKey
from sbserver.backends.files.local import LocalFiles
from sbserver.backends.files.s3 import S3Files
from sbserver.errors import StoreError
from sbserver.settings import from_env
from tests.backends.moto_server import ACCESS_KEY, REGION, SECRET_KEY, Moto
from tests.backends.smtp_inbox import free_port

MiB = 1024 * 1024
PART = 5 * MiB  # the smallest part S3 takes: a few MB make several parts


def s3_files(moto: Moto, bucket: str, **kw: Any) -> S3Files:
    return S3Files(
        bucket,
        endpoint=moto.endpoint,
        region=REGION,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        part_size=PART,
        **kw,
    )


@dataclass
class Provider:
    files: FileProvider
    leftovers: Callable[[], list[str]]  # everything the provider holds: stored files, temporaries, uploads


@pytest.fixture(params=["local", "s3"])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Provider]:
    if request.param == "local":
        root = tmp_path / "files"

        def on_disk() -> list[str]:
            return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []

        yield Provider(LocalFiles(root), on_disk)
        return
    server: Moto = request.getfixturevalue("moto")
    bucket = server.new_bucket()
    s3 = server.client("s3")

    def in_bucket() -> list[str]:
        objects = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        uploads = [f"upload:{u['Key']}" for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
        return sorted(objects + uploads)

    files = s3_files(server, bucket)
    yield Provider(files, in_bucket)
    files.client.close()


async def stream(data: bytes, piece: int = 100_003) -> AsyncIterator[bytes]:
    for i in range(0, len(data), piece):
        yield data[i : i + piece]


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in chunks])


# conformance: every provider


@pytest.mark.parametrize("size", [1, 1000, 2 * PART + 7, 3 * PART])
async def test_round_trip_is_byte_exact(provider: Provider, size: int) -> None:
    files, data, key = provider.files, os.urandom(size), "app/acct/f1.bin"
    assert await files.stat(key) is None
    assert await files.put(key, stream(data), "application/octet-stream") == size
    stat = await files.stat(key)
    assert stat is not None and stat.size == size
    assert stat.etag.startswith('"') and stat.etag.endswith('"') and len(stat.etag) > 2
    assert await collect(files.get(key)) == data
    assert provider.leftovers() == ["app/acct/f1.bin"]


async def test_a_put_of_chunks_of_every_size_keeps_their_order(provider: Provider) -> None:
    data = os.urandom(PART + 3 * MiB)
    pieces = [data[:1], data[1:PART], data[PART : PART + 17], data[PART + 17 :]]

    async def uneven() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    assert await provider.files.put("app/acct/uneven.bin", uneven(), "application/octet-stream") == len(data)
    assert await collect(provider.files.get("app/acct/uneven.bin")) == data


async def test_ranges(provider: Provider) -> None:
    files, data, key = provider.files, os.urandom(PART + MiB + 11), "app/acct/r.bin"
    await files.put(key, stream(data), "application/octet-stream")
    assert await collect(files.get(key, 1000, 2_000_000)) == data[1000:2_000_000]
    assert await collect(files.get(key, len(data) - 3)) == data[-3:]
    assert await collect(files.get(key, 0, 1)) == data[:1]
    assert await collect(files.get(key, PART - 5, PART + 5)) == data[PART - 5 : PART + 5]
    assert await collect(files.get(key, 7, 7)) == b""
    assert await collect(files.get(key, len(data))) == b""
    assert await collect(files.get(key, 10, len(data) + 100)) == data[10:]


async def test_stat_etag_changes_with_the_bytes(provider: Provider) -> None:
    files = provider.files
    await files.put("app/acct/a.txt", stream(b"first version"), "text/plain")
    first = await files.stat("app/acct/a.txt")
    await files.put("app/acct/a.txt", stream(b"second, longer version"), "text/plain")
    second = await files.stat("app/acct/a.txt")
    assert first is not None and second is not None
    assert (first.size, second.size) == (13, 22) and first.etag != second.etag
    assert await collect(files.get("app/acct/a.txt")) == b"second, longer version"


async def test_delete(provider: Provider) -> None:
    files = provider.files
    await files.put("app/acct/d.txt", stream(b"bytes"), "text/plain")
    await files.put("app/acct/keep.txt", stream(b"kept"), "text/plain")
    assert await files.delete("app/acct/d.txt") is True
    assert await files.delete("app/acct/d.txt") is False
    assert await files.delete("app/other/never.txt") is False
    assert await files.stat("app/acct/d.txt") is None
    with pytest.raises(FileNotFoundError):
        await collect(files.get("app/acct/d.txt"))
    assert provider.leftovers() == ["app/acct/keep.txt"]


@pytest.mark.parametrize("fails_after", [0, 2 * MiB, 2 * PART + MiB])
async def test_a_failed_put_leaves_nothing(provider: Provider, fails_after: int) -> None:
    """A client going away (the chunks raise) before anything, within the first part, or after
    two parts are uploaded: no file, no temporary, no object, no unfinished upload."""

    async def broken() -> AsyncIterator[bytes]:
        async for chunk in stream(os.urandom(fails_after), MiB):
            yield chunk
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError, match="went away"):
        await provider.files.put("app/acct/f2.bin", broken(), "application/octet-stream")
    assert await provider.files.stat("app/acct/f2.bin") is None
    assert provider.leftovers() == []


async def test_a_failed_put_keeps_the_file_it_would_have_replaced(provider: Provider) -> None:
    files = provider.files
    await files.put("app/acct/same.bin", stream(b"old bytes"), "application/octet-stream")

    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(PART + 1)
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError):
        await files.put("app/acct/same.bin", broken(), "application/octet-stream")
    assert await collect(files.get("app/acct/same.bin")) == b"old bytes"
    assert provider.leftovers() == ["app/acct/same.bin"]


async def test_a_cancelled_put_leaves_nothing(provider: Provider) -> None:
    sent = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield os.urandom(PART)
        yield os.urandom(PART)  # a full part: on S3 the upload has begun
        sent.set()
        await asyncio.Event().wait()  # the client stalls until it is cut off
        yield b""

    put = asyncio.create_task(provider.files.put("app/acct/c.bin", stalled(), "application/octet-stream"))
    await sent.wait()
    put.cancel()
    with pytest.raises(asyncio.CancelledError):
        await put
    assert provider.leftovers() == []


@pytest.mark.parametrize(
    "key",
    [
        "../x/y",
        "app/../../etc/passwd",
        "app/acct/..",
        "app/acct",
        "/app/acct/f",
        "app//f",
        "app/acct/f/g",
        "app/acct/.tmp",
        "app\\acct\\f",
        ".tmp/a/b",
        "app/acct/f\x00",
        "app/acct/f g",
        "",
    ],
)
async def test_keys_of_another_shape_are_refused(provider: Provider, key: str) -> None:
    files = provider.files
    with pytest.raises(InvalidKey):
        await files.put(key, stream(b"data"), "text/plain")
    with pytest.raises(InvalidKey):
        await files.stat(key)
    with pytest.raises(InvalidKey):
        await collect(files.get(key))
    with pytest.raises(InvalidKey):
        await files.delete(key)
    assert provider.leftovers() == []


async def test_the_url_of_a_file(provider: Provider) -> None:
    url = provider.files.url("app/acct/f1.bin", "http://h:1/")
    if provider.files.serves_files:
        assert url == "http://h:1/localfs/app/acct/f1.bin"
    else:
        assert isinstance(provider.files, S3Files)
        assert url == f"{provider.files.endpoint}/{provider.files.bucket}/app/acct/f1.bin"


# local only


async def test_local_keeps_no_temporary(tmp_path: Path) -> None:
    files = LocalFiles(tmp_path / "files")
    await files.put("app/acct/f.bin", stream(os.urandom(3 * MiB)), "application/octet-stream")
    assert list((tmp_path / "files" / ".tmp").iterdir()) == []
    assert (tmp_path / "files" / "app" / "acct" / "f.bin").stat().st_size == 3 * MiB


async def test_local_does_not_follow_a_symlink_out_of_its_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    root = tmp_path / "files"
    (root / "app").mkdir(parents=True)
    (root / "app" / "acct").symlink_to(outside)
    files = LocalFiles(root)
    assert await files.stat("app/acct/secret.txt") is None


# S3 only


async def test_s3_objects_get_their_type_and_the_acl(moto: Moto) -> None:
    bucket, s3 = moto.new_bucket(), moto.client("s3")
    files = s3_files(moto, bucket)
    await files.put("app/acct/small.png", stream(b"\x89PNG..."), "image/png")
    await files.put("app/acct/big.pdf", stream(os.urandom(PART + 1)), "application/pdf")
    for key, ctype in (("app/acct/small.png", "image/png"), ("app/acct/big.pdf", "application/pdf")):
        assert s3.head_object(Bucket=bucket, Key=key)["ContentType"] == ctype
        grants = s3.get_object_acl(Bucket=bucket, Key=key)["Grants"]
        assert any(g["Permission"] == "READ" and "AllUsers" in g["Grantee"].get("URI", "") for g in grants)
    private = s3_files(moto, bucket, acl=None)
    await private.put("app/acct/private.txt", stream(b"p"), "text/plain")
    grants = s3.get_object_acl(Bucket=bucket, Key="app/acct/private.txt")["Grants"]
    assert not any("AllUsers" in g["Grantee"].get("URI", "") for g in grants)


async def test_s3_checks_the_bucket_at_start_and_creates_it_only_when_told(moto: Moto) -> None:
    await s3_files(moto, moto.new_bucket()).open()
    missing = "sb-missing-" + os.urandom(6).hex()
    with pytest.raises(StoreError, match="does not exist: create it, or set SB_S3_CREATE_BUCKET=1"):
        await s3_files(moto, missing).open()
    created = s3_files(moto, missing, create_bucket=True)
    await created.open()
    await created.put("app/acct/x.txt", stream(b"x"), "text/plain")
    assert [o["Key"] for o in moto.client("s3").list_objects_v2(Bucket=missing)["Contents"]] == ["app/acct/x.txt"]
    await created.close()


async def test_s3_unreachable_is_a_store_error() -> None:
    files = S3Files("bucket", endpoint=f"http://127.0.0.1:{free_port()}", access_key="k", secret_key="s", region=REGION)
    with pytest.raises(StoreError, match="S3 bucket check failed"):
        await files.open()
    with pytest.raises(StoreError, match="S3 put failed"):
        await files.put("app/acct/x.txt", stream(b"x"), "text/plain")


def test_s3_urls() -> None:
    key = "app/acct/f.png"
    cdn = S3Files("b", region="eu-west-3", cdn_url="https://cdn.example.com/files/", access_key="k", secret_key="s")
    assert cdn.url(key, "http://ignored") == "https://cdn.example.com/files/app/acct/f.png"
    assert S3Files("b", region="eu-west-3").url(key, "") == "https://b.s3.eu-west-3.amazonaws.com/app/acct/f.png"
    assert S3Files("b", endpoint="http://minio:9000/").url(key, "") == "http://minio:9000/b/app/acct/f.png"


S3_ENV = {"STORAGE_PROVIDER": "s3", "S3_BUCKET": "files", "S3_REGION": "eu-west-3"}


def test_settings_choose_the_provider(tmp_path: Path) -> None:
    assert isinstance(create_file_provider(from_env({}, data_dir=tmp_path)), LocalFiles)
    env = {**S3_ENV, "S3_ENDPOINT": "minio.example.com:9000", "S3_ACCESSKEY": "k", "S3_SECRETKEY": "s"}
    files = create_file_provider(from_env({**env, "S3_CDN_URL": "https://cdn.example.com/"}, data_dir=tmp_path))
    assert isinstance(files, S3Files) and not files.serves_files
    assert (files.bucket, files.region, files.endpoint, files.acl) == (
        "files",
        "eu-west-3",
        "https://minio.example.com:9000",
        "public-read",
    )
    assert files.url("a/b/c.txt", "") == "https://cdn.example.com/a/b/c.txt"
    files = create_file_provider(
        from_env({"SB_STORAGE_PROVIDER": "S3", **S3_ENV, "SB_S3_ACL": "none"}, data_dir=tmp_path)
    )
    assert isinstance(files, S3Files) and files.acl is None and files.endpoint == ""


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"STORAGE_PROVIDER": "gcs"}, "unsupported SB_STORAGE_PROVIDER='gcs': use local"),
        ({"STORAGE_PROVIDER": "s3"}, "needs S3_BUCKET"),
        ({"STORAGE_PROVIDER": "s3", "S3_BUCKET": "b"}, "needs S3_REGION (AWS) or S3_ENDPOINT"),
        ({**S3_ENV, "S3_ACCESSKEY": "k"}, "S3_ACCESSKEY and S3_SECRETKEY go together"),
        ({**S3_ENV, "S3_ENDPOINT": "ftp://x"}, "invalid S3_ENDPOINT"),
        ({**S3_ENV, "S3_CDN_URL": "cdn.example.com"}, "invalid S3_CDN_URL"),
        ({**S3_ENV, "SB_S3_ACL": "public"}, "unsupported SB_S3_ACL"),
    ],
)
def test_settings_refuse_an_incomplete_s3_setup_in_one_line(tmp_path: Path, env: dict[str, str], reason: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        from_env(env, data_dir=tmp_path)
    assert reason in str(stopped.value) and "\n" not in str(stopped.value)
