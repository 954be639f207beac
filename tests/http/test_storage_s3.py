"""Files over HTTP on a server whose provider is S3 (moto's server, tests/backends/moto_server.py),
on every store kind: upload, the returned URL serving the bytes from the bucket, listing, usage
and delete; refused uploads leaving no object and no unfinished multipart upload; a missing
bucket stopping the start. The provider itself has its suite in tests/backends/test_file_providers.py.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from sbserver.app import create_app
from sbserver.errors import StoreError
from tests.backends.moto_server import ACCESS_KEY, REGION, SECRET_KEY, Moto
from tests.http.conftest import DEV_PK, Server, make_settings
from tests.http.helpers import (
    ServerFactory,
    admin_token,
    assert_error,
    assert_json,
    auth,
    dev_base,
    make_server,
    register,
)
from tests.http.test_storage import BOUNDARY, multipart, upload, usage

__all__ = ["make_server"]


def s3_settings(moto: Moto, bucket: str, **kw: object) -> dict[str, object]:
    return {
        "storage_provider": "s3",
        "s3_endpoint": moto.endpoint,
        "s3_region": REGION,
        "s3_bucket": bucket,
        "s3_access_key": ACCESS_KEY,
        "s3_secret_key": SECRET_KEY,
        **kw,
    }


def in_bucket(moto: Moto, bucket: str) -> list[str]:
    """Every object and every unfinished multipart upload in the bucket."""
    s3 = moto.client("s3")
    objects = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    uploads = [f"upload:{u['Key']}" for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
    return sorted(objects + uploads)


@asynccontextmanager
async def s3_server(make_server: ServerFactory, moto: Moto, **kw: object) -> AsyncIterator[tuple[Server, str]]:
    bucket = moto.new_bucket()
    async with make_server(**s3_settings(moto, bucket, **kw)) as server:
        yield server, bucket


async def fetch(url: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient() as outside:
        return await outside.get(url, headers=headers)


async def test_upload_list_fetch_and_delete_through_s3(make_server: ServerFactory, moto: Moto) -> None:
    async with s3_server(make_server, moto) as (server, bucket):
        c = server.client
        token = await register(c)  # an account of its own: the listing below holds only its files
        data = os.urandom(9 * 1024 * 1024 + 5)  # two parts of a multipart upload
        body = await upload(c, token, data, "video.mp4")
        base = await dev_base(server)
        record = await server.services.store.file(base, body["id"])
        assert record is not None and record.size == len(data) and record.key.endswith(f"/{body['id']}.mp4")
        assert body["url"] == f"{moto.endpoint}/{bucket}/{record.key}"
        assert in_bucket(moto, bucket) == [record.key]

        got = await fetch(body["url"])  # the URL is the bucket's: S3 serves the bytes, not this server
        assert got.status_code == 200 and got.content == data
        assert got.headers["content-type"] == "video/mp4"
        ranged = await fetch(body["url"], Range="bytes=100-199")
        assert ranged.status_code == 206 and ranged.content == data[100:200]
        assert_error(await c.get(f"/localfs/{record.key}"), 404, "not found")

        small = await upload(c, token, b"hello s3", "note.txt")
        page = assert_json(await c.get("/storage/files", params={"sort": "size"}, headers=auth(token)))
        assert [f["id"] for f in page["results"]] == [small["id"], body["id"]]
        assert (await usage(c, token))["bytes"] == len(data) + 8

        root = auth(server.dev.root_token)
        assert assert_json(await c.delete("/sudostorage/delete", params={"id": body["id"]}, headers=root)) is True
        assert (await fetch(body["url"])).status_code == 404
        assert await server.services.store.file(base, body["id"]) is None
        assert in_bucket(moto, bucket) == [small["url"].removeprefix(f"{moto.endpoint}/{bucket}/")]


async def test_file_urls_start_with_the_cdn_url(make_server: ServerFactory, moto: Moto) -> None:
    async with s3_server(make_server, moto, s3_cdn_url="https://cdn.example.com/files") as (server, bucket):
        body = await upload(server.client, await admin_token(server), b"x", "a.png")
        key = in_bucket(moto, bucket)[0]
        assert body["url"] == f"https://cdn.example.com/files/{key}"


async def test_refused_uploads_leave_nothing_in_the_bucket(make_server: ServerFactory, moto: Moto) -> None:
    limit = 9 * 1024 * 1024  # past the first 8 MiB part
    async with s3_server(make_server, moto, upload_max_bytes=limit) as (server, bucket):
        c = server.client
        h = auth(await admin_token(server))
        base = await dev_base(server)
        before, _ = await server.services.store.file_usage(base, None)  # PostgreSQL's lives for the session
        ctype = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        cases: list[tuple[bytes, str]] = [
            (multipart(("file", "e.txt", b""))[0], "the file is empty"),
            # the name comes after the file: checked once the bytes are in, which are then dropped
            (multipart(("file", "t.txt", b"x" * 1000), ("name", None, b"../etc"))[0], "invalid name"),
            (multipart(("file", "t.txt", os.urandom(70_000)), close=False)[0], "ends before its closing boundary"),
        ]
        for raw, reason in cases:
            line = assert_error(await c.post("/storage/upload", content=raw, headers={**ctype, **h}), 400)
            assert reason in line, line

        # past the limit after a full part has gone up: the multipart upload is aborted
        raw, headers = multipart(("file", "big.bin", os.urandom(limit + 1)))

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the limit is found on the way
            for i in range(0, len(raw), 256 * 1024):
                yield raw[i : i + 256 * 1024]

        r = await c.post("/storage/upload", content=chunked(), headers={**headers, **h})
        assert_error(r, 400, startswith="file size exeeded your limit")
        assert in_bucket(moto, bucket) == []
        count, _ = await server.services.store.file_usage(base, None)
        assert count == before


@pytest.mark.parametrize("create", [False, True])
async def test_a_missing_bucket_stops_the_start_unless_it_may_be_created(
    tmp_path: Path, moto: Moto, create: bool
) -> None:
    bucket = "sb-missing-" + os.urandom(6).hex()
    settings = make_settings("sqlite", tmp_path, None, **s3_settings(moto, bucket, s3_create_bucket=create))
    app = create_app(settings)
    app.state.services.tenancy.announce = lambda text: None
    if not create:
        with pytest.raises(StoreError, match=f"S3 bucket '{bucket}' at .* does not exist: create it, or set"):
            async with app.router.lifespan_context(app):
                pass
        return
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        dev = await app.state.services.tenancy.dev_app()
        assert dev is not None
        pk = {"SB-PUBLIC-KEY": DEV_PK}
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=pk) as c:
            r = await c.post("/login", json={"email": dev.email, "password": dev.password})
            await upload(c, assert_json(r), b"into a new bucket", "n.txt")
    assert len(in_bucket(moto, bucket)) == 1
