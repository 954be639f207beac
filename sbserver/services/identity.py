"""Who is calling: session and root tokens resolved to an ``Identity`` inside one base.

Both kinds of token carry the user's secret ``token`` (a UUID stored on the user row), and every
request compares it with the row in the store: changing or resetting a password, or deleting the
user, replaces or removes that secret, so every session and root token built from the old one is
refused at once on every process that shares the store. Only the verified JWT claims (signature,
``exp``) are kept per process, never the answer to "is this user's secret still this one".
"""

from __future__ import annotations

import hmac
import time

from sbserver.backends.cache import Cache
from sbserver.backends.storage import Store
from sbserver.errors import BadRequest, Unauthorized
from sbserver.lru import ExpiringLRU
from sbserver.services.tokens import SessionClaim, TokenCodec, root_token, split_root_token
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
        self._claims: ExpiringLRU[str, SessionClaim] = ExpiringLRU(_MAX_CACHED, ttl)

    def issue(self, base: Base, user: User) -> str:
        return self.codec.issue(user.id, user.token, base.id)

    def _claim(self, bearer: str) -> SessionClaim:
        """The verified claims of a JWT: a hot client's token is verified once per ``ttl`` seconds."""
        hit = self._claims.get(bearer)
        if hit is not None and hit.expires > time.time():
            return hit
        claim = self.codec.decode(bearer)
        self._claims.put(bearer, claim)
        return claim

    async def session(self, base: Base, bearer: str) -> Identity:
        claim = self._claim(bearer)
        user = await self.store.user_by_id(base, claim.user_id)
        if user is None or not hmac.compare_digest(user.token.encode(), claim.user_token.encode()):
            raise BadRequest("error validating auth key: invalid authentication token")
        return identity_of(base, user)

    async def root(self, base: Base, bearer: str) -> Identity:
        if bearer == DEV_ROOT_ALIAS:
            real = await self.cache.get(DEV_ROOT_KEY)
            if not real:
                raise Unauthorized("not in dev mode")
            bearer = real
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
        return identity_of(base, user)

    async def end_session(self, session_id: str, ttl: float) -> None:
        """Mark a server-sealed session (the admin pages') as signed out, on every process."""
        await self.cache.set(f"ui-ended:{session_id}", "1", ttl)

    async def session_ended(self, session_id: str) -> bool:
        return await self.cache.get(f"ui-ended:{session_id}") is not None

    @staticmethod
    def root_token_of(user: User) -> str:
        return root_token(user.id, user.account_id, user.token)
