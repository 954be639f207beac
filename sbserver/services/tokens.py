"""Session tokens (HS256 JWTs with StaticBackend's claims, through PyJWT) and root tokens.

A session JWT carries ``token = "<userId>|<userToken>"`` (and our extra claim ``sbb``, the app's
public key). The algorithm is pinned to HS256; signature, ``exp`` and ``iss`` are checked; ``nbf``
is issued 30 minutes ahead, as upstream does, and deliberately never enforced. Tokens minted by
the earlier hand-written signer and by upstream have the same header and claims and stay valid.
A root token is ``<userId>|<accountId>|<userToken>`` of a role-100 user.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from sbserver.errors import BadRequest
from sbserver.ids import random_code

ISSUER = "StaticBackend"
LIFETIME = 12 * 3600
ALGORITHM = "HS256"  # pinned: the header's "alg" is never trusted (no "none", no HS512 on the same key)


def _invalid(detail: str) -> BadRequest:
    return BadRequest(f"error validating auth key: could not verify your authentication token: {detail}")


@dataclass(frozen=True, slots=True)
class SessionClaim:
    user_id: str
    user_token: str
    expires: int
    base_pk: str = ""  # our own claim "sbb": lets /ws find the app from the token alone


class TokenCodec:
    """Issue and verify session JWTs with PyJWT: HS256 only, ``exp`` and ``iss`` required and checked."""

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("a JWT secret is required")
        self._secret = secret

    def issue(self, user_id: str, user_token: str, base_pk: str = "", now: float | None = None) -> str:
        now_s = int(time.time() if now is None else now)
        payload: dict[str, object] = {
            "iss": ISSUER,
            "exp": now_s + LIFETIME,
            "nbf": now_s + 1800,
            "iat": now_s,
            "jti": random_code(32),
            "token": f"{user_id}|{user_token}",
        }
        if base_pk:
            payload["sbb"] = base_pk
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM, headers={"typ": "JWT"})

    def decode(self, token: str) -> SessionClaim:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                # nbf is issued 30 minutes ahead, as upstream does: enforcing it would refuse every fresh token
                options={"require": ["exp", "iss"], "verify_nbf": False, "verify_iat": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise _invalid("token is expired") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise _invalid("unexpected signing method") from exc
        except jwt.InvalidSignatureError as exc:
            raise _invalid("signature is invalid") from exc
        except jwt.InvalidIssuerError as exc:
            raise _invalid("wrong issuer") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise _invalid(f"missing claim {exc.claim!r}") from exc
        except jwt.InvalidTokenError as exc:
            raise _invalid("malformed token") from exc
        value = claims.get("token")
        if not isinstance(value, str) or value.count("|") != 1:
            raise BadRequest("error validating auth key: invalid authentication token")
        user_id, user_token = value.split("|")
        sbb = claims.get("sbb")
        return SessionClaim(user_id, user_token, int(claims["exp"]), sbb if isinstance(sbb, str) else "")


def split_root_token(value: str) -> tuple[str, str, str]:
    parts = value.split("|")
    if len(parts) != 3 or not all(parts):
        raise BadRequest("invalid root token")
    return parts[0], parts[1], parts[2]


def root_token(user_id: str, account_id: str, user_token: str) -> str:
    return f"{user_id}|{account_id}|{user_token}"
