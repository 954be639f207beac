"""Requests the server makes on a tenant's behalf: function ``fetch``, http tasks, webhooks.

Anyone can create an app, so the URL is hostile: unguarded, a function could read the cloud
metadata service (169.254.169.254) or anything on the server's own network. Every request made
through :class:`Outbound`:

- takes only http and https URLs;
- resolves the host once and is refused when any of its addresses is not public unicast
  (loopback, private, link-local, unique-local, multicast, unspecified, shared/carrier-grade,
  reserved, documentation ...; IPv6 forms that carry an IPv4 address are judged by that address;
  ``2130706433`` and ``0x7f000001`` are judged by what they resolve to), unless the allow list
  (``SB_FETCH_ALLOW``) opens the host name or a network holding the address;
- connects to exactly an address it checked: the URL's host is swapped for that address while
  the Host header, the TLS server name (SNI) and the certificate check keep the name, so a DNS
  answer that changes between check and connect (rebinding) cannot move the request;
- follows redirects only when asked (``max_redirects``), each hop checked the same way;
- opens a fresh connection with no cookie jar and no proxy from the environment: nothing one
  tenant's request received is sent with another's;
- reads the body streaming and stops past ``max_bytes``; the whole exchange (resolution,
  redirects, body) must end within its time limit.

Every failure raises :class:`OutboundError`, whose text is a one-line reason for the tenant::

    OutboundError
     ├── Refused     the destination is not allowed
     ├── TooLarge    the response passed the size limit
     └── TimedOut    no complete response within the time limit
"""

from __future__ import annotations

import asyncio
import codecs
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

import httpx

from sbserver.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
USER_AGENT = "sbserver-functions"
# The guard decides where a request goes and how it is framed; callers may not.
CALLER_FORBIDDEN = frozenset({"host", "content-length", "transfer-encoding", "connection", "upgrade", "te"})
# Credentials do not follow a redirect to another origin.
CROSS_ORIGIN_DROPPED = ("authorization", "cookie", "proxy-authorization")

# Ranges the ``ipaddress`` flags miss (or would only call "private"), named for the refusal text.
_NAMED_RANGES: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(net), name)
    for net, name in (
        ("0.0.0.0/8", "this-network"),
        ("100.64.0.0/10", "shared (carrier-grade NAT)"),
        ("192.0.0.0/24", "IETF protocol"),
        ("198.18.0.0/15", "benchmarking"),
        ("255.255.255.255/32", "broadcast"),
        ("::/96", "IPv4-compatible"),  # deprecated; holds :: and ::1
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("2001::/32", "Teredo"),
        ("2001:db8::/32", "documentation"),
        ("fc00::/7", "unique-local"),
        ("fec0::/10", "site-local"),
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_HOST_NAME = re.compile(r"^(\*\.|\.)?([a-z0-9_]([a-z0-9_-]*[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?\.?$")


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class OutboundError(Exception):
    """An outbound request refused or failed; ``str()`` is a one-line reason for the tenant."""


class Refused(OutboundError):
    """The destination is not allowed (scheme, or an address that is not public)."""


class TooLarge(OutboundError):
    """The response body passed the size limit."""


class TimedOut(OutboundError):
    """No complete response within the time limit."""


def embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (IPv4-mapped, 6to4, NAT64 64:ff9b::/96), if any."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def why_not_public(addr: IPAddress) -> str:
    """'' for a public unicast address; otherwise what it is ('loopback', 'private', ...)."""
    if isinstance(addr, ipaddress.IPv6Address):
        inner = embedded_ipv4(addr)
        if inner is not None:  # the packet ends up at the IPv4 address
            reason = why_not_public(inner)
            return f"{reason}, as {inner}" if reason else ""
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link-local"
    if addr.is_multicast:
        return "multicast"
    for net, name in _NAMED_RANGES:
        if addr.version == net.version and addr in net:
            return name
    if addr.is_private:
        return "private"
    if addr.is_reserved:
        return "reserved"
    if not addr.is_global:
        return "non-global"
    return ""


@dataclass(frozen=True)
class AllowList:
    """Destinations opened past the guard: host names (``.example.com`` or ``*.example.com`` for
    its subdomains) and networks (``10.0.0.0/8``; a bare address is a one-address network)."""

    hosts: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """Raises ``ValueError`` naming the first entry that is neither a host name nor a network."""
        hosts: set[str] = set()
        suffixes: list[str] = []
        networks: list[Network] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            bare = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
            try:
                networks.append(ipaddress.ip_network(bare, strict=False))
                continue
            except ValueError:
                pass
            if "/" in entry or ":" in entry or not _HOST_NAME.match(entry):
                raise ValueError(
                    f"invalid SB_FETCH_ALLOW entry {raw.strip()!r}: use host names (api.example.com, .example.com)"
                    " or networks (10.0.0.0/8, 127.0.0.1, ::1), without ports"
                )
            if entry.startswith("*."):
                entry = entry[1:]
            if entry.startswith("."):
                suffixes.append(entry.rstrip("."))
            else:
                hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(suffixes), tuple(networks))

    def opens_host(self, host: str) -> bool:
        host = host.rstrip(".")
        return host in self.hosts or any(host.endswith(suffix) for suffix in self.suffixes)

    def opens_address(self, addr: IPAddress) -> bool:
        if any(addr.version == net.version and addr in net for net in self.networks):
            return True
        inner = embedded_ipv4(addr) if isinstance(addr, ipaddress.IPv6Address) else None
        return inner is not None and self.opens_address(inner)


@dataclass(frozen=True)
class Reply:
    """A complete response: its status, headers, body and the URL that answered (after redirects)."""

    status: int
    headers: httpx.Headers
    body: bytes
    url: str

    @property
    def text(self) -> str:
        """The body decoded with the charset the response names (UTF-8 otherwise), never raising."""
        charset = httpx.Response(self.status, headers=self.headers).charset_encoding or "utf-8"
        try:
            codecs.lookup(charset)
        except LookupError:
            charset = "utf-8"
        return self.body.decode(charset, errors="replace")


class Outbound:
    """The guarded HTTP client every outbound request of the server goes through (module docstring)."""

    def __init__(
        self,
        allow: AllowList | None = None,
        max_bytes: int = 10 * 1024 * 1024,
        timeout: float = 10.0,
        user_agent: str = USER_AGENT,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.allow = allow or AllowList()
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.user_agent = user_agent
        # Built once (loading the CA bundle is slow); the default verifies against certifi's roots.
        self._ssl = ssl_context or httpx.create_ssl_context(trust_env=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Outbound:
        try:
            allow = AllowList.parse(settings.fetch_allow)
        except ValueError as exc:
            raise SystemExit(str(exc)) from exc
        return cls(allow, settings.fetch_max_bytes, settings.fetch_timeout)

    async def aclose(self) -> None:
        """Nothing stays open between requests; kept so the server's shutdown can call it."""

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: str | bytes | None = None,
        timeout: float | None = None,
        max_redirects: int = 0,
    ) -> Reply:
        """Send one request (and follow up to ``max_redirects`` redirects, each checked).

        With ``max_redirects=0`` a 3xx is the reply; past a positive limit the request fails.
        ``timeout`` (default: the client's) bounds everything. Raises :class:`OutboundError`.
        """
        limit = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                return await self._request(method.upper(), url, headers or {}, content, limit, max_redirects)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise TimedOut(f"timed out: no complete response within {limit:.3g} s") from exc
        except httpx.InvalidURL as exc:
            raise OutboundError(f"invalid URL: {exc}") from exc
        except httpx.HTTPError as exc:
            raise OutboundError(str(exc) or exc.__class__.__name__) from exc
        except (ValueError, TypeError) as exc:  # e.g. a header value that cannot be encoded
            raise OutboundError(f"invalid request: {exc}") from exc

    async def _request(
        self,
        method: str,
        url: str,
        caller_headers: Mapping[str, str],
        content: str | bytes | None,
        limit: float,
        max_redirects: int,
    ) -> Reply:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        headers = httpx.Headers({"User-Agent": self.user_agent, "Accept": "*/*"})
        for name, value in caller_headers.items():
            if name.lower() not in CALLER_FORBIDDEN:
                headers[name] = value
        body = content.encode() if isinstance(content, str) else content
        current = httpx.URL(url)
        hop = 0
        while True:
            addrs = await self.check(current)
            response, transport = await self._open(method, current, headers, body, addrs, deadline - loop.time())
            try:
                location = response.headers.get("location")
                if response.status_code in REDIRECT_STATUSES and location and max_redirects > 0:
                    if hop >= max_redirects:
                        raise OutboundError(f"too many redirects (more than {max_redirects})")
                    hop += 1
                    target = current.join(location)
                    if (target.scheme, target.host, target.port) != (current.scheme, current.host, current.port):
                        for name in CROSS_ORIGIN_DROPPED:
                            headers.pop(name, None)
                    if (response.status_code == 303 and method != "HEAD") or (
                        response.status_code in (301, 302) and method == "POST"
                    ):
                        method, body = "GET", None
                        headers.pop("content-type", None)
                    current = target
                    continue
                data = await self._read(response, method)
                return Reply(response.status_code, response.headers, data, str(current))
            finally:
                await response.aclose()
                await transport.aclose()

    async def check(self, url: httpx.URL) -> list[IPAddress]:
        """The addresses ``url``'s host resolves to, once each is known to be allowed; else :class:`Refused`."""
        if url.scheme not in SCHEMES:
            raise Refused(f"unsupported URL scheme {url.scheme!r}: only http and https URLs can be requested")
        host = unquote(url.host).lower()
        if not host:
            raise Refused("the URL has no host")
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise OutboundError(f"cannot resolve {host}: {getattr(exc, 'strerror', None) or exc}") from exc
        addrs: list[IPAddress] = []
        for info in infos:
            addr = ipaddress.ip_address(str(info[4][0]))
            if addr not in addrs:
                addrs.append(addr)
        if not addrs:
            raise OutboundError(f"cannot resolve {host}: no address")
        if self.allow.opens_host(host):
            return addrs
        for addr in addrs:
            why = why_not_public(addr)
            if why and not self.allow.opens_address(addr):
                shown = str(addr) if _literal(host) == addr else f"{host} resolves to {addr}, which"
                raise Refused(
                    f"destination refused: {shown} is not a public address ({why}); only public addresses can be"
                    " reached (SB_FETCH_ALLOW opens chosen hosts and networks)"
                )
        return addrs

    async def _open(
        self,
        method: str,
        url: httpx.URL,
        headers: httpx.Headers,
        body: bytes | None,
        addrs: list[IPAddress],
        remaining: float,
    ) -> tuple[httpx.Response, httpx.AsyncHTTPTransport]:
        """Send to the first checked address that accepts a connection; the response is not read yet."""
        name = unquote(url.host)
        extensions: dict[str, object] = {"timeout": httpx.Timeout(max(0.001, remaining)).as_dict()}
        if url.scheme == "https":
            extensions["sni_hostname"] = name  # SNI and certificate check on the name, not the address
        failure: httpx.ConnectError | None = None
        for addr in addrs:
            request = httpx.Request(
                method,
                url.copy_with(host=str(addr)),
                headers=[("Host", url.netloc.decode("ascii")), *headers.multi_items()],
                content=body,
                extensions=extensions,
            )
            # One transport per request: no pooled connection is shared between names or tenants.
            transport = httpx.AsyncHTTPTransport(verify=self._ssl, trust_env=False, retries=0)
            try:
                return await transport.handle_async_request(request), transport
            except httpx.ConnectError as exc:
                failure = exc
                await transport.aclose()
            except BaseException:
                await transport.aclose()
                raise
        raise OutboundError(f"cannot connect to {name}: {failure or 'no address'}")

    async def _read(self, response: httpx.Response, method: str) -> bytes:
        declared = response.headers.get("content-length", "")
        if method != "HEAD" and declared.isdigit() and int(declared) > self.max_bytes:
            raise TooLarge(f"the response is larger than the {self.max_bytes}-byte limit ({declared} bytes)")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise TooLarge(f"the response is larger than the {self.max_bytes}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)
