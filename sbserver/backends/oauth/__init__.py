"""OAuth 2 sign-in providers: Google (OpenID Connect), GitHub, Facebook, X/Twitter and any
OpenID Connect issuer (``oidc``). Every request to a provider goes through the outbound guard."""

from __future__ import annotations

from sbserver.backends.oauth.base import Client, Endpoints, ExternalUser, Provider, ProviderError
from sbserver.backends.oauth.providers import PROVIDERS, create_provider

__all__ = ["PROVIDERS", "Client", "Endpoints", "ExternalUser", "Provider", "ProviderError", "create_provider"]
