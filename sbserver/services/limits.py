"""Request limits: counters in fixed windows on the shared cache, taken before the work is done.

Every check *reserves* first (an atomic ``Cache.incr``: Redis INCR + PEXPIRE in one MULTI, or
one uninterrupted step on the event loop) and only then lets the request do its work, so any
number of parallel requests cannot get more than ``limit`` through in a window: the request
that draws number ``limit + 1`` is refused whatever the others are doing. A request that turns
out harmless (a successful login) gives its reservation back with ``refund`` or ``clear``.

Keys: ``rl:<action>:<scope>:<subject>``; the subject is an email or a client address.
"""

from __future__ import annotations

from dataclasses import dataclass

from sbserver.backends.cache import Cache
from sbserver.errors import TooManyRequests
from sbserver.settings import Settings


@dataclass(frozen=True, slots=True)
class Rule:
    """At most ``limit`` hits per subject in ``window`` seconds (``limit`` 0: no limit)."""

    action: str
    limit: int
    window: int

    def key(self, scope: str, subject: str) -> str:
        return f"rl:{self.action}:{scope}:{subject}"


def _minutes(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return f"{minutes} minute{'s' if minutes > 1 else ''}"


class Limits:
    """The limits of the unauthenticated routes, built from the settings."""

    def __init__(self, cache: Cache, settings: Settings) -> None:
        self.cache = cache
        window = settings.rate_window_seconds
        per_address = settings.requests_per_address
        self.login = Rule("login", settings.login_max_failures, settings.login_window_seconds)
        self.magic_email = Rule("magic", settings.magic_requests_per_email, window)
        self.reset_email = Rule("pwsend", settings.reset_requests_per_email, window)
        self.by_address = {
            action: Rule(action, per_address, window) for action in ("register", "magic", "pwsend", "postform", "init")
        }

    async def reserve(self, rule: Rule, scope: str, subject: str, refusal: str) -> bool:
        """Count one hit; past the limit raise 429 ``refusal``, whose ``{wait}`` says when to retry.

        Returns whether a hit was counted (False when the rule is off or the subject empty)."""
        if rule.limit <= 0 or not subject:
            return False
        if await self.cache.incr(rule.key(scope, subject), rule.window) > rule.limit:
            raise TooManyRequests(refusal.format(wait=_minutes(rule.window)))
        return True

    async def refund(self, rule: Rule, scope: str, subject: str) -> None:
        """Give back one hit counted by ``reserve`` (the request did no harm)."""
        if rule.limit > 0 and subject:
            await self.cache.add(rule.key(scope, subject), -1)

    async def clear(self, rule: Rule, scope: str, subject: str) -> None:
        if rule.limit > 0 and subject:
            await self.cache.delete(rule.key(scope, subject))

    async def from_address(self, action: str, scope: str, address: str) -> None:
        """One unauthenticated ``action`` (register, magic, pwsend, postform, init) from ``address``."""
        refusal = f"too many {action} requests from your address: try again in {{wait}}"
        await self.reserve(self.by_address[action], scope, address, refusal)
