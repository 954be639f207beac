"""Session tokens (HS256 JWTs with StaticBackend's claims) and root tokens.

A session JWT carries ``token = "<userId>|<userToken>"`` (and our extra claim ``sbb``, the app's public key). Signature and ``exp`` are checked;
``nbf`` is issued 30 minutes ahead, as upstream does, and deliberately never enforced.
A root token is ``<userId>|<accountId>|<userToken>`` of a role-100 user.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass

import orjson

from sbserver.errors import BadRequest
from sbserver.ids import random_code

ISSUER = "StaticBackend"
LIFETIME = 12 * 3600
_HEADER = base64.urlsafe_b64encode(orjson.dumps({"alg": "HS256", "typ": "JWT"})).rstrip(b"=")


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _invalid(detail: str) -> BadRequest:
    return BadRequest(f"error validating auth key: could not verify your authentication token: {detail}")


@dataclass(frozen=True, slots=True)
class SessionClaim:
    user_id: str
    user_token: str
    expires: int
    base_pk: str = ""  # our own claim "sbb": lets /ws find the app from the token alone


class TokenCodec:
    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("a JWT secret is required")
        self._secret = secret

    def _sign(self, signing_input: bytes) -> bytes:
        return _b64(hmac.new(self._secret, signing_input, hashlib.sha256).digest())

    def issue(self, user_id: str, user_token: str, base_pk: str = "", now: float | None = None) -> str:
        now_s = int(time.time() if now is None else now)
        payload = {
            "iss": ISSUER,
            "exp": now_s + LIFETIME,
            "nbf": now_s + 1800,
            "iat": now_s,
            "jti": random_code(32),
            "token": f"{user_id}|{user_token}",
        }
        if base_pk:
            payload["sbb"] = base_pk
        signing_input = _HEADER + b"." + _b64(orjson.dumps(payload))
        return (signing_input + b"." + self._sign(signing_input)).decode()

    def decode(self, jwt: str, now: float | None = None) -> SessionClaim:
        parts = jwt.split(".")
        if len(parts) != 3:
            raise _invalid("token contains an invalid number of segments")
        head, body, sig = parts
        expected = self._sign(f"{head}.{body}".encode())
        if not hmac.compare_digest(expected, sig.encode()):
            raise _invalid("signature is invalid")
        try:
            header = orjson.loads(_unb64(head))
            claims = orjson.loads(_unb64(body))
        except (binascii.Error, ValueError) as exc:
            raise _invalid("malformed token") from exc
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            raise _invalid("unexpected signing method")
        if not isinstance(claims, dict):
            raise _invalid("malformed claims")
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp <= int(time.time() if now is None else now):
            raise _invalid("token is expired")
        token = claims.get("token")
        if not isinstance(token, str) or token.count("|") != 1:
            raise BadRequest("error validating auth key: invalid authentication token")
        user_id, user_token = token.split("|")
        sbb = claims.get("sbb")
        return SessionClaim(user_id, user_token, exp, sbb if isinstance(sbb, str) else "")


def split_root_token(value: str) -> tuple[str, str, str]:
    parts = value.split("|")
    if len(parts) != 3 or not all(parts):
        raise BadRequest("invalid root token")
    return parts[0], parts[1], parts[2]


def root_token(user_id: str, account_id: str, user_token: str) -> str:
    return f"{user_id}|{account_id}|{user_token}"
