"""The live pages of the admin UI (``/ui/live``) in real Chromium, on every store and bus.

Servers: SQLite and PostgreSQL with the in-process bus, and, when ``SB_TEST_REDIS_URL`` is set,
two processes sharing one PostgreSQL database and one Redis: the browser talks to the first, the
clients to the second, so every message the page shows crossed processes through Redis.

Real SSE clients (tests/realtime/clients.py, run on a loop in a thread beside Playwright's sync
API) join channels and send; the page shows what they send, as text. Checked: presence counts on
the list (2 clients -> 2, then 1), a chat message in ``lobby``, the ``db_created`` event of a
document created through the API in ``db-msgs_774_``, the test-message form reaching a separate
client, markup in a message shown as text, CSRF refusal of the send form, the stream without a
session (401), another app's channels (neither listed nor delivered), and the stream ending when
the admin signs out or closes the page. Screenshots at 1280 and 390 px: test-output/ui/.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from playwright.sync_api import expect

from sbserver.http.ui.session import open_session, seal_session
from tests.compat.conftest import _fresh_database, running_server
from tests.compat.support import DEV_ROOT_ALIAS, LiveServer
from tests.realtime.clients import SSEClient
from tests.realtime.support import User, register
from tests.web.test_pages import _database
from tests.web.ui_support import UI_APP_SECRET, chromium, csrf_of, new_page, shots, signed_in

__all__ = ["chromium"]

T = TypeVar("T")
WAIT_MS = 15_000
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


class Side:
    """Where the browser goes (``ui``) and where the clients go (``peer``: another process on Redis)."""

    def __init__(self, ui: LiveServer, peer: LiveServer) -> None:
        self.ui, self.peer = ui, peer


@pytest.fixture(scope="module", params=["sqlite", "pg", "redis"])
def side(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Side]:
    kind: str = request.param
    env = {"APP_SECRET": UI_APP_SECRET}
    name = "test_ui_live"
    if kind == "sqlite":
        with running_server("sqlite", tmp_path_factory.mktemp(f"{name}-sqlite"), "", env) as server:
            yield Side(server, server)
        return
    redis_url = request.getfixturevalue("redis_url") if kind == "redis" else ""
    pg_url = request.getfixturevalue("pg_url")
    database_url = _fresh_database(pg_url, name)
    try:
        if kind == "pg":
            with running_server("pg", tmp_path_factory.mktemp(f"{name}-pg"), database_url, env) as server:
                yield Side(server, server)
        else:
            env["REDIS_URL"] = redis_url
            with (
                running_server("pg", tmp_path_factory.mktemp(f"{name}-p1"), database_url, env) as p1,
                running_server("pg", tmp_path_factory.mktemp(f"{name}-p2"), database_url, env) as p2,
            ):
                yield Side(p1, p2)
    finally:
        _database(pg_url, name, create=False)


class Clients:
    """Realtime clients on an asyncio loop of their own thread (Playwright's sync API holds the main one)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.opened: list[SSEClient] = []
        self.users: dict[str, User] = {}

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def user(self, pk: str) -> User:
        if pk not in self.users:

            async def make() -> User:
                async with httpx.AsyncClient(timeout=15) as http:
                    return await register(http, self.url, pk)

            self.users[pk] = self.run(make())
        return self.users[pk]

    def sse(self, pk: str, *channels: str) -> SSEClient:
        """A client of app ``pk``, authenticated as a user of it and joined to ``channels``."""
        user = self.user(pk)

        async def make() -> SSEClient:
            client = SSEClient(self.url, pk)
            self.opened.append(client)
            await client.open()
            await client.auth(user)
            for channel in channels:
                await client.join(channel)
            return client

        return self.run(make())

    def close(self) -> None:
        for client in self.opened:
            with contextlib.suppress(Exception):
                self.run(client.close(), 10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def clients(side: Side) -> Iterator[Clients]:
    made = Clients(side.peer.url)
    yield made
    made.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def open_live(page: Any, channel: str) -> None:
    """The live view of ``channel``, once its stream has joined (so nothing sent after is missed)."""
    page.goto("/ui/live/" + channel)
    expect(page.locator("#live-status")).to_have_text(f"Live: joined {channel}", timeout=WAIT_MS)


def row(page: Any, type: str, text: str) -> Any:
    return page.locator(f"#live-messages li[data-type='{type}']").filter(has=page.locator(".live-data", has_text=text))


def publish(server: LiveServer, channel: str, type: str, data: str) -> None:
    r = server.request("POST", "/publish", token=DEV_ROOT_ALIAS, json={"channel": channel, "type": type, "data": data})
    assert r.status_code == 200 and r.text == "true", r.text


def cookies_of(page: Any) -> dict[str, str]:
    return {c["name"]: c["value"] for c in page.context.cookies() if c["name"] in ("pk", "token")}


# --- the tests ---------------------------------------------------------------------------------


def test_channel_list_counts_members_on_every_process(side: Side, clients: Clients, chromium: Any) -> None:
    room = unique("room")
    first, second = clients.sse(side.ui.pk, room), clients.sse(side.ui.pk, room)
    page = signed_in(chromium, side.ui)
    page.goto("/ui/live")
    expect(page.locator("nav a[aria-current=page]")).to_have_text("Live")
    count = page.locator(f"#channels tr[data-channel='{room}'] .live-count")
    expect(count).to_have_text("2")  # server-rendered: no script needed for the list
    shots(page, "live-list")
    clients.run(second.close())
    expect(count).to_have_text("1", timeout=WAIT_MS)  # the htmx poll, without a reload
    clients.run(first.close())
    expect(count).to_have_count(0, timeout=WAIT_MS)
    # the form opens a channel by name
    page.fill("#live-channel", room)
    page.click(".live-open button[type=submit]")
    expect(page.locator("#live-status")).to_have_text(f"Live: joined {room}", timeout=WAIT_MS)
    expect(page.locator("h1")).to_contain_text(room)
    # a channel named like a route opens by query
    page.goto("/ui/live")
    page.fill("#live-channel", "send")
    page.click(".live-open button[type=submit]")
    expect(page.locator("#live-status")).to_have_text("Live: joined send", timeout=WAIT_MS)
    assert page.locator("#presence").get_attribute("hx-get") == "/ui/live?channel=send"


def test_a_clients_message_appears_as_text(side: Side, clients: Clients, chromium: Any) -> None:
    page = signed_in(chromium, side.ui)
    open_live(page, "lobby")
    client = clients.sse(side.ui.pk, "lobby")
    expect(page.locator("#presence .live-count")).to_have_text("2", timeout=WAIT_MS)  # the page and the client
    hello = json.dumps({"from": "a@example.com", "body": "hi from the chat"})
    clients.run(client.send("chan_in", hello, channel="lobby"))
    clients.run(client.send("chan_in", XSS, channel="lobby"))
    clients.run(client.expect("chan_out", data=XSS))
    hi = row(page, "chan_out", "hi from the chat")
    expect(hi).to_have_count(1, timeout=WAIT_MS)
    expect(hi.locator(".live-sender")).to_contain_text(client.sid)
    expect(hi.locator(".live-sender")).to_contain_text(clients.user(side.ui.pk).user_id)
    markup = row(page, "chan_out", "<img src=x")
    expect(markup).to_have_count(1, timeout=WAIT_MS)
    assert markup.locator(".live-data").inner_text() == XSS
    assert page.locator("#live-messages img, #live-messages script").count() == 0
    assert page.evaluate("window.__xss") is None
    # newest at the top by default, at the bottom when asked (among the chat messages: the
    # client's "joined" notice is published on its own and may arrive after them)
    types = page.locator("#live-messages li[data-type='chan_out'] .live-data")
    assert types.first.inner_text() == XSS
    page.select_option("#live-order", "bottom")
    assert types.last.inner_text() == XSS
    shots(page, "live-channel")


def test_database_events_of_a_collection(side: Side, clients: Clients, chromium: Any) -> None:
    page = signed_in(chromium, side.ui)
    open_live(page, "db-msgs_774_")
    expect(page.locator(".live-feed")).to_be_visible()
    body = {"from": "ui@example.com", "body": unique("stored")}
    jwt = clients.user(side.ui.pk).jwt
    r = side.peer.request("POST", "/db/msgs_774_", token=jwt, json=body)
    assert r.status_code == 201, r.text
    doc_id = r.json()["id"]
    created = row(page, "db_created", body["body"])
    expect(created).to_have_count(1, timeout=WAIT_MS)
    assert json.loads(created.locator(".live-data").inner_text())["id"] == doc_id
    r = side.peer.request("DELETE", f"/db/msgs_774_/{doc_id}", token=jwt)
    assert r.status_code == 200, r.text
    expect(row(page, "db_deleted", doc_id)).to_have_count(1, timeout=WAIT_MS)
    shots(page, "live-db-channel")


def test_send_form_reaches_a_separate_client(side: Side, clients: Clients, chromium: Any) -> None:
    channel = unique("test")
    client = clients.sse(side.ui.pk, channel)
    page = signed_in(chromium, side.ui)
    open_live(page, channel)
    page.fill("#send-type", "greeting")
    page.fill("#send-data", '{"n": 1, "html": "<b>bold</b>"}')
    page.click(".live-send button[type=submit]")
    expect(page.locator("#send-status")).to_have_text(f"Sent a greeting message to {channel}.", timeout=WAIT_MS)
    got = clients.run(client.expect("greeting"))
    assert got["data"] == '{"n": 1, "html": "<b>bold</b>"}' and got["channel"] == channel, got
    assert got["sid"] == "user-msg" and got["auth"]["role"] >= 100, got
    expect(row(page, "greeting", "<b>bold</b>")).to_have_count(1, timeout=WAIT_MS)
    assert page.locator("#live-messages b").count() == 0
    # a refused send says why in the status line, and publishes nothing
    page.fill("#send-type", "")
    page.evaluate("document.getElementById('send-type').removeAttribute('required')")
    page.click(".live-send button[type=submit]")
    expect(page.locator("#send-status[role=alert]")).to_contain_text("no message type")
    # without JavaScript the form posts and comes back to the channel
    csrf = csrf_of(page)
    r = page.request.post(
        "/ui/live/send",
        form={"csrf": csrf, "channel": channel, "type": "plain", "data": "no-js"},
        max_redirects=0,
    )
    assert r.status == 303 and r.headers["location"] == f"/ui/live/{channel}", (r.status, r.headers)
    clients.run(client.nothing_before(None, "plain", data="no-js"))  # the refused send published nothing


def test_send_without_csrf_is_refused(side: Side, clients: Clients, chromium: Any) -> None:
    channel = unique("csrf")
    client = clients.sse(side.ui.pk, channel)
    page = signed_in(chromium, side.ui)
    page.goto("/ui/live")
    for form in ({}, {"csrf": "not-the-token"}):
        r = page.request.post("/ui/live/send", form={**form, "channel": channel, "type": "evil", "data": "x"})
        assert r.status == 403, r.status
        assert "CSRF" in r.text()
    r = page.request.post("/ui/live/send", form={"csrf": csrf_of(page), "channel": "", "type": "t", "data": "x"})
    assert r.status == 400 and "no channel was specified" in r.text()
    publish(side.ui, channel, "marker", "x")
    clients.run(client.nothing_before(None, "marker", data="x"))  # (would fail on an "evil" envelope)


def test_stream_needs_a_session_and_stays_in_the_app(side: Side, clients: Clients, chromium: Any) -> None:
    r = httpx.get(side.ui.url + "/ui/live/stream", params={"channel": "lobby"}, timeout=10)
    assert r.status_code == 401 and r.text == "not signed in to the admin pages: sign in at /\n", r.text
    r = httpx.get(side.ui.url + "/ui/live", timeout=10)
    assert r.status_code == 303 and r.headers["location"] == "/", r.headers
    other = side.ui.new_app(f"{unique('live')}@example.com")
    shared, only_theirs, ours = unique("shared"), unique("theirs"), unique("ours")
    theirs = clients.sse(other["pk"], shared, only_theirs)
    mine = clients.sse(side.ui.pk, shared, ours)
    page = signed_in(chromium, side.ui)
    page.goto("/ui/live")
    expect(page.locator(f"#channels tr[data-channel='{ours}']")).to_have_count(1)
    assert page.locator(f"#channels tr[data-channel='{only_theirs}']").count() == 0
    expect(page.locator(f"#channels tr[data-channel='{shared}'] .live-count")).to_have_text("1")
    # the page's public key cookie cannot point the stream elsewhere
    page.context.add_cookies([{"name": "pk", "value": other["pk"], "url": side.ui.url}])
    open_live(page, shared)
    clients.run(theirs.send("chan_in", "from the other app", channel=shared))
    clients.run(mine.send("chan_in", "from this app", channel=shared))
    expect(row(page, "chan_out", "from this app")).to_have_count(1, timeout=WAIT_MS)
    assert row(page, "chan_out", "from the other app").count() == 0
    got = clients.run(theirs.expect("chan_out"))
    assert got["data"] == "from the other app", got  # it was sent, in its own app


def test_stream_ends_with_the_session_and_the_page(side: Side, clients: Clients, chromium: Any) -> None:
    channel = unique("bye")
    watcher = clients.sse(side.ui.pk)
    page = signed_in(chromium, side.ui)
    open_live(page, channel)
    clients.run(_presence(watcher, channel, "1"))
    page.close()  # the browser leaves: the page's membership ends
    clients.run(_presence(watcher, channel, "0"))

    page = signed_in(chromium, side.ui)
    cookies = cookies_of(page)
    stream = clients.run(_open_stream(side.ui.url, cookies, channel))
    open_live(page, channel)
    with page.expect_navigation():
        page.click("form.signout button")
    last = clients.run(_until_closed(stream), 30)
    assert last["type"] == "error" and last["data"].startswith("you signed out"), last
    r = httpx.get(side.ui.url + "/ui/live/stream", params={"channel": channel}, cookies=cookies, timeout=10)
    assert r.status_code == 401, r.text
    clients.run(_presence(watcher, channel, "0"))


async def _presence(client: SSEClient, channel: str, want: str) -> None:
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        await client.send("presence", channel)
        got = await client.expect("presence")
        if got["data"] == want:
            return
        assert asyncio.get_running_loop().time() < deadline, f"presence of {channel} is {got['data']}, want {want}"
        await asyncio.sleep(0.1)


class _Stream:
    def __init__(self, http: httpx.AsyncClient, response: httpx.Response, cm: Any) -> None:
        self.http, self.response, self.cm = http, response, cm


async def _open_stream(url: str, cookies: dict[str, str], channel: str) -> _Stream:
    http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None), cookies=cookies)
    cm = http.stream("GET", url + "/ui/live/stream", params={"channel": channel})
    response = await cm.__aenter__()
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
    return _Stream(http, response, cm)


async def _until_closed(stream: _Stream) -> dict[str, Any]:
    """Read the stream until the server ends it; the last envelope."""
    last: dict[str, Any] = {}
    buf = b""
    async for chunk in stream.response.aiter_raw():
        buf += chunk
        while b"\n\n" in buf:
            block, buf = buf.split(b"\n\n", 1)
            if block.startswith(b"data: "):
                last = json.loads(block[6:])
    await stream.cm.__aexit__(None, None, None)
    await stream.http.aclose()
    return last


def test_pages_at_both_widths_without_a_session_redirect(side: Side, chromium: Any) -> None:
    page = new_page(chromium, side.ui)
    response = page.goto("/ui/live/lobby")
    assert response is not None and page.url == side.ui.url + "/", page.url


def test_refreshes_do_not_renew_the_session_and_signed_out_loads_sign_in(side: Side, chromium: Any) -> None:
    page = signed_in(chromium, side.ui)
    secret = UI_APP_SECRET.encode()
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    session = open_session(secret, cookies["token"])
    assert session is not None
    page.context.close()
    stale = seal_session(secret, dataclasses.replace(session, seen=time.time() - 120))
    jar = {"pk": cookies["pk"], "token": stale}
    for path in ("/ui/live", "/ui/live/lobby", "/ui/live?channel=lobby"):
        polled = httpx.get(side.ui.url + path, cookies=jar, headers={"HX-Request": "true"})
        assert polled.status_code == 200 and "live" in polled.text, (path, polled.text[:300])
        assert "token=" not in polled.headers.get("set-cookie", ""), f"a refresh of {path} renewed the session"
    opened = httpx.get(side.ui.url + "/ui/live", cookies=jar)
    assert opened.status_code == 200 and "token=" in opened.headers.get("set-cookie", ""), "a visit renews it"
    # a refresh whose session ended: htmx is told to load the sign-in page as a whole page
    r = httpx.get(side.ui.url + "/ui/live", headers={"HX-Request": "true"}, follow_redirects=False)
    assert r.status_code == 200 and r.headers["HX-Redirect"] == "/", r.headers
