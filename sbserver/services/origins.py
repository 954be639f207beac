"""Which web origins an app accepts: CORS for browsers and the pages a magic link may point to.

An app's list holds entries of three kinds: a full origin (``https://app.example:8443``: that
scheme, host and port), a bare host (``app.example``: any scheme and port on that host; the
default ``localhost`` is one), a wildcard host (``*.app.example``: its subdomains, not itself),
or ``*`` (any origin). Hosts compare case-insensitively; ``null`` origins match only ``*``.
"""

from __future__ import annotations

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


def entry_is_valid(entry: str) -> bool:
    """Whether ``entry`` is one of the accepted kinds (for the route that edits the list)."""
    entry = entry.strip()
    if entry == "*":
        return True
    if "://" in entry:
        parts = _parts(entry)
        return parts is not None and urlsplit(entry).path in ("", "/")
    host = entry.removeprefix("*.")
    return bool(host) and all(label and (label.isalnum() or "-" in label) for label in host.split("."))


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
