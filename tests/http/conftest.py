"""An in-process server per test, on every store kind, driven over ASGI by httpx.

``client`` is an ``httpx.AsyncClient`` already carrying the dev app's public key;
``dev`` holds the dev app's credentials (admin email/password, real root token).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette

from sbserver.app import create_app
from sbserver.services.tenancy import DEV_EMAIL, DEV_PASSWORD, DEV_PK, NewApp
from sbserver.settings import from_env
from tests.conftest import STORE_KINDS


@dataclass
class Server:
    app: Starlette
    client: httpx.AsyncClient
    dev: NewApp
    kind: str

    @property
    def services(self):
        return self.app.state.services


def make_settings(kind: str, tmp_path: Path, pg_url: str | None, **overrides: object):
    env = {"APP_ENV": "dev", "JWT_SECRET": "test-secret-" + uuid.uuid4().hex}
    if kind == "pg":
        assert pg_url
        env.update({"DATA_STORE": "pg", "DATABASE_URL": pg_url})
    settings = from_env(env, data_dir=tmp_path / "data")
    return settings.with_overrides(quiet=True, **overrides)


@pytest_asyncio.fixture(params=STORE_KINDS)
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    kind = request.param
    pg_url = request.getfixturevalue("pg_url") if kind == "pg" else None
    overrides = getattr(request, "param_overrides", {})
    app = create_app(make_settings(kind, tmp_path, pg_url, **overrides))
    app.state.services.tenancy.announce = lambda text: None
    async with app.router.lifespan_context(app):
        dev = await app.state.services.tenancy.dev_app()
        assert dev is not None
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"SB-PUBLIC-KEY": DEV_PK}
        ) as client:
            yield Server(app, client, dev, kind)


@pytest.fixture
def client(server: Server) -> httpx.AsyncClient:
    return server.client


__all__ = ["DEV_EMAIL", "DEV_PASSWORD", "DEV_PK", "Server", "make_settings"]
