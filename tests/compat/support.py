"""What the compat tests share besides fixtures: the live server handle and small checks."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# run_js / run_py: (scenario, **params) -> the JSON line the runner printed.
Runner = Callable[..., dict[str, Any]]

DEV_PK = "dev_memory_pk"
DEV_ROOT_ALIAS = "safe-to-use-in-dev-root-token"
DEV_ADMIN_EMAIL = "admin@dev.com"
DEV_ADMIN_PASSWORD = "devpw1234"

PASSWORD = "compat-pw-123456"

# Fixed error texts of spec 01-model.md §5 and 02-http-api.md §3.
BAD_LOGIN = "invalid email/password\n"
BAD_SESSION_PREFIX = "error validating auth key: "
MISSING_AUTH = "missing authorization HTTP header\n"


@dataclass(frozen=True)
class LiveServer:
    """A running server: its base URL, store kind and log file, plus raw-HTTP helpers."""

    url: str
    kind: str
    log_path: Path
    pk: str = DEV_PK

    def request(
        self,
        method: str,
        path: str,
        *,
        pk: str | None = None,
        token: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One request outside any client; ``pk`` defaults to the dev app's public key, '' sends none."""
        headers = dict(kwargs.pop("headers", None) or {})
        if pk is None:
            pk = self.pk
        if pk:
            headers["SB-PUBLIC-KEY"] = pk
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def new_app(self, email: str) -> dict[str, str]:
        """A new tenant and app through ``/account/init`` (web-form variant asking for JSON): {pk, rootToken, pw}."""
        r = self.request(
            "GET",
            "/account/init",
            pk="",
            params={"email": email, "ui": "1"},
            headers={"Accept": "application/json"},
        )
        assert r.status_code == 200, f"GET /account/init?email={email}&ui=1 answered {r.status_code}: {r.text}"
        assert r.headers["content-type"] == "application/json", r.headers
        body: dict[str, str] = r.json()
        assert {"pk", "rootToken", "pw"} <= set(body), body
        assert body["pk"] != self.pk
        assert body["rootToken"].count("|") == 2, body
        return body

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log file)"
    return "\n".join(text.splitlines()[-lines:])


def unique_email(prefix: str = "user") -> str:
    """An email no other test uses: a worker's tests share one server per store kind."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}@compat.example.com"


def jwt_claims(token: Any) -> dict[str, Any]:
    """The payload of an upstream-style session token (asserts its shape, not its signature)."""
    assert isinstance(token, str), f"expected a session token (JSON string), got {token!r}"
    parts = token.split(".")
    assert len(parts) == 3, f"not a JWT: {token!r}"
    header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    assert header.get("alg") == "HS256", header
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    assert claims.get("iss") == "StaticBackend", claims
    assert str(claims.get("token", "")).count("|") == 1, claims
    return claims


def assert_identity(me: Any, email: str, role: int) -> None:
    """A ``GET /me`` body: {accountId, userId, email, role} (+ id, our addition equal to userId)."""
    assert isinstance(me, dict), me
    assert me["email"] == email.lower(), me
    assert me["role"] == role, me
    assert me["accountId"] and me["userId"], me
    assert me.get("id", me["userId"]) == me["userId"], me
    assert "token" not in me, me


def assert_account_user(user: Any, email: str, role: int, account_id: str) -> None:
    """An element of ``/account/users``: never the user's secret token (spec 02 §3.9)."""
    assert isinstance(user, dict), user
    assert user["email"] == email.lower(), user
    assert user["role"] == role, user
    assert user["accountId"] == account_id, user
    assert user["id"], user
    assert "token" not in user, f"/account/users leaks the user token: {user}"
