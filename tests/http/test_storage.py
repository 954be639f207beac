"""Files over HTTP on every store kind: spec 09 items 103-105, upload and download of a few MB
byte for byte, Range, ETag, content types, listing, usage, delete, permissions across accounts
and apps, and bad input that stores nothing (no record, no bytes on disk)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sbserver.services.files import MAX_NAME
from tests.http.conftest import Server
from tests.http.helpers import (
    ServerFactory,
    accounts_ab,
    admin_token,
    assert_error,
    assert_json,
    auth,
    dev_base,
    extra_client,
    make_server,
    register,
)
from tests.http.test_documents_safety import second_app

__all__ = ["make_server"]

BOUNDARY = "sb-test-boundary-7f3a"


def multipart(*parts: tuple[str, str | None, bytes], close: bool = True) -> tuple[bytes, dict[str, str]]:
    """A raw multipart body of (field name, file name or None, bytes) parts, in that order."""
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    if close:
        out += f"--{BOUNDARY}--\r\n".encode()
    return out, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


async def upload(
    c: httpx.AsyncClient, token: str, data: bytes, filename: str = "report.pdf", name: str | None = None
) -> dict[str, Any]:
    form = {"name": name} if name is not None else None
    r = await c.post("/storage/upload", files={"file": (filename, data)}, data=form, headers=auth(token))
    body = assert_json(r)
    assert set(body) == {"id", "url"}
    return body


def local_path(url: str) -> str:
    assert url.startswith("http://testserver/localfs/"), url
    return url.removeprefix("http://testserver")


def stored_files(server: Server) -> list[str]:
    root = server.services.settings.files_dir
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def usage(c: httpx.AsyncClient, token: str) -> dict[str, Any]:
    body = assert_json(await c.get("/storage/usage", headers=auth(token)))
    assert isinstance(body, dict)
    return body


async def everything_stored(server: Server) -> tuple[int, list[str]]:
    """Every record of the dev app (count) and every file on disk: to prove a refusal kept nothing."""
    count, _ = await server.services.store.file_usage(await dev_base(server), None)
    return count, stored_files(server)


# Spec 09


async def test_103_upload_returns_id_and_url_and_the_file_is_retrievable(server: Server) -> None:
    c = server.client
    token = await admin_token(server)
    body = await upload(c, token, b"upstream TestFileUpload\n", "upload.test")
    assert body["url"].endswith(".test")
    r = await c.get(local_path(body["url"]))
    assert r.status_code == 200 and r.content == b"upstream TestFileUpload\n"


async def test_104_sudo_delete_removes_the_file(server: Server) -> None:
    c = server.client
    before = await everything_stored(server)
    body = await upload(c, await admin_token(server), b"to delete", "upload.test")
    root = auth(server.dev.root_token)
    assert assert_json(await c.delete("/sudostorage/delete", params={"id": body["id"]}, headers=root)) is True
    assert_error(await c.get(local_path(body["url"])), 404, "not found")
    assert await everything_stored(server) == before
    other = await upload(c, await admin_token(server), b"deleted with GET", "g.txt")
    assert assert_json(await c.get("/sudostorage/delete", params={"id": other["id"]}, headers=root)) is True
    assert_error(await c.get(local_path(other["url"])), 404)


async def test_105_upload_without_a_multipart_body_is_refused(server: Server) -> None:
    c = server.client
    token = await admin_token(server)
    before = await everything_stored(server)
    r = await c.post("/storage/upload", json={"file": "abc"}, headers=auth(token))
    assert_error(r, 400, 'invalid upload: expected a multipart/form-data body with the file in a part named "file"')
    assert await everything_stored(server) == before


# Round trip, ranges, validators, types


async def test_round_trip_of_a_few_megabytes_is_byte_exact(server: Server) -> None:
    c = server.client
    token = await admin_token(server)
    data = os.urandom(4 * 1024 * 1024 + 13)
    body = await upload(c, token, data, "blob.bin")
    r = await c.get(local_path(body["url"]))
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["accept-ranges"] == "bytes"
    base = await dev_base(server)
    account = (await server.services.store.file(base, body["id"])).account_id
    assert body["url"] == f"http://testserver/localfs/{base.name}/{account}/{body['id']}.bin"


async def test_a_file_streamed_without_content_length_is_stored(server: Server) -> None:
    c = server.client
    data = os.urandom(1_500_000)
    raw, headers = multipart(("name", None, b"chunked.bin"), ("file", "x.bin", data))

    async def chunked() -> AsyncIterator[bytes]:
        for i in range(0, len(raw), 65_536):
            yield raw[i : i + 65_536]

    r = await c.post("/storage/upload", content=chunked(), headers={**headers, **auth(await admin_token(server))})
    body = assert_json(r)
    assert (await c.get(local_path(body["url"]))).content == data


async def test_ranges(server: Server) -> None:
    c = server.client
    data = bytes(range(256)) * 40  # 10240 bytes
    path = local_path((await upload(c, await admin_token(server), data, "r.bin"))["url"])
    size = len(data)
    for header, start, end in (
        ("bytes=0-99", 0, 100),
        ("bytes=100-", 100, size),
        ("bytes=-10", size - 10, size),
        ("bytes=10000-20000", 10000, size),
        ("bytes=-999999", 0, size),
    ):
        r = await c.get(path, headers={"Range": header})
        assert r.status_code == 206, header
        assert r.content == data[start:end], header
        assert r.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"
        assert r.headers["content-length"] == str(end - start)
    for header in ("bytes=10240-", "bytes=99999-100000", "bytes=-0"):
        r = await c.get(path, headers={"Range": header})
        assert r.status_code == 416, header
        assert r.headers["content-range"] == f"bytes */{size}"
    for header in ("bytes=0-1,5-6", "items=0-1", "bytes=5-1", "bytes=-"):  # ignored: the whole file
        r = await c.get(path, headers={"Range": header})
        assert r.status_code == 200 and r.content == data, header
    etag = (await c.get(path)).headers["etag"]
    r = await c.get(path, headers={"Range": "bytes=0-0", "If-Range": etag})
    assert r.status_code == 206 and r.content == data[:1]
    r = await c.get(path, headers={"Range": "bytes=0-0", "If-Range": '"stale"'})
    assert r.status_code == 200 and r.content == data


async def test_etag_if_none_match_and_head(server: Server) -> None:
    c = server.client
    path = local_path((await upload(c, await admin_token(server), b"cache me", "c.txt"))["url"])
    r = await c.get(path)
    etag = r.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert r.headers["cache-control"] == "no-cache"
    for value in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        r = await c.get(path, headers={"If-None-Match": value})
        assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag, value
    assert (await c.get(path, headers={"If-None-Match": '"other"'})).status_code == 200
    r = await c.head(path)
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "8"


@pytest.mark.parametrize(
    ("filename", "ctype", "disposition"),
    [
        ("photo.png", "image/png", "inline"),
        ("doc.pdf", "application/pdf", "inline"),
        ("notes.txt", "text/plain", "inline"),
        ("page.html", "text/html", "attachment"),
        ("logo.svg", "image/svg+xml", "attachment"),
        ("noext", "application/octet-stream", "inline"),
        ("weird.t@x", "application/octet-stream", "inline"),
    ],
)
async def test_content_types_and_disposition(server: Server, filename: str, ctype: str, disposition: str) -> None:
    c = server.client
    r = await c.get(local_path((await upload(c, await admin_token(server), b"<b>x</b>", filename))["url"]))
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] == ctype
    assert r.headers["content-disposition"].startswith(f'{disposition}; filename="')
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in r.headers["content-security-policy"]


async def test_content_disposition_names_are_safe(server: Server) -> None:
    c = server.client
    body = await upload(c, await admin_token(server), b"x", "a.txt", name='résumé "final"; x=1.txt')
    r = await c.get(local_path(body["url"]))
    value = r.headers["content-disposition"]
    assert value.startswith("inline; filename=\"r_sum_ _final__ x_1.txt\"; filename*=UTF-8''")
    assert "r%C3%A9sum%C3%A9%20%22final%22%3B%20x%3D1.txt" in value


# Listing, usage, names


async def test_listing_paging_sorting_and_usage(server: Server) -> None:
    c = server.client
    token = await register(c)  # an account of its own: the PostgreSQL database lives for the session
    sizes = [300, 100, 200]
    ids = [(await upload(c, token, b"x" * n, f"f{n}.bin"))["id"] for n in sizes]
    page = assert_json(await c.get("/storage/files", headers=auth(token)))
    assert page["total"] == 3 and page["page"] == 1 and [f["id"] for f in page["results"]] == ids
    first = page["results"][0]
    assert first["size"] == 300 and first["name"] == "f300.bin" and first["uploaded"].endswith("Z")
    assert first["key"].endswith(f"/{ids[0]}.bin") and first["url"].endswith(first["key"])
    r = await c.get("/storage/files", params={"sort": "size"}, headers=auth(token))
    assert [f["size"] for f in assert_json(r)["results"]] == [100, 200, 300]
    r = await c.get("/storage/files", params={"sort": "size", "desc": "true"}, headers=auth(token))
    assert [f["size"] for f in assert_json(r)["results"]] == [300, 200, 100]
    r = await c.get("/storage/files", params={"desc": "true", "size": 2, "page": 1}, headers=auth(token))
    assert [f["id"] for f in assert_json(r)["results"]] == ids[::-1][:2]
    r = await c.get("/storage/files", params={"size": 2, "page": 2}, headers=auth(token))
    assert assert_json(r) == {"page": 2, "size": 2, "total": 3, "results": [page["results"][2]]}
    assert assert_json(await c.get("/storage/files", params={"page": 9}, headers=auth(token)))["results"] == []
    assert_error(
        await c.get("/storage/files", params={"sort": "name"}, headers=auth(token)),
        400,
        "invalid sort 'name': use uploaded or size",
    )
    assert await usage(c, token) == {"bytes": 600, "gb": 6e-07, "count": 3}
    assert await usage(c, await register(c)) == {"bytes": 0, "gb": 0, "count": 0}


async def test_name_field_before_or_after_the_file(server: Server) -> None:
    c = server.client
    h = auth(await admin_token(server))
    for parts in (
        (("name", None, "Quarterly 📈".encode()), ("file", "q.pdf", b"%PDF")),
        (("file", "q.pdf", b"%PDF"), ("name", None, "Quarterly 📈".encode())),
    ):
        raw, headers = multipart(*parts)
        body = assert_json(await c.post("/storage/upload", content=raw, headers={**headers, **h}))
        record = await server.services.store.file(await dev_base(server), body["id"])
        assert record.name == "Quarterly 📈" and record.key.endswith(".pdf") and record.size == 4


async def test_sb_files_is_listed_once_the_app_has_files(server: Server) -> None:
    other = await second_app(server.client)  # a new app: the dev app may have files from other tests
    async with extra_client(server, pk=other["pk"]) as o:
        root = auth(other["rootToken"])
        assert "sb_files" not in assert_json(await o.get("/sudolistall", headers=root))
        await upload(o, other["rootToken"], b"x", "a.txt")
        assert "sb_files" in assert_json(await o.get("/sudolistall", headers=root))


# Permissions


async def test_accounts_see_only_their_files_and_only_root_deletes(server: Server) -> None:
    c = server.client
    a1, a2, b = await accounts_ab(c)
    mine = await upload(c, a1.token, b"account A", "a.txt")
    theirs = await upload(c, b.token, b"account B!", "b.txt")

    def ids(r: httpx.Response) -> list[str]:
        return [f["id"] for f in assert_json(r)["results"]]

    assert ids(await c.get("/storage/files", headers=auth(a1.token))) == [mine["id"]]
    assert ids(await c.get("/storage/files", headers=auth(a2.token))) == [mine["id"]]  # same account
    assert ids(await c.get("/storage/files", headers=auth(b.token))) == [theirs["id"]]
    root = auth(server.dev.root_token)
    r = await c.get("/storage/files", params={"size": 1000, "desc": "1"}, headers=root)
    assert {mine["id"], theirs["id"]} <= set(ids(r))
    assert (await usage(c, a2.token))["bytes"] == 9
    assert (await usage(c, b.token))["bytes"] == 10

    for token in (a1.token, b.token):
        r = await c.delete("/sudostorage/delete", params={"id": mine["id"]}, headers=auth(token))
        assert 400 <= r.status_code < 500
    assert (await c.get(local_path(mine["url"]))).content == b"account A"
    assert await server.services.store.file(await dev_base(server), mine["id"]) is not None


async def test_another_app_cannot_see_or_delete_files(server: Server) -> None:
    c = server.client
    body = await upload(c, await admin_token(server), b"dev app file", "d.txt")
    other = await second_app(c)
    async with extra_client(server, pk=other["pk"]) as o:
        o_root = auth(other["rootToken"])
        r = await o.delete("/sudostorage/delete", params={"id": body["id"]}, headers=o_root)
        assert_error(r, 404, f"file not found: no file of this app has the id {body['id']!r}")
        assert assert_json(await o.get("/storage/files", headers=o_root))["total"] == 0
        mine = await upload(o, other["rootToken"], b"other app file", "o.txt")
        assert mine["url"].startswith(f"http://testserver/localfs/{other['pk']}/")
    assert_error(
        await c.delete("/sudostorage/delete", params={"id": mine["id"]}, headers=auth(server.dev.root_token)), 404
    )
    assert (await c.get(local_path(body["url"]))).content == b"dev app file"
    assert (await c.get(local_path(mine["url"]))).content == b"other app file"
    # the other app's key with this app's name, or this app's id under the other app: not found
    base = await dev_base(server)
    swapped = local_path(mine["url"]).replace(f"/localfs/{other['pk']}/", f"/localfs/{base.name}/")
    assert_error(await c.get(swapped), 404, "not found")


# Bad input: a clear 4xx, nothing stored


async def test_bad_uploads_store_nothing(server: Server) -> None:
    c = server.client
    h = auth(await admin_token(server))
    before = await everything_stored(server)
    ctype = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    cases: list[tuple[bytes, dict[str, str], str]] = [
        (b"", ctype, "the body is empty"),
        (b"not multipart at all", ctype, "invalid multipart body"),
        (multipart(("name", None, b"only a name"))[0], ctype, 'no part named "file"'),
        (multipart(("file", None, b"a text field named file"))[0], ctype, 'no part named "file"'),
        (multipart(("other", "x.txt", b"wrong part"))[0], ctype, 'no part named "file"'),
        (multipart(("file", "e.txt", b""))[0], ctype, "the file is empty"),
        (multipart(("file", "t.txt", b"x" * 70_000), close=False)[0], ctype, "ends before its closing boundary"),
        (multipart(("file", "t.txt", b"x"), ("name", None, b"../../etc/passwd"))[0], ctype, "invalid name"),
        (multipart(("name", None, b".."), ("file", "t.txt", b"x"))[0], ctype, "invalid name"),
        (multipart(("name", None, b"a\\b"), ("file", "t.txt", b"x"))[0], ctype, "invalid name"),
        (multipart(("name", None, b"a\x01b"), ("file", "t.txt", b"x"))[0], ctype, "invalid name"),
        (multipart(("name", None, b"n" * (MAX_NAME + 1)), ("file", "t.txt", b"x"))[0], ctype, "invalid name"),
        (multipart(("name", None, b"n" * 5000), ("file", "t.txt", b"x"))[0], ctype, "is over 4096 bytes"),
        (b"x=1", {"Content-Type": "application/x-www-form-urlencoded"}, "expected a multipart/form-data body"),
        (b"abc", {"Content-Type": "multipart/form-data"}, "expected a multipart/form-data body"),  # no boundary
        (b"abc", {}, "expected a multipart/form-data body"),
    ]
    for raw, headers, reason in cases:
        r = await c.post("/storage/upload", content=raw, headers={**headers, **h})
        line = assert_error(r, 400)
        assert reason in line, (raw[:80], line)
    assert await everything_stored(server) == before
    assert list((server.services.settings.files_dir / ".tmp").glob("*")) == []
    # a traversal in the file's own name keeps only its last segment, and the key is the server's
    body = await upload(c, h["Authorization"][7:], b"x", "../../../etc/passwd.txt")
    record = await server.services.store.file(await dev_base(server), body["id"])
    assert record.name == "passwd.txt" and record.key.endswith(f"/{body['id']}.txt")


async def test_delete_errors(server: Server) -> None:
    c = server.client
    root = auth(server.dev.root_token)
    assert_error(await c.delete("/sudostorage/delete", headers=root), 400, startswith="missing file id")
    assert_error(await c.delete("/sudostorage/delete", params={"id": "nope"}, headers=root), 404)
    assert_error(await c.post("/sudostorage/delete", params={"id": "nope"}, headers=root), 405)


async def test_localfs_serves_only_recorded_keys(server: Server) -> None:
    c = server.client
    body = await upload(c, await admin_token(server), b"x", "a.txt")
    path = local_path(body["url"])
    (server.services.settings.files_dir / "stray.txt").write_text("not a record")
    for bad in (
        "/localfs/stray.txt",
        "/localfs/" + "/".join(path.split("/")[2:4]) + "/stray.txt",
        "/localfs/%2e%2e/%2e%2e/etc/passwd",
        "/localfs/.tmp/x/y",
        "/localfs/unknown-app/a/b.txt",
        path.replace(".txt", ".bin"),
        path + "/more",
        "/localfs/",
    ):
        assert (await c.get(bad)).status_code == 404, bad


# The upload limit is its own setting


async def test_upload_limit_is_its_own_setting(make_server: ServerFactory) -> None:
    async with make_server(max_body_bytes=100_000, upload_max_bytes=1_000_000) as server:
        c = server.client
        h = auth(await admin_token(server))
        data = os.urandom(900_000)  # past the general body limit, within the upload limit
        body = await upload(c, h["Authorization"][7:], data, "ok.bin")
        assert (await c.get(local_path(body["url"]))).content == data
        assert_error(await c.post("/db/col", content=b"x" * 200_000, headers=h), 413)

        reason = "file size exeeded your limit: the limit is 1000000 bytes (SB_UPLOAD_MAX_BYTES)"
        before = await everything_stored(server)
        raw, headers = multipart(("file", "big.bin", b"x" * 1_000_001))
        r = await c.post("/storage/upload", content=raw, headers={**headers, **h})  # within the envelope
        assert_error(r, 400, reason)
        raw, headers = multipart(("file", "big.bin", b"x" * 2_000_000))
        assert_error(await c.post("/storage/upload", content=raw, headers={**headers, **h}), 400, reason)

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: stopped as it streams
            for i in range(0, len(raw), 65_536):
                yield raw[i : i + 65_536]

        assert_error(await c.post("/storage/upload", content=chunked(), headers={**headers, **h}), 400, reason)
        assert await everything_stored(server) == before
        assert list((server.services.settings.files_dir / ".tmp").glob("*")) == []
