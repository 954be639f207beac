"""Which web origins an app accepts: CORS for browsers and the pages a magic link may point to.

An app's list holds entries of three kinds: a full origin (``https://app.example:8443``: that
scheme, host and port), a bare host (``app.example``: any scheme and port on that host; the
default ``localhost`` is one), a wildcard host (``*.app.example``: its subdomains, not itself),
or ``*`` (any origin). Hosts compare case-insensitively; ``null`` origins match only ``*``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def _parts(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or URL; None when it is not an http(s) address."""
    try:
        split = urlsplit(url.strip())
        port = split.port
    except ValueError:
        return None
    scheme = split.scheme.lower()
    host = (split.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return scheme, host, port if port is not None else DEFAULT_PORTS[scheme]


_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


def _host_is_valid(host: str) -> bool:
    """A DNS name or IPv4 address in ASCII (browsers send IDNs as punycode), at most 253 chars."""
    return 0 < len(host) <= 253 and all(_LABEL.fullmatch(label) for label in host.split("."))


def normalize_entry(entry: str) -> str:
    """An entry as it is stored: trimmed, lower-cased, a full origin without its trailing ``/``."""
    entry = entry.strip().lower()
    return entry[:-1] if "://" in entry and entry.endswith("/") else entry


def entry_is_valid(entry: str) -> bool:
    """Whether ``entry`` is one of the accepted kinds (for the route that edits the list):
    ``*``, ``scheme://host[:port]`` (http or https, nothing else in it), a host, ``*.host``."""
    entry = entry.strip().lower()
    if entry == "*":
        return True
    if "://" in entry:
        parts = _parts(entry)
        if parts is None:
            return False
        split = urlsplit(entry)
        if split.path not in ("", "/") or "?" in entry or "#" in entry or "@" in split.netloc:
            return False
        host = parts[1]
        return _host_is_valid(host) or (split.netloc.startswith("[") and ":" in host)
    return _host_is_valid(entry.removeprefix("*."))


def _matches(parts: tuple[str, str, int], entry: str) -> bool:
    entry = entry.strip().lower()
    if entry == "*":
        return True
    if "://" in entry:
        return _parts(entry) == parts
    host = parts[1]
    if entry.startswith("*."):
        return host.endswith(entry[1:])
    return host == entry


def origin_allowed(origin: str, allowed: Iterable[str]) -> bool:
    """Whether a browser ``Origin`` (or the origin of a URL such as a magic link) is on the list."""
    parts = _parts(origin)
    entries = list(allowed)
    if parts is None:
        return "*" in (e.strip() for e in entries)
    return any(_matches(parts, e) for e in entries)


def app_url_origin(app_url: str) -> str:
    """The origin part of ``APP_URL`` (``''`` when it is unset or not an http(s) URL)."""
    parts = _parts(app_url)
    if parts is None:
        return ""
    scheme, host, port = parts
    return f"{scheme}://{host}" + ("" if DEFAULT_PORTS[scheme] == port else f":{port}")
