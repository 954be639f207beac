from __future__ import annotations

import httpx


async def test_ping(client: httpx.AsyncClient) -> None:
    r = await client.get("/ping")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.text == "true"


async def test_register_then_me(client: httpx.AsyncClient) -> None:
    r = await client.post("/register", json={"email": "Smoke@Example.com", "password": "pw-123456"})
    assert r.status_code == 200, r.text
    token = r.json()
    me = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["email"] == "smoke@example.com"
    assert me.json()["role"] == 50
