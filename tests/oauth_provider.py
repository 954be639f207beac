"""A real OAuth 2 / OpenID Connect authorization server for the tests, on a local port.

It checks what a real provider checks: the client id and secret (HTTP Basic or form fields), the
exact redirect URI, PKCE (S256 required), single-use codes bound to their client and redirect
URI, bearer tokens on the user APIs. Its consent page is a small HTML form whose buttons allow
as one of the provider's users or deny. Besides the OpenID Connect endpoints (discovery, JWKS,
RS256 id_tokens with the flow's nonce, userinfo) it answers the user APIs of GitHub
(``/github/user``, ``/github/user/emails``), Facebook (``/facebook/me``) and X
(``/twitter/2/users/me``) in their shapes, so every provider of the server runs against it.

``serve(app)`` runs any ASGI app with uvicorn in a thread on a free port of 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

KID = "test-key-1"


@dataclass
class ProviderUser:
    login: str
    email: str
    verified: bool = True
    name: str = "Jane Roe"
    given: str = "Jane"
    family: str = "Roe"
    picture: str = "https://pics.example.com/jane.png"
    sub: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass
class Pending:
    client_id: str
    redirect_uri: str
    state: str
    scope: str
    challenge: str
    nonce: str


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    scope: str
    user: ProviderUser
    used: bool = False


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class OAuthProvider:
    """The authorization server's state; ``app`` serves it, ``running()`` starts it."""

    def __init__(self) -> None:
        self.url = ""
        self.clients: dict[str, tuple[str, str]] = {}  # id -> (secret, redirect URI)
        self.users: dict[str, ProviderUser] = {}
        self.pending: dict[str, Pending] = {}
        self.grants: dict[str, Grant] = {}
        self.tokens: dict[str, Grant] = {}
        self.token_requests: list[dict[str, str]] = []  # what each token request carried, and its outcome
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.lock = threading.Lock()
        self.app = Starlette(routes=self.routes())

    @contextmanager
    def running(self) -> Iterator[OAuthProvider]:
        with serve(self.app) as url:
            self.url = url
            yield self

    def add_client(self, redirect_uri: str) -> tuple[str, str]:
        client_id, secret = "client-" + secrets.token_hex(6), secrets.token_urlsafe(24)
        self.clients[client_id] = (secret, redirect_uri)
        return client_id, secret

    def add_user(self, login: str, email: str, **kw: Any) -> ProviderUser:
        user = ProviderUser(login, email, **kw)
        self.users[login] = user
        return user

    def endpoints(self, kind: str = "google") -> dict[str, str]:
        """The endpoint overrides that point the server's ``kind`` provider here."""
        u = self.url
        common = {"authorizeUrl": f"{u}/authorize", "tokenUrl": f"{u}/token"}
        if kind in ("google", "oidc"):
            return {**common, "userinfoUrl": f"{u}/userinfo", "jwksUrl": f"{u}/jwks", "issuer": u}
        if kind == "github":
            return {**common, "userinfoUrl": f"{u}/github/user", "emailsUrl": f"{u}/github/user/emails"}
        if kind == "facebook":
            return {**common, "userinfoUrl": f"{u}/facebook/me"}
        return {**common, "userinfoUrl": f"{u}/twitter/2/users/me"}

    # --- routes ---------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/.well-known/openid-configuration", self.discovery),
            Route("/jwks", self.jwks),
            Route("/authorize", self.authorize, methods=["GET"]),
            Route("/authorize", self.consent, methods=["POST"]),
            Route("/token", self.token, methods=["POST"]),
            Route("/userinfo", self.userinfo),
            Route("/github/user", self.github_user),
            Route("/github/user/emails", self.github_emails),
            Route("/facebook/me", self.facebook_me),
            Route("/twitter/2/users/me", self.twitter_me),
        ]

    async def discovery(self, request: Request) -> Response:
        u = self.url
        return JSONResponse(
            {
                "issuer": u,
                "authorization_endpoint": f"{u}/authorize",
                "token_endpoint": f"{u}/token",
                "userinfo_endpoint": f"{u}/userinfo",
                "jwks_uri": f"{u}/jwks",
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def jwks(self, request: Request) -> Response:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return JSONResponse({"keys": [{**jwk, "kid": KID, "use": "sig", "alg": "RS256"}]})

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        client = self.clients.get(q.get("client_id", ""))
        if client is None or q.get("redirect_uri") != client[1]:
            # never redirect to an unregistered URI
            return HTMLResponse("<p>unknown client or redirect_uri</p>", status_code=400)
        redirect, state = client[1], q.get("state", "")
        if q.get("response_type") != "code":
            return self._back(redirect, {"error": "unsupported_response_type", "state": state})
        if not q.get("code_challenge") or q.get("code_challenge_method") != "S256":
            return self._back(redirect, {"error": "invalid_request", "error_description": "PKCE S256 required"})
        txn = secrets.token_urlsafe(16)
        self.pending[txn] = Pending(
            q["client_id"], redirect, state, q.get("scope", ""), q["code_challenge"], q.get("nonce", "")
        )
        buttons = "".join(
            f'<button type="submit" name="user" value="{html.escape(u.login)}" id="allow-{html.escape(u.login)}">'
            f"Allow as {html.escape(u.email)}</button>"
            for u in self.users.values()
        )
        page = (
            "<!doctype html><html><head><title>Test provider: consent</title></head><body>"
            f"<h1>Sign in to {html.escape(q['client_id'])}</h1>"
            f'<form method="post" action="/authorize"><input type="hidden" name="txn" value="{txn}">'
            f'{buttons}<button type="submit" name="deny" value="1" id="deny">Deny</button></form></body></html>'
        )
        return HTMLResponse(page)

    async def consent(self, request: Request) -> Response:
        form = await request.form()
        pending = self.pending.pop(str(form.get("txn", "")), None)
        if pending is None:
            return HTMLResponse("<p>unknown transaction</p>", status_code=400)
        if form.get("deny") or str(form.get("user", "")) not in self.users:
            return self._back(pending.redirect_uri, {"error": "access_denied", "state": pending.state})
        code = secrets.token_urlsafe(24)
        user = self.users[str(form["user"])]
        self.grants[code] = Grant(
            pending.client_id, pending.redirect_uri, pending.challenge, pending.nonce, pending.scope, user
        )
        return self._back(pending.redirect_uri, {"code": code, "state": pending.state})

    @staticmethod
    def _back(redirect_uri: str, params: dict[str, str]) -> Response:
        sep = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(redirect_uri + sep + urlencode(params), status_code=302)

    def _token_error(self, record: dict[str, str], error: str, status: int = 400) -> Response:
        record["outcome"] = error
        return JSONResponse({"error": error, "error_description": f"test provider: {error}"}, status_code=status)

    async def token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        record = {**form, "authorization": request.headers.get("authorization", "")}
        self.token_requests.append(record)
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        auth = request.headers.get("authorization", "")
        if auth.startswith("Basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        client = self.clients.get(client_id)
        if client is None or not secrets.compare_digest(client[0], secret):
            return self._token_error(record, "invalid_client", 401)
        if form.get("grant_type") != "authorization_code":
            return self._token_error(record, "unsupported_grant_type")
        with self.lock:
            grant = self.grants.get(form.get("code", ""))
            if grant is None or grant.used:
                if grant is not None:  # a replayed code: RFC 6749 §4.1.2 says revoke what it gave
                    for token in [t for t, g in self.tokens.items() if g is grant]:
                        del self.tokens[token]
                return self._token_error(record, "invalid_grant")
            grant.used = True
        if grant.client_id != client_id or grant.redirect_uri != form.get("redirect_uri"):
            return self._token_error(record, "invalid_grant")
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        if not verifier or not secrets.compare_digest(digest, grant.challenge):
            return self._token_error(record, "invalid_grant")
        access = secrets.token_urlsafe(24)
        self.tokens[access] = grant
        answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": 3600}
        if "openid" in grant.scope.split():
            answer["id_token"] = self.id_token(grant)
        record["outcome"] = "ok"
        return JSONResponse(answer)

    def id_token(self, grant: Grant, **changes: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": grant.client_id,
            "sub": grant.user.sub,
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
            **self.claims(grant.user),
            **changes,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KID})

    @staticmethod
    def claims(user: ProviderUser) -> dict[str, Any]:
        return {
            "sub": user.sub,
            "email": user.email,
            "email_verified": user.verified,
            "name": user.name,
            "given_name": user.given,
            "family_name": user.family,
            "picture": user.picture,
        }

    def _bearer(self, request: Request) -> ProviderUser | None:
        auth = request.headers.get("authorization", "")
        grant = self.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        return grant.user if grant else None

    async def userinfo(self, request: Request) -> Response:
        user = self._bearer(request)
        if user is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse(self.claims(user))

    async def github_user(self, request: Request) -> Response:
        user = self._bearer(request)
        if user is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return JSONResponse({"id": 1, "login": user.login, "name": user.name, "avatar_url": user.picture})

    async def github_emails(self, request: Request) -> Response:
        user = self._bearer(request)
        if user is None:
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return JSONResponse(
            [
                {"email": f"other-{user.email}", "primary": False, "verified": True},
                {"email": user.email, "primary": True, "verified": user.verified},
            ]
        )

    async def facebook_me(self, request: Request) -> Response:
        user = self._bearer(request)
        if user is None:
            return JSONResponse({"error": {"message": "invalid token"}}, status_code=400)
        me: dict[str, Any] = {"id": user.sub, "name": user.name, "first_name": user.given, "last_name": user.family}
        me["picture"] = {"data": {"url": user.picture}}
        if user.verified:  # Facebook shares confirmed addresses only
            me["email"] = user.email
        return JSONResponse(me)

    async def twitter_me(self, request: Request) -> Response:
        user = self._bearer(request)
        if user is None:
            return JSONResponse({"title": "Unauthorized"}, status_code=401)
        data: dict[str, Any] = {"id": user.sub, "name": user.name, "username": user.login}
        data["profile_image_url"] = user.picture
        if user.verified:
            data["confirmed_email"] = user.email
        return JSONResponse({"data": data})
