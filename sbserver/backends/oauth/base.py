"""The provider contract: build the authorization URL, exchange the code, read the user.

A provider knows its default endpoints; an app may override each of them (``authorizeUrl``,
``tokenUrl``, ``userinfoUrl``, ``jwksUrl``, ``issuer``, ``emailsUrl``, ``scope``) for a self-hosted
identity provider or for tests. The URL building, PKCE (S256) and client authentication come from
Authlib's framework-free OAuth 2 core; every HTTP request goes through :class:`Outbound`, so a
provider URL an app configured is held to the same address rules as a function's ``fetch``.

Every failure the user can cause or see (refused code, no verified email, provider unreachable)
raises :class:`ProviderError`, whose text is one line saying what happened.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import orjson
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from sbserver.outbound import Outbound, OutboundError

OVERRIDES = {  # option name -> Endpoints field
    "authorizeUrl": "authorize",
    "tokenUrl": "token",
    "userinfoUrl": "userinfo",
    "jwksUrl": "jwks",
    "emailsUrl": "emails",
    "issuer": "issuer",
    "scope": "scope",
}
MAX_TEXT = 200


class ProviderError(Exception):
    """The sign-in cannot complete; ``str()`` is a one-line reason for the user."""


def one_line(value: Any, limit: int = MAX_TEXT) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in str(value)).split())[:limit]


def is_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


@dataclass(frozen=True)
class Endpoints:
    authorize: str = ""
    token: str = ""
    userinfo: str = ""
    jwks: str = ""
    emails: str = ""  # GitHub: the user's addresses and whether each is verified
    issuer: str = ""  # OpenID Connect: the id_token's ``iss``
    scope: str = ""

    def with_options(self, options: Mapping[str, str]) -> Endpoints:
        return replace(self, **{OVERRIDES[k]: v for k, v in options.items() if k in OVERRIDES and v})


@dataclass(frozen=True)
class Client:
    """An app's registration with the provider, and where the provider sends the browser back."""

    client_id: str
    client_secret: str
    redirect_uri: str


@dataclass(frozen=True)
class ExternalUser:
    """The provider's user; ``email`` is always one the provider says is verified."""

    email: str
    name: str = ""
    first: str = ""
    last: str = ""
    avatar_url: str = ""


def split_name(name: str) -> tuple[str, str]:
    first, _, last = name.strip().partition(" ")
    return first, last.strip()


class Provider(ABC):
    name: str = ""
    defaults: Endpoints = Endpoints()
    auth_method = "client_secret_basic"  # how the client authenticates at the token endpoint
    needs: tuple[str, ...] = ("authorize", "token", "userinfo")  # endpoints that must be set

    def __init__(self, http: Outbound) -> None:
        self.http = http

    async def endpoints(self, options: Mapping[str, str]) -> Endpoints:
        """The endpoints in force for an app: the defaults with the app's overrides."""
        return self.complete(self.defaults.with_options(options))

    def complete(self, found: Endpoints) -> Endpoints:
        """``found``, once every endpoint the provider needs is set (``ProviderError`` otherwise)."""
        missing = [n for n in self.needs if not getattr(found, n)]
        if missing:
            raise ProviderError(f"the {self.name} configuration lacks its {', '.join(missing)} URL")
        return found

    def authorize_url(self, endpoints: Endpoints, client: Client, state: str, verifier: str, nonce: str) -> str:
        """Where the browser goes to sign in: code flow with PKCE (S256) and a nonce."""
        return str(
            prepare_grant_uri(
                endpoints.authorize,
                client.client_id,
                "code",
                redirect_uri=client.redirect_uri,
                scope=endpoints.scope or None,
                state=state,
                code_challenge=create_s256_code_challenge(verifier),
                code_challenge_method="S256",
                nonce=nonce,
            )
        )

    async def exchange(self, endpoints: Endpoints, client: Client, code: str, verifier: str) -> dict[str, Any]:
        """The token response for an authorization code; ``ProviderError`` when refused."""
        body = prepare_token_request(
            "authorization_code", redirect_uri=client.redirect_uri, code=code, code_verifier=verifier
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        auth = ClientAuth(client.client_id, client.client_secret, self.auth_method)
        url, signed_headers, signed_body = auth.prepare("POST", endpoints.token, headers, body)
        status, token = await self.call("POST", url, headers=signed_headers, content=signed_body)
        if not isinstance(token, dict):
            raise ProviderError(f"the {self.name} token endpoint answered {status} without a JSON object")
        if status >= 400 or "error" in token:  # GitHub answers its errors with 200
            reason = one_line(token.get("error", f"status {status}"))
            detail = one_line(token.get("error_description", ""))
            raise ProviderError(f"{self.name} refused the code: {reason}" + (f" ({detail})" if detail else ""))
        if not isinstance(token.get("access_token"), str) or not token["access_token"]:
            raise ProviderError(f"the {self.name} token endpoint gave no access token")
        return token

    @abstractmethod
    async def user(self, endpoints: Endpoints, client: Client, token: Mapping[str, Any], nonce: str) -> ExternalUser:
        """The signed-in user; ``ProviderError`` when the provider gives no verified email."""

    async def call(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, content: str | None = None
    ) -> tuple[int, Any]:
        """(status, decoded JSON body or None) of one request through the outbound guard."""
        try:
            reply = await self.http.request(method, url, headers=headers, content=content)
        except OutboundError as exc:
            raise ProviderError(f"{self.name} could not be reached: {one_line(exc)}") from exc
        try:
            return reply.status, orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            return reply.status, None

    async def get_json(self, url: str, access_token: str = "") -> Any:
        """A provider API's JSON answer (with the user's bearer token); ``ProviderError`` otherwise."""
        headers = {"Accept": "application/json"}
        if access_token:
            headers["Authorization"] = f"Bearer {access_token}"
        status, value = await self.call("GET", url, headers=headers)
        if status >= 400 or value is None:
            raise ProviderError(f"{self.name} answered {status} at {one_line(urlsplit(url).path, 80)}")
        return value
