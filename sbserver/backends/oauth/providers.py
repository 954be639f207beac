"""The providers: Google and any OpenID Connect issuer, GitHub, Facebook, X/Twitter.

Only a verified email signs a user in:

- OpenID Connect (google, oidc): the id_token is checked (signature against the issuer's JWKS,
  ``iss``, ``aud``, expiry, the flow's ``nonce``); the userinfo ``sub`` must be the id_token's;
  ``email_verified`` must be true.
- GitHub: the primary address of ``/user/emails``, when GitHub marks it verified.
- Facebook: the Graph API gives ``email`` only for a confirmed address.
- X: OAuth 2 with PKCE; ``confirmed_email`` (scope ``users.email``, an X app setting). X gives no
  email unless the app has that permission: then the sign-in is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt

from sbserver.backends.oauth.base import Client, Endpoints, ExternalUser, Provider, ProviderError, one_line, split_name
from sbserver.outbound import Outbound

ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
LEEWAY = 60  # seconds of clock difference accepted on id_token times


def _text(value: Any) -> str:
    return one_line(value, 500) if isinstance(value, str) else ""


class OpenIDProvider(Provider):
    """An OpenID Connect issuer; endpoints from discovery when ``issuer`` alone is configured."""

    name = "oidc"
    defaults = Endpoints(scope="openid email profile")
    needs = ("authorize", "token", "userinfo", "jwks", "issuer")
    issuers: tuple[str, ...] = ()  # other spellings of the issuer a provider uses

    async def endpoints(self, options: Mapping[str, str]) -> Endpoints:
        found = self.defaults.with_options(options)
        if found.issuer and not (found.authorize and found.token):
            found = await self._discover(found)
        return self.complete(found)

    async def _discover(self, found: Endpoints) -> Endpoints:
        url = found.issuer.rstrip("/") + "/.well-known/openid-configuration"
        meta = await self.get_json(url)
        if not isinstance(meta, dict) or meta.get("issuer") != found.issuer:
            raise ProviderError(f"the discovery document of {one_line(found.issuer, 100)} names another issuer")
        pick = {k: meta.get(k) for k in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri")}
        return Endpoints(
            authorize=found.authorize or _text(pick["authorization_endpoint"]),
            token=found.token or _text(pick["token_endpoint"]),
            userinfo=found.userinfo or _text(pick["userinfo_endpoint"]),
            jwks=found.jwks or _text(pick["jwks_uri"]),
            issuer=found.issuer,
            scope=found.scope,
        )

    async def claims(self, endpoints: Endpoints, client: Client, id_token: str, nonce: str) -> dict[str, Any]:
        """The verified claims of an id_token."""
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as exc:
            raise ProviderError(f"{self.name} sent an unreadable id_token: {one_line(exc)}") from exc
        keys = await self.get_json(endpoints.jwks)
        try:
            keyset = jwt.PyJWKSet.from_dict(keys if isinstance(keys, dict) else {})
        except jwt.PyJWTError as exc:
            raise ProviderError(f"{self.name} published no usable signing key: {one_line(exc)}") from exc
        kid = header.get("kid")
        matching = [k for k in keyset.keys if kid is None or k.key_id == kid]
        if not matching:
            raise ProviderError(f"{self.name} signed the id_token with a key it does not publish")
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                matching[0].key,
                algorithms=ID_TOKEN_ALGORITHMS,
                audience=client.client_id,
                leeway=LEEWAY,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise ProviderError(f"{self.name} sent an invalid id_token: {one_line(exc)}") from exc
        if claims.get("iss") not in (endpoints.issuer, *self.issuers):
            raise ProviderError(f"the id_token comes from another issuer than {one_line(endpoints.issuer, 100)}")
        if claims.get("nonce") != nonce:
            raise ProviderError("the id_token does not belong to this sign-in (nonce mismatch)")
        return claims

    async def user(self, endpoints: Endpoints, client: Client, token: Mapping[str, Any], nonce: str) -> ExternalUser:
        id_token = token.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise ProviderError(f"{self.name} gave no id_token (is the openid scope allowed?)")
        claims = await self.claims(endpoints, client, id_token, nonce)
        info = await self.get_json(endpoints.userinfo, str(token["access_token"]))
        if not isinstance(info, dict) or info.get("sub") != claims["sub"]:
            raise ProviderError(f"{self.name}'s userinfo describes another user than the id_token")
        merged = {**claims, **info}
        email = _text(merged.get("email"))
        if not email:
            raise ProviderError(f"{self.name} did not share an email address (is the email scope allowed?)")
        if merged.get("email_verified") not in (True, "true"):
            raise ProviderError(f"{self.name} has not verified the email address {email}")
        name = _text(merged.get("name"))
        first, last = _text(merged.get("given_name")), _text(merged.get("family_name"))
        if not first and not last:
            first, last = split_name(name)
        return ExternalUser(email, name or f"{first} {last}".strip(), first, last, _text(merged.get("picture")))


class GoogleProvider(OpenIDProvider):
    name = "google"
    defaults = Endpoints(
        authorize="https://accounts.google.com/o/oauth2/v2/auth",
        token="https://oauth2.googleapis.com/token",
        userinfo="https://openidconnect.googleapis.com/v1/userinfo",
        jwks="https://www.googleapis.com/oauth2/v3/certs",
        issuer="https://accounts.google.com",
        scope="openid email profile",
    )
    issuers = ("accounts.google.com",)


class GitHubProvider(Provider):
    name = "github"
    auth_method = "client_secret_post"
    defaults = Endpoints(
        authorize="https://github.com/login/oauth/authorize",
        token="https://github.com/login/oauth/access_token",
        userinfo="https://api.github.com/user",
        emails="https://api.github.com/user/emails",
        scope="read:user user:email",
    )
    needs = ("authorize", "token", "userinfo", "emails")

    async def user(self, endpoints: Endpoints, client: Client, token: Mapping[str, Any], nonce: str) -> ExternalUser:
        access = str(token["access_token"])
        profile = await self.get_json(endpoints.userinfo, access)
        emails = await self.get_json(endpoints.emails, access)
        if not isinstance(profile, dict) or not isinstance(emails, list):
            raise ProviderError("github answered with an unexpected user description")
        primary = [e for e in emails if isinstance(e, dict) and e.get("primary") is True]
        if not primary or not _text(primary[0].get("email")):
            raise ProviderError("github did not share a primary email address (is the user:email scope allowed?)")
        email = _text(primary[0]["email"])
        if primary[0].get("verified") is not True:
            raise ProviderError(f"github has not verified the email address {email}")
        name = _text(profile.get("name")) or _text(profile.get("login"))
        first, last = split_name(name)
        return ExternalUser(email, name, first, last, _text(profile.get("avatar_url")))


class FacebookProvider(Provider):
    name = "facebook"
    auth_method = "client_secret_post"
    defaults = Endpoints(
        authorize="https://www.facebook.com/v21.0/dialog/oauth",
        token="https://graph.facebook.com/v21.0/oauth/access_token",
        userinfo="https://graph.facebook.com/v21.0/me?fields=id,name,email,first_name,last_name,picture",
        scope="email public_profile",
    )

    async def user(self, endpoints: Endpoints, client: Client, token: Mapping[str, Any], nonce: str) -> ExternalUser:
        me = await self.get_json(endpoints.userinfo, str(token["access_token"]))
        if not isinstance(me, dict):
            raise ProviderError("facebook answered with an unexpected user description")
        email = _text(me.get("email"))  # present only for a confirmed address
        if not email:
            raise ProviderError("facebook did not share a confirmed email address (is the email permission granted?)")
        picture = me.get("picture")
        data = picture.get("data") if isinstance(picture, dict) else None
        avatar = _text(data.get("url")) if isinstance(data, dict) else ""
        name = _text(me.get("name"))
        first, last = _text(me.get("first_name")), _text(me.get("last_name"))
        if not first and not last:
            first, last = split_name(name)
        return ExternalUser(email, name, first, last, avatar)


class TwitterProvider(Provider):
    name = "twitter"
    defaults = Endpoints(
        authorize="https://x.com/i/oauth2/authorize",
        token="https://api.x.com/2/oauth2/token",
        userinfo="https://api.x.com/2/users/me?user.fields=confirmed_email,profile_image_url",
        scope="tweet.read users.read users.email",
    )

    async def user(self, endpoints: Endpoints, client: Client, token: Mapping[str, Any], nonce: str) -> ExternalUser:
        answer = await self.get_json(endpoints.userinfo, str(token["access_token"]))
        me = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(me, dict):
            raise ProviderError("twitter answered with an unexpected user description")
        email = _text(me.get("confirmed_email"))
        if not email:
            raise ProviderError(
                "X did not share a confirmed email address (the X app needs the users.email permission): "
                "sign in another way"
            )
        name = _text(me.get("name")) or _text(me.get("username"))
        first, last = split_name(name)
        return ExternalUser(email, name, first, last, _text(me.get("profile_image_url")))


PROVIDERS: dict[str, type[Provider]] = {
    p.name: p for p in (GoogleProvider, GitHubProvider, FacebookProvider, TwitterProvider, OpenIDProvider)
}


def create_provider(name: str, http: Outbound) -> Provider:
    """The provider called ``name`` (a key of ``PROVIDERS``)."""
    return PROVIDERS[name](http)
