"""Answers the fuzzer (tests/http/test_fuzz.py) found to be 5xx, each fixed, on every store kind."""

from __future__ import annotations

import httpx

from tests.http.conftest import Server
from tests.http.helpers import assert_json, auth

HUGE = "99999999999999999999"  # past 64 bits: the offset overflowed the store's integer (500)


async def test_a_page_number_past_64_bits_is_an_empty_page(server: Server, client: httpx.AsyncClient) -> None:
    token = server.dev.root_token
    r = await client.post("/sudo/fuzzpages", json={"n": 1}, headers=auth(token))
    assert r.status_code == 201, r.text
    for path in (f"/sudo/fuzzpages?page={HUGE}", f"/sudo/fuzzpages?page={HUGE}&size=100000&desc=1"):
        body = assert_json(await client.get(path, headers=auth(token)))
        assert body["results"] == [] and body["total"] == 1
    body = assert_json(await client.post(f"/sudoquery/fuzzpages?page={HUGE}", json=[], headers=auth(token)))
    assert body["results"] == [] and body["total"] == 1
    body = assert_json(await client.get("/sudo/fuzzpages?page=1", headers=auth(token)))
    assert [d["n"] for d in body["results"]] == [1]
