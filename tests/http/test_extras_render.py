"""``/extra/htmltox`` (spec 02 §8.3) on every store kind: pages served by local HTTP servers,
rendered by the system's headless Chromium to PDF and PNG, stored as files and read back.

The outbound rules apply to the page and to everything it loads: the servers on 127.0.0.1 are
opened with ``fetch_allow``; a second server on 127.0.0.2 stands for an address that is not, and
its request log must stay empty. That a blocked request really was attempted and refused is shown
by a positive marker: the page asks the allowed server for ``/marker/...`` only from the error
handler of the blocked request.
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.http.conftest import Server
from tests.http.helpers import ServerFactory, assert_error, assert_json, auth, dev_base, make_server, register
from tests.http.test_storage import everything_stored, local_path

__all__ = ["make_server"]

CHROMIUM = Path("/usr/bin/chromium")
ALLOW_LOCAL = {"fetch_allow": ("127.0.0.1",)}
TALL_PAGE = b"""<!doctype html><html><head><title>tall</title></head>
<body style="margin:0;background:#fff"><div style="height:3000px;background:linear-gradient(#f00,#00f)">
<h1>Rendered by sbserver</h1></div></body></html>"""


class PageServer:
    """Pages on a local address: ``pages`` maps a path to (status, headers, body); every request's
    path is logged, in order. ``/slow`` answers after two seconds."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.pages: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.log: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.log.append(self.path)
                if self.path == "/slow":
                    time.sleep(2)
                status, headers, body = recorder.pages.get(self.path, (404, {}, b"no such page"))
                self.send_response(status)
                headers = {"Content-Type": "text/html; charset=utf-8", **headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def page(self, path: str, html: bytes | str, status: int = 200, **headers: str) -> str:
        self.pages[path] = (status, headers, html.encode() if isinstance(html, str) else html)
        return self.url + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site() -> Iterator[PageServer]:
    server = PageServer()
    yield server
    server.close()


@pytest.fixture
def forbidden() -> Iterator[PageServer]:
    """A server on 127.0.0.2: loopback, and not opened by ``fetch_allow`` (127.0.0.1 only)."""
    server = PageServer("127.0.0.2")
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _chromium() -> None:
    if not CHROMIUM.is_file():
        message = f"{CHROMIUM} is missing: run `make test-deps` (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@asynccontextmanager
async def user_server(make_server: ServerFactory, **overrides: object) -> AsyncIterator[tuple[Server, str]]:
    async with make_server(**{**ALLOW_LOCAL, **overrides}) as server:
        yield server, await register(server.client)


async def htmltox(server: Server, token: str, body: Any) -> httpx.Response:
    return await server.client.post("/extra/htmltox", json=body, headers=auth(token))


async def stored(server: Server, url: str) -> httpx.Response:
    r = await server.client.get(local_path(url))
    assert r.status_code == 200, r.text
    return r


async def wait_for(condition: Any, what: str, timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds (a positive marker), failing past ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)


async def test_a_page_to_pdf_and_to_png_of_the_viewport_or_the_full_page(
    make_server: ServerFactory, site: PageServer
) -> None:
    url = site.page("/tall", TALL_PAGE)
    async with user_server(make_server) as (server, token):
        pdf = assert_json(await htmltox(server, token, {"url": url, "toPDF": True}))
        assert set(pdf) == {"id", "url", "toPDF", "fullpage"}
        assert (pdf["toPDF"], pdf["fullpage"]) == (True, False)
        r = await stored(server, pdf["url"])
        assert r.headers["content-type"] == "application/pdf" and r.content.startswith(b"%PDF-")
        record = await server.services.store.file(await dev_base(server), pdf["id"])
        assert record is not None and record.size == len(r.content) and record.name == "127.0.0.1.pdf"
        assert record.key.endswith(f"/{pdf['id']}.pdf")

        shot = assert_json(await htmltox(server, token, {"url": url, "toPDF": False, "fullpage": False}))
        assert (shot["toPDF"], shot["fullpage"]) == (False, False)
        r = await stored(server, shot["url"])
        assert r.headers["content-type"] == "image/png"
        viewport = Image.open(io.BytesIO(r.content))
        assert viewport.size == (1280, 800)
        assert viewport.convert("RGB").getpixel((640, 5))[0] > 200  # the top of the red-to-blue gradient

        full = assert_json(await htmltox(server, token, {"url": url, "fullpage": True}))
        page = Image.open(io.BytesIO((await stored(server, full["url"])).content))
        assert page.width == 1280 and page.height >= 3000
        assert page.convert("RGB").getpixel((640, page.height - 5))[2] > 200  # its blue bottom
        assert site.log.count("/tall") == 3
        # one browser for the server, reused; closed when the server stops
        assert server.services.render._browser is not None
    assert server.services.render._browser is None


async def test_refused_page_addresses_and_schemes(make_server: ServerFactory, site: PageServer) -> None:
    url = site.page("/secret", "<p>internal</p>")
    async with user_server(make_server, fetch_allow=()) as (server, token):
        before = await everything_stored(server)
        line = assert_error(await htmltox(server, token, {"url": url}), 400)
        assert line.startswith("destination refused: 127.0.0.1 is not a public address (loopback)")
        line = assert_error(await htmltox(server, token, {"url": "http://169.254.169.254/latest/meta-data/"}), 400)
        assert line.startswith("destination refused: 169.254.169.254 is not a public address (link-local)")
        assert_error(await htmltox(server, token, {"url": "http://[::1]:9/"}), 400, startswith="destination refused")
        for bad in ("file:///etc/passwd", "data:text/html,<p>x</p>", "javascript:alert(1)", "chrome://version"):
            line = assert_error(await htmltox(server, token, {"url": bad}), 400)
            assert "cannot be rendered (use http or https)" in line, line
        assert_error(await htmltox(server, token, {"url": "/relative"}), 400, contains="cannot be rendered")
        assert await everything_stored(server) == before
        assert server.services.render._browser is None  # refused before any browser work
    assert site.log == []


async def test_sub_requests_and_redirects_to_refused_addresses_are_blocked(
    make_server: ServerFactory, site: PageServer, forbidden: PageServer
) -> None:
    secret = forbidden.page("/secret", "<p>internal</p>")
    forbidden.page("/img.png", b"")
    site.page("/to-secret", b"", status=302, Location=secret)
    site.page("/to-secret-img", b"", status=302, Location=forbidden.url + "/img.png")
    site.page("/after.png", b"", **{"Content-Type": "image/png"})
    page = site.page(
        "/page",
        f"""<!doctype html><html><body>
        <img src="{forbidden.url}/img.png" onerror="fetch('/marker/img')">
        <img src="/to-secret-img" onerror="fetch('/marker/redirect')">
        <img src="http://169.254.169.254/latest/meta-data/x.png" onerror="fetch('/marker/metadata')">
        <iframe src="{forbidden.url}/secret"></iframe>
        <script>fetch("{forbidden.url}/xhr").catch(() => fetch("/marker/fetch"))</script>
        <script>fetch("file:///etc/passwd").catch(() => fetch("/marker/file"))</script>
        <img src="/after.png">
        </body></html>""",
    )
    async with user_server(make_server) as (server, token):
        body = assert_json(await htmltox(server, token, {"url": page}))
        assert (await stored(server, body["url"])).content.startswith(b"\x89PNG")
        markers = {"/marker/img", "/marker/redirect", "/marker/metadata", "/marker/fetch", "/marker/file"}
        await wait_for(lambda: markers <= set(site.log), f"markers {markers} in {site.log}")
        assert "/after.png" in site.log and "/to-secret-img" in site.log
        # a redirect of the page itself to a refused address: the render is refused with the reason
        before = await everything_stored(server)
        line = assert_error(await htmltox(server, token, {"url": site.url + "/to-secret"}), 400)
        assert line.startswith("destination refused: 127.0.0.2 is not a public address (loopback)")
        assert site.log.count("/to-secret") == 1
        assert await everything_stored(server) == before
    assert forbidden.log == []


async def test_bad_bodies_are_refused(make_server: ServerFactory, site: PageServer) -> None:
    url = site.page("/p", "<p>x</p>")
    async with user_server(make_server) as (server, token):
        before = await everything_stored(server)
        cases: list[tuple[Any, str]] = [
            ([url], "expected an object"),
            ("just text", "expected an object"),
            ({}, "missing url"),
            ({"url": ""}, "missing url"),
            ({"url": 5}, 'invalid field "url": expected a string'),
            ({"url": url, "toPDF": "yes"}, 'invalid field "toPDF": expected true or false, got str'),
            ({"url": url, "fullpage": 1}, 'invalid field "fullpage": expected true or false, got int'),
            ({"url": "http://" + "a" * 3000}, "invalid url: at most 2048 characters"),
            ({"url": "http://[::1/"}, "invalid url"),
        ]
        for body, reason in cases:
            line = assert_error(await htmltox(server, token, body), 400)
            assert reason in line, (body, line)
        r = await server.client.post("/extra/htmltox", content=b"{nope", headers=auth(token))
        assert_error(r, 400, startswith="invalid JSON body")
        assert_error(await server.client.post("/extra/htmltox", json={"url": url}), 401)
        assert await everything_stored(server) == before
    assert site.log == []


async def test_without_a_browser_the_reason_is_a_500(
    make_server: ServerFactory, site: PageServer, tmp_path: Path
) -> None:
    missing = tmp_path / "no-chromium"
    url = site.page("/p", "<p>x</p>")
    async with user_server(make_server, chromium_path=str(missing)) as (server, token):
        before = await everything_stored(server)
        line = assert_error(await htmltox(server, token, {"url": url, "toPDF": True}), 500)
        assert line == f"no browser to render with: {missing} does not exist (install Chromium or set SB_CHROMIUM_PATH)"
        assert await everything_stored(server) == before
        not_a_browser = tmp_path / "not-a-browser"
        not_a_browser.write_text("#!/bin/sh\nexit 3\n")
        not_a_browser.chmod(0o755)
        assert site.log == []  # no browser: the page is not even fetched
    async with user_server(make_server, chromium_path=str(not_a_browser)) as (server, token):
        line = assert_error(await htmltox(server, token, {"url": url}), 500)
        assert line.startswith(f"no browser to render with: {not_a_browser} did not start (")


async def test_slow_pages_and_large_results_are_refused(make_server: ServerFactory, site: PageServer) -> None:
    site.page("/slow", "<p>late</p>")
    tall = site.page("/tall", TALL_PAGE)
    async with user_server(make_server, render_timeout=1.0) as (server, token):
        before = await everything_stored(server)
        line = assert_error(await htmltox(server, token, {"url": site.url + "/slow"}), 400)
        assert line == "the page did not load within 1 s (SB_RENDER_TIMEOUT)"
        assert await everything_stored(server) == before
    async with user_server(make_server, render_max_bytes=2000) as (server, token):
        before = await everything_stored(server)
        line = assert_error(await htmltox(server, token, {"url": tall, "fullpage": True}), 400)
        assert line.startswith("the rendered file is ") and line.endswith(
            "bytes, over the 2000-byte limit (SB_RENDER_MAX_BYTES)"
        )
        assert await everything_stored(server) == before
