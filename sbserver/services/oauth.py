"""Sign-in with OAuth 2 providers (spec 02 §9): each app's provider keys, and the popup flow.

Flow (the JS client's ``socialLogin``): the app's page opens ``/oauth/login?provider&reqid&sbpk``
in a window; ``begin`` claims the ``reqid`` (once: a reused one is refused), keeps the flow in the
cache for ``FLOW_TTL`` seconds (app, provider, PKCE verifier, nonce, endpoints, callback URL) and
answers the provider's authorization URL, with state ``<provider>_<reqid>_<app public key>``.
The provider sends the browser to ``/oauth/callback``; ``complete`` takes the flow (one use: a
replayed callback finds nothing), checks that the state's app and provider are the flow's,
exchanges the code (PKCE) and reads the user through the outbound guard, then signs in the user
whose email matches the provider's *verified* email, or creates a new account with a role-0 user
(no password: it signs in through the provider, or after a password reset). The result waits in
the cache for ``RESULT_TTL`` seconds, read by ``/oauth/get-user?reqid`` with the same app's key.
A refused or failed callback creates nothing.

Decisions (spec 02 §9 leaves them open or answers 500):

- an unknown provider is a client mistake: 400 ``invalid auth provider: ...`` (upstream 500);
- ``reqid`` is 6 to 128 characters of letters, digits and ``-`` (the JS client sends ``R`` and a
  UUID); shorter keeps upstream's text ``reqid parameters is required to be > 5``;
- the result stays readable until it expires (``RESULT_TTL``, three minutes), as the client polls;
- X gives an email only to apps granted ``users.email``; without one the sign-in is refused.

Provider keys (``/account/oauth/{provider}``, root): the client secret is sealed with a key
derived from APP_SECRET (``OAUTH_SECRETS``) and bound to the app and provider, and never answered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import orjson
from authlib.common.security import generate_token

from sbserver.backends.cache import Cache
from sbserver.backends.oauth import PROVIDERS, Client, Endpoints, Provider, ProviderError, create_provider
from sbserver.backends.oauth.base import OVERRIDES, is_url, one_line
from sbserver.backends.storage import Store
from sbserver.backends.storage.oauth.base import ProviderConfig
from sbserver.crypto import SecretBox, SecretsUnreadable
from sbserver.errors import BadRequest, Conflict, NotFound, SBError
from sbserver.ids import new_id, new_secret, now_iso
from sbserver.outbound import Outbound
from sbserver.services.accounts import require_email
from sbserver.services.identity import IdentityService
from sbserver.services.tenancy import TenancyService
from sbserver.settings import Settings
from sbserver.types import ROLE_USER, Account, Base, User

OAUTH_SECRETS = b"sbserver oauth client secrets v1"
FLOW_TTL = 600  # seconds between /oauth/login and the provider's callback
RESULT_TTL = 180  # seconds the signed-in user waits for /oauth/get-user
REQID = re.compile(r"[A-Za-z0-9-]{6,128}")
SHORT_REQID = "reqid parameters is required to be > 5"
KNOWN = ", ".join(PROVIDERS)
MAX_CLIENT_FIELD = 512


def _flow_key(reqid: str) -> str:
    return f"oauth:flow:{reqid}"


def _claim_key(reqid: str) -> str:
    return f"oauth:claim:{reqid}"


def _user_key(reqid: str) -> str:
    return f"oauth:user:{reqid}"


def check_reqid(reqid: str) -> str:
    if len(reqid) <= 5:
        raise BadRequest(SHORT_REQID)
    if not REQID.fullmatch(reqid):
        raise BadRequest("invalid reqid: use 6 to 128 letters, digits or -")
    return reqid


def check_provider(provider: str) -> str:
    if provider not in PROVIDERS:
        raise BadRequest(f"invalid auth provider: {one_line(provider, 40)!r} (known: {KNOWN})")
    return provider


class OAuthService:
    def __init__(
        self,
        store: Store,
        cache: Cache,
        identities: IdentityService,
        tenancy: TenancyService,
        http: Outbound,
        settings: Settings,
    ) -> None:
        self.store = store
        self.cache = cache
        self.identities = identities
        self.tenancy = tenancy
        self.http = http
        self.box = SecretBox(settings.app_secret, OAUTH_SECRETS)

    # provider keys (root)
    @staticmethod
    def public(config: ProviderConfig) -> dict[str, Any]:
        """What the API shows of a configuration: never the secret."""
        options = orjson.loads(config.options)
        return {
            "provider": config.provider,
            "clientId": config.client_id,
            "hasSecret": bool(config.client_secret),
            **options,
            "updated": config.updated,
        }

    async def configs(self, base: Base) -> list[dict[str, Any]]:
        return [self.public(c) for c in await self.store.oauth_providers(base)]

    async def config(self, base: Base, provider: str) -> dict[str, Any]:
        found = await self.store.oauth_provider(base, check_provider(provider))
        if found is None:
            raise NotFound(f"missing configuration for provider: {provider}")
        return self.public(found)

    async def configure(self, base: Base, provider: str, body: Any) -> dict[str, Any]:
        """Create or replace ``provider``'s keys and options; an empty ``clientSecret`` keeps the one stored."""
        check_provider(provider)
        if not isinstance(body, dict):
            raise BadRequest("invalid JSON body: expected an object")
        unknown = sorted(set(body) - {"clientId", "clientSecret", *OVERRIDES})
        if unknown:
            raise BadRequest(
                f"unknown field {one_line(unknown[0], 40)!r} (allowed: clientId, clientSecret, {', '.join(OVERRIDES)})"
            )
        for name, value in body.items():
            if not isinstance(value, str):
                raise BadRequest(f'invalid field "{name}": expected a string, got {type(value).__name__}')
            if len(value) > MAX_CLIENT_FIELD or any(not c.isprintable() for c in value):
                raise BadRequest(f'invalid field "{name}": at most {MAX_CLIENT_FIELD} printable characters')
        client_id, secret = body.get("clientId", "").strip(), body.get("clientSecret", "")
        if not client_id:
            raise BadRequest("missing clientId: give the client id the provider issued for this app")
        options = {k: v.strip() for k, v in body.items() if k in OVERRIDES and v.strip()}
        for name, value in options.items():
            if name != "scope" and not is_url(value):
                raise BadRequest(f'invalid field "{name}": expected an http(s) URL')
        context = f"{base.name}:{provider}"
        if secret:
            sealed = self.box.seal(secret, context)
        else:
            stored = await self.store.oauth_provider(base, provider)
            if stored is None or not stored.client_secret:
                raise BadRequest("missing clientSecret: give the client secret the provider issued for this app")
            sealed = stored.client_secret
        if provider == "oidc" and not options.get("issuer"):
            raise BadRequest('missing issuer: the oidc provider needs the issuer URL ("issuer")')
        config = ProviderConfig(provider, client_id, sealed, orjson.dumps(options).decode(), now_iso())
        await self.store.set_oauth_provider(base, config)
        return self.public(config)

    async def remove(self, base: Base, provider: str) -> None:
        if not await self.store.delete_oauth_provider(base, check_provider(provider)):
            raise NotFound(f"missing configuration for provider: {provider}")

    async def _client(self, base: Base, provider: str, redirect_uri: str) -> tuple[Provider, Client, dict[str, str]]:
        config = await self.store.oauth_provider(base, provider)
        if config is None:
            raise NotFound(f"missing configuration for provider: {provider}")
        try:
            secret = self.box.open(config.client_secret, f"{base.name}:{provider}")
        except SecretsUnreadable as exc:
            raise SBError(
                f"the {provider} client secret cannot be decrypted: APP_SECRET changed since it was set "
                "(set the provider's keys again)"
            ) from exc
        options: dict[str, str] = orjson.loads(config.options)
        return create_provider(provider, self.http), Client(config.client_id, secret, redirect_uri), options

    # the sign-in flow
    async def begin(self, base: Base, provider: str, reqid: str, redirect_uri: str) -> str:
        """The provider's authorization URL for a new flow ``reqid`` of ``base``."""
        check_reqid(reqid)
        check_provider(provider)
        impl, client, options = await self._client(base, provider, redirect_uri)
        if await self.cache.incr(_claim_key(reqid), FLOW_TTL) > 1:
            raise Conflict("reqid already used: start each sign-in with a new one")
        try:
            endpoints = await impl.endpoints(options)
        except ProviderError as exc:
            raise BadRequest(str(exc)) from exc
        verifier, nonce = generate_token(64), generate_token(32)
        state = f"{provider}_{reqid}_{base.id}"
        flow = {"base": base.id, "provider": provider, "verifier": verifier, "nonce": nonce}
        flow |= {"redirect": redirect_uri, "endpoints": asdict(endpoints)}
        await self.cache.set(_flow_key(reqid), orjson.dumps(flow).decode(), FLOW_TTL)
        return impl.authorize_url(endpoints, client, state, verifier, nonce)

    async def complete(self, state: str, code: str, error: str = "", description: str = "") -> None:
        """Finish the flow named by ``state``: the user is signed in (or created) and waits for get-user."""
        provider, _, rest = state.partition("_")
        reqid, _, base_id = rest.partition("_")
        if not provider or not reqid or not base_id:
            raise BadRequest("invalid state: expected <provider>_<reqid>_<public key>")
        check_provider(provider)
        check_reqid(reqid)
        raw = await self.cache.get(_flow_key(reqid))
        if raw is None:
            raise BadRequest("unknown or expired sign-in request: start again from the app")
        flow = orjson.loads(raw)
        if flow["base"] != base_id or flow["provider"] != provider:
            raise BadRequest("invalid request")
        if await self.cache.take(_flow_key(reqid)) != raw:  # another callback took it first
            raise BadRequest("unknown or expired sign-in request: start again from the app")
        if error:
            detail = f" ({one_line(description)})" if description else ""
            raise BadRequest(f"the sign-in was not completed at {provider}: {one_line(error, 80)}{detail}")
        if not code:
            raise BadRequest(f"missing code: {provider} sent no authorization code")
        base = await self.tenancy.base(base_id)
        impl, client, _ = await self._client(base, provider, flow["redirect"])
        endpoints = Endpoints(**flow["endpoints"])
        try:
            token = await impl.exchange(endpoints, client, code, flow["verifier"])
            found = await impl.user(endpoints, client, token, flow["nonce"])
        except ProviderError as exc:
            raise BadRequest(str(exc)) from exc
        email = require_email(found.email)
        session = await self._sign_in(base, email)
        result = {
            "base": base.id,
            "token": session,
            "email": email,
            "name": found.name,
            "first": found.first,
            "last": found.last,
            "avatarUrl": found.avatar_url,
        }
        await self.cache.set(_user_key(reqid), orjson.dumps(result).decode(), RESULT_TTL)

    async def _sign_in(self, base: Base, email: str) -> str:
        """A session token for the user with this (verified) email, created when there is none."""
        user = await self.store.user_by_email(base, email)
        if user is None:
            created = now_iso()
            account = Account(new_id(), email, created)
            user = User(new_id(), account.id, email, new_secret(), ROLE_USER, created, "")
            try:
                await self.store.create_account_with_user(base, account, user)
            except Conflict:  # the same email signed up a moment ago
                user = await self.store.user_by_email(base, email)
                if user is None:
                    raise
        return self.identities.issue(base, user)

    async def result(self, base: Base, reqid: str) -> Mapping[str, Any] | None:
        """The signed-in user of flow ``reqid`` of ``base``, while it waits; None before (or after)."""
        raw = await self.cache.get(_user_key(check_reqid(reqid)))
        if raw is None:
            return None
        found: dict[str, Any] = orjson.loads(raw)
        if found.pop("base") != base.id:
            return None
        return found
