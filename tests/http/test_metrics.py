"""``GET /metrics``: request counts and latencies by route template, function and task runs,
the scheduler's delay, SQLite write batches, realtime gauges, and who may scrape.

In-process apps (every store kind) for the counters; a real server process for the SSE and
WebSocket gauges (an in-process transport buffers a stream).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from sbserver.app import create_app
from tests.conftest import STORE_KINDS
from tests.http.conftest import DEV_PK, make_settings
from tests.http.helpers import TEXT_TYPE, assert_error
from tests.realtime.clients import TIMEOUT
from tests.realtime.support import Realtime, Server, new_app, running_server, unique

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape by (name, labels), read with prometheus_client's own parser."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@dataclass
class Node:
    """An in-process app and a client speaking to it over ASGI."""

    app: Starlette
    client: httpx.AsyncClient
    root: dict[str, str]  # the dev app's public key and real root token

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.post(path, **kwargs)


@pytest.fixture
async def node(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Node]:
    """An app on the store kind ``request.param[0]`` with the settings overrides ``[1]`` (the
    scheduler loop off: the tests tick it), reached from the client address ``[2]``."""
    kind, overrides, peer = request.param
    pg_url = request.getfixturevalue("pg_url") if kind == "pg" else None
    app = create_app(make_settings(kind, tmp_path, pg_url, scheduler_enabled=False, **overrides))
    app.state.services.tenancy.announce = lambda text: None
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=peer)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            dev = await app.state.services.tenancy.dev_app()
            yield Node(app, client, {"SB-PUBLIC-KEY": DEV_PK, "Authorization": f"Bearer {dev.root_token}"})


def every_store(peer: tuple[str, int] = ("127.0.0.1", 50000), **overrides: Any) -> Any:
    params = [pytest.param((kind, overrides, peer), id=kind) for kind in STORE_KINDS]
    return pytest.mark.parametrize("node", params, indirect=True)


async def scrape(node: Node, **headers: str) -> Samples:
    r = await node.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(r.text)


@every_store()
async def test_requests_are_counted_by_route_template_method_and_status(node: Node) -> None:
    col = f"m_{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        r = await node.post(f"/sudo/{col}", json={"n": 1}, headers=node.root)
        assert r.status_code == 201, r.text
    for doc_id in ("a1", "b2", "c3"):  # three ids, one label set: never a label per id
        assert (await node.get(f"/sudo/{col}/{doc_id}", headers=node.root)).status_code == 404
    assert (await node.get("/no/such/path/" + uuid.uuid4().hex)).status_code == 404
    assert (await node.get("/ping")).status_code == 200
    s = await scrape(node)
    assert value(s, "sb_http_requests_total", method="POST", route="/sudo/{collection}", status="201") == 2
    assert value(s, "sb_http_requests_total", method="GET", route="/sudo/{collection}/{id}", status="404") == 3
    assert value(s, "sb_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert value(s, "sb_http_requests_total", method="GET", route="/ping", status="200") == 1
    assert not [k for k in s if any(v in ("a1", "b2", "c3", col) for _, v in k[1])], "a raw path became a label"
    assert value(s, "sb_http_request_duration_seconds_count", method="GET", route="/sudo/{collection}/{id}") == 3
    total = value(s, "sb_http_request_duration_seconds_sum", method="GET", route="/sudo/{collection}/{id}")
    assert 0 < total < 30
    inf = value(s, "sb_http_request_duration_seconds_bucket", method="GET", route="/sudo/{collection}/{id}", le="+Inf")
    assert inf == 3
    # the scrape counts itself once it is answered: the next one sees it
    again = await scrape(node)
    assert value(again, "sb_http_requests_total", method="GET", route="/metrics", status="200") == 1
    if node.app.state.services.store.kind == "sqlite":
        batches = value(again, "sb_store_write_batch_size_count")
        assert batches >= 2, "the two inserts went through the writer"
        assert value(again, "sb_store_write_batch_size_sum") >= batches
        assert value(again, "sb_store_write_batch_size_bucket", le="+Inf") == batches


@every_store()
async def test_function_runs_are_counted_by_trigger_and_result(node: Node) -> None:
    ok, bad, on_insert = unique("ok"), unique("bad"), unique("ins")
    for name, trigger, code in (
        (ok, "web", "function handle() { log('hi'); }"),
        (bad, "web", "function handle() { throw new Error('boom'); }"),
        (on_insert, "db_created", "function handle(channel, type, doc) { log(type); }"),
    ):
        r = await node.post("/fn/add", json={"name": name, "trigger": trigger, "code": code}, headers=node.root)
        assert r.status_code == 200, r.text
    assert (await node.post(f"/fn/sudoexec/{ok}", json={}, headers=node.root)).status_code == 200
    assert (await node.post(f"/fn/sudoexec/{bad}", json={}, headers=node.root)).status_code == 500
    s = await scrape(node)
    assert value(s, "sb_function_runs_total", trigger="web", result="ok") == 1
    assert value(s, "sb_function_runs_total", trigger="web", result="error") == 1
    assert value(s, "sb_function_run_duration_seconds_count", trigger="web") == 2
    for name in ("sb_function_queue_depth", "sb_function_jobs_held", "sb_function_events_waiting"):
        assert (name, frozenset()) in s, name
    user = {"email": f"{unique('u')}@x.example", "password": "pw-123456"}
    r = await node.post("/register", json=user, headers={"SB-PUBLIC-KEY": DEV_PK})
    assert r.status_code == 200, r.text
    as_user = {"SB-PUBLIC-KEY": DEV_PK, "Authorization": f"Bearer {r.json()}"}
    r = await node.post(f"/db/{unique('ev')}", json={"x": 1}, headers=as_user)
    assert r.status_code == 201, r.text
    deadline = time.monotonic() + 15  # the event's run is queued: wait until it is counted
    while value(s, "sb_function_runs_total", trigger="db_created", result="ok") < 1:
        assert time.monotonic() < deadline, "the db_created run was never counted"
        await asyncio.sleep(0.05)  # an in-process request never yields: let the run go on
        s = await scrape(node)
    assert value(s, "sb_function_runs_total", trigger="db_created", result="ok") == 1


@every_store()
async def test_task_runs_and_the_scheduler_delay(node: Node) -> None:
    fn = unique("t")
    r = await node.post(
        "/fn/add", json={"name": fn, "trigger": "web", "code": "function handle() {}"}, headers=node.root
    )
    assert r.status_code == 200, r.text
    body = {"name": unique("job"), "type": "function", "value": fn, "interval": "* * * * *", "meta": ""}
    r = await node.post("/task", json=body, headers=node.root)
    assert r.status_code == 200, r.text
    due = datetime.fromisoformat(r.json()["next"]).timestamp()
    services = node.app.state.services
    started = await services.tasks.tick(due + 2.5)  # taken 2.5 s late
    assert len(started) == 1
    assert (await started[0]).outcome == "success"
    s = await scrape(node)
    assert value(s, "sb_scheduler_delay_seconds_count") == 1
    assert value(s, "sb_scheduler_delay_seconds_sum") == pytest.approx(2.5, abs=0.01)
    assert value(s, "sb_scheduler_delay_seconds_bucket", le="2.0") == 0
    assert value(s, "sb_scheduler_delay_seconds_bucket", le="5.0") == 1
    assert value(s, "sb_task_runs_total", type="function", result="success") == 1
    assert value(s, "sb_task_run_duration_seconds_count", type="function") == 1
    assert value(s, "sb_function_runs_total", trigger="task", result="ok") == 1


# --- who may scrape -----------------------------------------------------------------------


@every_store(metrics_token="s3cret-token")
async def test_a_token_is_required_when_set(node: Node) -> None:
    missing = await node.get("/metrics")
    assert_error(missing, 401, "metrics need Authorization: Bearer <the SB_METRICS_TOKEN value>")
    for wrong in ("Bearer nope", "Bearer s3cret-token2", "s3cret-token", "Basic czNjcmV0LXRva2Vu", "Bearer "):
        assert (await node.get("/metrics", headers={"Authorization": wrong})).status_code == 401, wrong
    s = await scrape(node, Authorization="Bearer s3cret-token")
    assert value(s, "sb_http_requests_total", method="GET", route="/metrics", status="401") == 6


@every_store(metrics_local=False)
async def test_off_without_a_token_outside_dev_mode_and_nothing_counted(node: Node) -> None:
    assert (await node.get("/ping")).status_code == 200
    r = await node.get("/metrics")
    assert_error(r, 404, "metrics are off: set SB_METRICS_TOKEN (or SB_METRICS_LOCAL=1 for loopback scrapers)")
    text = generate_latest(node.app.state.services.metrics.registry).decode()
    assert "sb_http_requests_total{" not in text, "requests are counted while metrics are off"


@every_store(peer=("192.0.2.7", 40000))
async def test_local_mode_refuses_other_addresses(node: Node) -> None:
    r = await node.get("/metrics")
    assert_error(r, 403, startswith="metrics are served to loopback clients only")
    assert r.headers["content-type"] == TEXT_TYPE


def test_settings_default_metrics_to_dev_mode_only() -> None:
    from sbserver.settings import from_env

    base = {"JWT_SECRET": "x" * 40, "APP_SECRET": "y" * 40}
    assert from_env({**base, "APP_ENV": "dev"}).metrics_local
    assert not from_env({**base, "APP_ENV": "prod"}).metrics_local
    assert from_env({**base, "APP_ENV": "prod", "SB_METRICS_LOCAL": "1"}).metrics_local
    assert not from_env({**base, "APP_ENV": "dev", "SB_METRICS_LOCAL": "0"}).metrics_local
    assert from_env({**base, "SB_METRICS_TOKEN": " t0k "}).metrics_token == "t0k"


# --- realtime gauges, on a real server process ----------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own: no other test's connections move its gauges."""
    with running_server(tmp_path_factory.mktemp("metrics-live"), {}) as server:
        yield server


async def gauges_become(rt: Realtime, want: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> Samples:
    """Scrape until every gauge in ``want`` has its value (closing is asynchronous on the server)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        s = parse((await rt.http.get(rt.url + "/metrics")).text)
        if all(s.get(k) == v for k, v in want.items()) or time.monotonic() > deadline:
            assert all(s.get(k) == v for k, v in want.items()), {k: s.get(k) for k in want}
            return s


def gauge(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (name, frozenset(labels.items()))


async def test_connection_channel_and_presence_gauges_go_up_and_back_down(live: Server) -> None:
    async with httpx.AsyncClient(timeout=15) as http:
        app = await new_app(http, live.url)
    rt = Realtime(live, app)
    try:
        zero = {
            gauge("sb_realtime_connections", transport="sse"): 0,
            gauge("sb_realtime_connections", transport="ws"): 0,
            gauge("sb_realtime_channels"): 0,
            gauge("sb_realtime_presence"): 0,
        }
        await gauges_become(rt, zero)
        user = await rt.user()
        channel = unique("ch")
        sse = await rt.sse(user, join=(channel,))
        ws = await rt.ws(user, join=(channel,))
        ws2 = await rt.ws()
        await gauges_become(
            rt,
            {
                gauge("sb_realtime_connections", transport="sse"): 1,
                gauge("sb_realtime_connections", transport="ws"): 2,
                gauge("sb_realtime_channels"): 1,
                gauge("sb_realtime_presence"): 2,
            },
        )
        for client in (sse, ws, ws2):
            await client.close()
        s = await gauges_become(rt, zero)
        assert value(s, "sb_http_requests_total", method="GET", route="/sse/connect", status="200") >= 1
    finally:
        await rt.aclose()
