"""Pages rendered to PDF or PNG (``/extra/htmltox``, spec 02 §8.3) by headless Chromium, driven
through Playwright, and stored as a file of the caller's account.

One browser per server, started on the first render and reused (a crashed one is started again),
closed at shutdown; ``SB_RENDER_CONCURRENCY`` pages render at once, each in a fresh browser
context (no cookies or storage shared between renders). The browser is the system's Chromium
(``SB_CHROMIUM_PATH``; default ``/usr/bin/chromium`` when present, else the one Playwright
installed): none is ever downloaded. Without a browser the render fails with 500 and a one-line
reason, as the spec asks of a server that has no renderer.

The browser never reaches the network itself. Every request a page makes (the page, its
sub-resources, frames, redirects, form posts, popups) is intercepted and made by the server's
outbound guard (``sbserver/outbound.py``, the rules of functions' ``fetch``: http and https only,
every resolved address public unless ``SB_FETCH_ALLOW`` opens it, a size and time limit), and its
answer handed back to the page; a refused one fails in the page as blocked. Redirects are followed
by the guard, each hop checked (Chromium does not let a redirect it was handed be intercepted
again): the page's own address is fetched first, before any browser work, and the browser opens
the address it ended at (so relative links resolve as they should), its answer served from that
first fetch; a sub-resource gets the content of the end of its redirects. WebSockets are answered
by nothing, and whatever could bypass the interception (preconnects, DNS prefetch, WebRTC, a
redirect) is pointed at a proxy that does not exist. A refused or failed *page* address answers 400
with the reason; a slow page 400 past ``SB_RENDER_TIMEOUT``; a result past ``SB_RENDER_MAX_BYTES``
400.

A PDF holds the whole document on as many pages as it needs (``fullpage`` changes nothing); a PNG
is the viewport (1280x800) or, with ``fullpage``, the whole page's height.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any

import httpx

from sbserver.backends.storage.files.base import FileRecord
from sbserver.errors import BadRequest, SBError, TooManyRequests
from sbserver.outbound import Outbound, OutboundError, Refused, Reply, TimedOut
from sbserver.services.files import FileService
from sbserver.settings import Settings
from sbserver.types import Base, Identity

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, Playwright, Route, WebSocketRoute
    from playwright.async_api import Request as PageRequest

log = logging.getLogger("sbserver.render")

DEFAULT_CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 800}
MAX_URL = 2048
MAX_REDIRECTS = 10
LAUNCH_TIMEOUT = 30.0  # seconds a starting browser may take
PAGE_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# Whatever Chromium would send past the interception goes to a proxy that nobody runs (loopback
# included: Chromium would otherwise reach loopback addresses directly).
NOWHERE_PROXY = "http://127.0.0.1:1"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # the server may run as root in a container; pages are isolated by the guard
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=NetworkPrediction",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    f"--proxy-server={NOWHERE_PROXY}",
    "--proxy-bypass-list=<-loopback>",
]
# Request headers the guard sets itself; the browser's would be wrong for it (it decodes only these).
_DROPPED_REQUEST = frozenset({"accept-encoding", "host", "connection", "content-length"})
# Response headers that described the bytes on the wire, not the decoded body handed to the page.
_DROPPED_RESPONSE = frozenset({"content-encoding", "content-length", "transfer-encoding", "connection", "keep-alive"})


class NoRenderer(SBError):
    """No browser to render with (missing, or it would not start): 500, as the spec asks."""

    status = 500


def _first_line(text: str) -> str:
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()[:300]
    return "unknown error"


def check_url(url: str) -> httpx.URL:
    """The page address a client asks for: an absolute http(s) URL (400 otherwise)."""
    shown = url.strip()[:80]
    if not url.strip():
        raise BadRequest('missing url: send the address of the page to render in "url"')
    if len(url) > MAX_URL:
        raise BadRequest(f"invalid url: at most {MAX_URL} characters")
    try:
        target = httpx.URL(url.strip())
    except httpx.InvalidURL as exc:
        raise BadRequest(f"invalid url {shown!r}: {exc}") from None
    if target.scheme not in ("http", "https"):
        scheme = target.scheme or "none"
        raise BadRequest(f"invalid url {shown!r}: the scheme {scheme!r} cannot be rendered (use http or https)")
    if not target.host:
        raise BadRequest(f"invalid url {shown!r}: it has no host")
    return target


class Renderer:
    def __init__(self, files: FileService, outbound: Outbound, settings: Settings) -> None:
        self.files = files
        self.outbound = outbound
        self.chromium_path = settings.chromium_path
        self.timeout = settings.render_timeout
        self.max_bytes = settings.render_max_bytes
        self._slots = asyncio.Semaphore(settings.render_concurrency)
        self._starting = asyncio.Lock()
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None

    def executable(self) -> str | None:
        """The Chromium to launch; None: the one Playwright installed."""
        if self.chromium_path:
            return self.chromium_path
        return DEFAULT_CHROMIUM if os.path.isfile(DEFAULT_CHROMIUM) else None

    async def htmltox(
        self, base: Base, caller: Identity, url: str, to_pdf: bool, fullpage: bool, request_url: str
    ) -> dict[str, Any]:
        """Render ``url`` and store the result for the caller's account (module docstring)."""
        target = check_url(url)
        data = await self.render(target, to_pdf, fullpage)
        ext = ".pdf" if to_pdf else ".png"
        record: FileRecord = await self.files.save(base, caller, data, ext, f"{target.host}{ext}", request_url)
        return {"id": record.id, "url": record.url, "toPDF": to_pdf, "fullpage": fullpage}

    async def render(self, target: httpx.URL, to_pdf: bool, fullpage: bool) -> bytes:
        """The PDF or PNG bytes of the page at ``target``."""
        self._check_executable()
        try:  # the page's own address and its redirects: refused before any browser work
            first = await self.outbound.request(
                "GET", str(target), headers={"Accept": PAGE_ACCEPT}, timeout=self.timeout, max_redirects=MAX_REDIRECTS
            )
        except TimedOut:
            raise self._too_slow() from None
        except OutboundError as exc:
            raise BadRequest(str(exc)) from None
        try:
            async with asyncio.timeout(self.timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise TooManyRequests(
                f"the renderer is busy: no render finished within {self.timeout:g} s (SB_RENDER_CONCURRENCY)"
            ) from None
        try:
            browser = await self._browser_ready()
            context = await browser.new_context(
                viewport=VIEWPORT,  # type: ignore[arg-type]
                service_workers="block",
                accept_downloads=False,
            )
            try:
                return await self._render(context, first, to_pdf, fullpage)
            finally:
                with contextlib.suppress(Exception):
                    await context.close()
        finally:
            self._slots.release()

    async def _render(self, context: BrowserContext, first: Reply, to_pdf: bool, fullpage: bool) -> bytes:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        url = first.url
        fetched = {_same(url): first}  # the page's answer, fetched already: served once
        pages: list[Page] = []
        refused: list[str] = []  # why the page's own address (or a redirect of it) was refused

        async def guard(route: Route) -> None:
            request = route.request
            try:
                reply = fetched.pop(_same(request.url), None) if request.method == "GET" else None
                reply = reply or await self._fetch(request)
            except OutboundError as exc:
                if pages and _is_page_load(request, pages[0]):
                    refused.append(str(exc))
                log.info("render of %s: %s %s not loaded: %s", url[:200], request.method, request.url[:200], exc)
                with contextlib.suppress(PlaywrightError):
                    await route.abort("blockedbyclient" if isinstance(exc, Refused) else "failed")
                return
            headers: dict[str, str] = {}
            for name, value in reply.headers.multi_items():
                name = name.lower()
                if name in _DROPPED_RESPONSE:
                    continue
                if name in headers:  # several values: Playwright splits Set-Cookie on new lines
                    value = headers[name] + ("\n" if name == "set-cookie" else ", ") + value
                headers[name] = value
            with contextlib.suppress(PlaywrightError):
                await route.fulfill(status=reply.status, headers=headers, body=reply.body)

        async def no_socket(socket: WebSocketRoute) -> None:
            await socket.close(code=1008, reason="websockets are not available while rendering")

        await context.route("**/*", guard)
        await context.route_web_socket("**/*", no_socket)
        ms = self.timeout * 1000
        context.set_default_timeout(ms)
        page = await context.new_page()
        pages.append(page)
        try:
            await page.goto(url, wait_until="load", timeout=ms)
            if to_pdf:
                data = await page.pdf(print_background=True)
            else:
                data = await page.screenshot(full_page=fullpage, type="png")
        except PlaywrightTimeout:
            raise self._too_slow() from None
        except PlaywrightError as exc:
            if refused:
                raise BadRequest(refused[0]) from None
            raise BadRequest(f"cannot render {url[:200]}: {_first_line(exc.message)}") from None
        if len(data) > self.max_bytes:
            raise BadRequest(
                f"the rendered file is {len(data)} bytes, over the {self.max_bytes}-byte limit (SB_RENDER_MAX_BYTES)"
            )
        return data

    async def _fetch(self, request: PageRequest) -> Reply:
        """The answer to one of a page's requests, made by the outbound guard (redirects followed)."""
        if not request.url.startswith(("http://", "https://")):
            scheme = request.url.split(":", 1)[0][:20]
            raise Refused(f"unsupported URL scheme {scheme!r}: only http and https URLs can be loaded")
        headers = {
            item["name"]: item["value"]
            for item in await request.headers_array()
            if not item["name"].startswith(":") and item["name"].lower() not in _DROPPED_REQUEST
        }
        headers["Accept-Encoding"] = "gzip, deflate"
        return await self.outbound.request(
            request.method, request.url, headers=headers, content=request.post_data_buffer, max_redirects=MAX_REDIRECTS
        )

    def _too_slow(self) -> BadRequest:
        return BadRequest(f"the page did not load within {self.timeout:g} s (SB_RENDER_TIMEOUT)")

    def _check_executable(self) -> None:
        exe = self.executable()
        if exe is not None and not os.path.isfile(exe):
            raise NoRenderer(
                f"no browser to render with: {exe} does not exist (install Chromium or set SB_CHROMIUM_PATH)"
            )

    async def _browser_ready(self) -> Browser:
        async with self._starting:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            await self._stop()
            self._check_executable()
            exe = self.executable()
            try:
                from playwright.async_api import Error as PlaywrightError
                from playwright.async_api import async_playwright
            except ImportError:
                raise NoRenderer("no browser to render with: the playwright package is not installed") from None
            try:
                self._playwright = await async_playwright().start()
                self._browser = await self._playwright.chromium.launch(
                    executable_path=exe, args=CHROMIUM_ARGS, timeout=LAUNCH_TIMEOUT * 1000
                )
            except PlaywrightError as exc:
                await self._stop()
                where = exe or "Playwright's Chromium"
                raise NoRenderer(
                    f"no browser to render with: {where} did not start ({_first_line(exc.message)})"
                ) from None
            return self._browser

    async def _stop(self) -> None:
        browser, playwright = self._browser, self._playwright
        self._browser = self._playwright = None
        if browser is not None:
            with contextlib.suppress(Exception):
                await browser.close()
        if playwright is not None:
            with contextlib.suppress(Exception):
                await playwright.stop()

    async def close(self) -> None:
        """Stop the browser, if one was started (server shutdown)."""
        async with self._starting:
            await self._stop()


def _same(url: str) -> str:
    """``url`` as both httpx and Chromium write it (``http://h`` and ``http://h/`` are one page)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return url
    return str(parsed.copy_with(path=parsed.path or "/", fragment=None))


def _is_page_load(request: PageRequest, page: Page) -> bool:
    """Whether ``request`` loads the rendered page itself (its first address or a redirect of it)."""
    try:
        return request.is_navigation_request() and request.frame == page.main_frame
    except Exception:  # a worker's request has no frame
        return False
