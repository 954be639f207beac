"""``/publish`` and ``/publish-message`` (spec 02 §7.3, spec 09 item 109) with a user session.

Delivery to channel members, on SSE and WebSocket and across processes, is what
tests/realtime/test_db_events.py (r41, r42) checks; here, the answers of both routes to the
clients' body shapes, and what they refuse.
"""

from __future__ import annotations

import httpx

from tests.http.conftest import Server
from tests.http.helpers import assert_error, assert_json, auth, register


async def test_109_publish_and_publish_message_with_a_user_session_return_true(server: Server) -> None:
    token = await register(server.client)
    body = {"channel": "c", "type": "t", "data": {"a": 1}}
    for path in ("/publish", "/publish-message"):
        assert assert_json(await server.client.post(path, headers=auth(token), json=body)) is True
        # the Go client's shape: data as JSON text
        text = {"channel": "c", "type": "t", "data": '{"a":1}'}
        assert assert_json(await server.client.post(path, headers=auth(token), json=text)) is True


async def test_publish_refusals(server: Server) -> None:
    token = await register(server.client)
    no_token = await server.client.post("/publish", json={"channel": "c", "type": "t", "data": "x"})
    assert no_token.status_code == 401
    r: httpx.Response = await server.client.post("/publish", headers=auth(token), content=b"{not json")
    assert_error(r, 400)
