"""An app's own cache and queues (spec 02 §7.2, spec 05 §6.3), shared by ``/sudo/cache`` and the
functions' ``cacheGet``/``cacheSet``/``inc``/``dec``.

Upstream stores an app's key as ``<base>_<key>``. That prefix is ambiguous when a base name holds
``_`` (the dev app is ``dev_memory_pk``: base ``dev`` with key ``memory_pk_k`` would land on its
``k``) and shares one key space with the server's own entries (sessions, limits, sign-in codes).
Here an app's values live under ``app:<base>:<key>`` and its queues under ``appq:<base>:<key>``:
base names never hold ``:``, so the first ``:`` after the prefix ends the base and no key, whatever
it contains, reaches another app's entries or the server's; and a name can be both a value and a
queue without one breaking the other (Redis refuses a list operation on a string).
"""

from __future__ import annotations

from sbserver.backends.cache import Cache
from sbserver.errors import BadRequest
from sbserver.settings import Settings

MAX_KEY_CHARS = 256


def _base(base: str) -> str:
    if not base or ":" in base:
        raise ValueError(f"cannot namespace cache keys for the base name {base!r}")
    return base


def value_key(base: str, key: str) -> str:
    return f"app:{_base(base)}:{key}"


def queue_key(base: str, key: str) -> str:
    return f"appq:{_base(base)}:{key}"


def _utf8_size(text: str, what: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise BadRequest(f"invalid {what}: not UTF-8 text ({exc.reason})") from exc


def check_key(key: str) -> str:
    _utf8_size(key, "key")
    if not key:
        raise BadRequest("missing key: the cache key must be a non-empty string")
    if len(key) > MAX_KEY_CHARS:
        raise BadRequest(f"invalid key: {len(key)} characters, at most {MAX_KEY_CHARS}")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise BadRequest("invalid key: control characters are not allowed")
    return key


class AppCache:
    """One app's view of the cache: every method takes the base name and a client key. Limits
    from the settings: a set value expires after ``cache_ttl_seconds`` (spec 02 §7.2: 12 hours;
    queues do not expire), values are at most ``cache_max_value_bytes``, a queue holds at most
    ``cache_max_queue_length`` values."""

    def __init__(self, cache: Cache, settings: Settings) -> None:
        self.cache = cache
        self.ttl = settings.cache_ttl_seconds
        self.max_value = settings.cache_max_value_bytes
        self.max_queue = settings.cache_max_queue_length

    def check_value(self, value: str) -> str:
        size = _utf8_size(value, "value")
        if size > self.max_value:
            raise BadRequest(f"value too large: {size} bytes, at most {self.max_value}")
        return value

    async def get(self, base: str, key: str) -> str | None:
        return await self.cache.get(value_key(base, check_key(key)))

    async def set(self, base: str, key: str, value: str) -> None:
        await self.cache.set(value_key(base, check_key(key)), self.check_value(value), self.ttl)

    async def add(self, base: str, key: str, amount: int) -> int:
        """The functions' ``inc``/``dec``: a counter among the app's values (missing = 0)."""
        return await self.cache.add(value_key(base, check_key(key)), amount)

    async def push(self, base: str, key: str, value: str) -> None:
        if not await self.cache.push(queue_key(base, check_key(key)), self.check_value(value), self.max_queue):
            raise BadRequest(f"queue {key!r} is full: it holds {self.max_queue} values, pop some first")

    async def pop(self, base: str, key: str) -> str | None:
        return await self.cache.pop(queue_key(base, check_key(key)))
