"""Who is calling: session and root tokens resolved to an ``Identity`` inside one base.

Resolved identities are kept in a small per-process cache for a few seconds, so a hot client
costs one dict lookup per request; deleting a user drops its entries here at once and in other
processes when the entry ages out.
"""

from __future__ import annotations

import hmac
import time

from sbserver.backends.cache import Cache
from sbserver.backends.storage import Store
from sbserver.errors import BadRequest, Unauthorized
from sbserver.services.tokens import TokenCodec, root_token, split_root_token
from sbserver.types import ROLE_ROOT, Base, Identity, User

DEV_ROOT_ALIAS = "safe-to-use-in-dev-root-token"
DEV_ROOT_KEY = "dev-root-token"
_MAX_CACHED = 50_000


def identity_of(base: Base, user: User) -> Identity:
    return Identity(base.name, user.account_id, user.id, user.email, user.role, user.token)


class IdentityService:
    def __init__(self, store: Store, cache: Cache, codec: TokenCodec, ttl: float = 30.0) -> None:
        self.store = store
        self.cache = cache
        self.codec = codec
        self.ttl = ttl
        self._resolved: dict[tuple[str, str, str], tuple[Identity, float]] = {}

    def issue(self, base: Base, user: User) -> str:
        return self.codec.issue(user.id, user.token, base.id)

    def _cached(self, key: tuple[str, str, str]) -> Identity | None:
        hit = self._resolved.get(key)
        if hit is None:
            return None
        if hit[1] < time.monotonic():
            self._resolved.pop(key, None)
            return None
        return hit[0]

    def _remember(self, key: tuple[str, str, str], ident: Identity, until: float) -> None:
        if len(self._resolved) >= _MAX_CACHED:
            self._resolved.clear()
        self._resolved[key] = (ident, until)

    def forget_user(self, base: Base, user_id: str) -> None:
        stale = [k for k, (i, _) in self._resolved.items() if k[1] == base.name and i.user_id == user_id]
        for k in stale:
            self._resolved.pop(k, None)

    async def session(self, base: Base, bearer: str) -> Identity:
        key = ("s", base.name, bearer)
        ident = self._cached(key)
        if ident is not None:
            return ident
        claim = self.codec.decode(bearer)
        user = await self.store.user_by_id(base, claim.user_id)
        if user is None or not hmac.compare_digest(user.token.encode(), claim.user_token.encode()):
            raise BadRequest("error validating auth key: invalid authentication token")
        ident = identity_of(base, user)
        until = min(time.monotonic() + self.ttl, time.monotonic() + (claim.expires - time.time()))
        self._remember(key, ident, until)
        return ident

    async def root(self, base: Base, bearer: str) -> Identity:
        if bearer == DEV_ROOT_ALIAS:
            real = await self.cache.get(DEV_ROOT_KEY)
            if not real:
                raise Unauthorized("not in dev mode")
            bearer = real
        key = ("r", base.name, bearer)
        ident = self._cached(key)
        if ident is not None:
            return ident
        user_id, account_id, user_token = split_root_token(bearer)
        user = await self.store.user_by_id(base, user_id)
        if (
            user is None
            or not hmac.compare_digest(user.account_id.encode(), account_id.encode())
            or not hmac.compare_digest(user.token.encode(), user_token.encode())
        ):
            raise BadRequest("invalid root token: no such user in this app")
        if user.role < ROLE_ROOT:
            raise BadRequest("not enough permission")
        ident = identity_of(base, user)
        self._remember(key, ident, time.monotonic() + self.ttl)
        return ident

    @staticmethod
    def root_token_of(user: User) -> str:
        return root_token(user.id, user.account_id, user.token)
