"""Files through the real ``@staticbackend/js`` client: ``uploadFile``, the URL it answers,
``listFiles`` (paging, ``sort: "size"``, ``desc``) and ``storageUsage``, on every store kind."""

from __future__ import annotations

import json

from tests.compat.support import PASSWORD, Runner, unique_email
from tests.compat.test_js_client import ok, refused


def test_upload_download_list_and_usage(run_js: Runner) -> None:
    small = "hello files ✓\n"
    big = json.dumps({"rows": list(range(3000))})
    out = run_js("files", email=unique_email("js-files"), password=PASSWORD, small=small, big=big)
    first, second = ok(out["first"]), ok(out["second"])
    assert set(first) == {"id", "url"} and first["url"].endswith(".txt")
    assert second["url"].endswith(".json") and second["id"] != first["id"]
    assert out["download"]["status"] == 200
    assert out["download"]["contentType"].startswith("text/plain")
    assert out["download"]["body"] == small

    small_size, big_size = len(small.encode()), len(big.encode())
    listed = ok(out["listed"])
    assert listed["total"] == 2 and listed["page"] == 1
    assert [f["id"] for f in listed["results"]] == [first["id"], second["id"]]  # oldest first
    for f in listed["results"]:
        assert set(f) >= {"id", "accountId", "key", "url", "size", "uploaded"}
    assert [f["size"] for f in ok(out["bySizeDesc"])["results"]] == [big_size, small_size]
    paged = ok(out["paged"])
    # the client leaves out size=1 (it sends size only above 1): page 2 of 25 is empty
    assert paged == {"page": 2, "size": 25, "total": 2, "results": []}

    usage = ok(out["usage"])
    assert usage["bytes"] == small_size + big_size and usage["count"] == 2
    assert usage["gb"] == (small_size + big_size) / 1e9
    assert "authorization" in refused(out["noToken"])
