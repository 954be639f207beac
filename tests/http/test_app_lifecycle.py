"""Starting and stopping the app: a failing start closes what it opened; method errors say why."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from sbserver.app import create_app
from sbserver.errors import SBError
from tests.http.conftest import Server, make_settings


def _store_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.is_alive() and t.name.startswith("sqlite")}


async def test_a_failing_start_closes_the_backends_opened_before_it(tmp_path: Path) -> None:
    before = _store_threads()
    # the store opens (its writer and checkpointer threads start), then Redis cannot be reached
    settings = make_settings("sqlite", tmp_path, None, redis_url="redis://127.0.0.1:1/0")
    app = create_app(settings)
    with pytest.raises((SBError, OSError)):
        async with app.router.lifespan_context(app):
            pytest.fail("the app started without its cache")
    assert _store_threads() == before  # the store was closed again


async def test_a_known_route_with_a_wrong_method_is_405_with_allow(server: Server) -> None:
    r = await server.client.delete("/login")
    assert r.status_code == 405 and r.text == "method not allowed\n"
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"POST"}


async def test_an_unknown_path_is_404(server: Server) -> None:
    r = await server.client.get("/no/such/route")
    assert r.status_code == 404 and r.text == "not found\n" and "Allow" not in r.headers


async def test_the_request_id_of_a_405_is_set(server: Server) -> None:
    r: httpx.Response = await server.client.put("/ping")
    assert r.status_code == 405 and r.headers.get("X-Request-Id")
