"""Plain data shared by services and backends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JSON = Any
Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    email: str
    plan: int = 1
    active: bool = True
    created: str = ""


@dataclass(frozen=True, slots=True)
class Base:
    """One application database. ``id`` is the public key, ``name`` the storage namespace."""

    id: str
    name: str
    tenant_id: str
    whitelist: tuple[str, ...] = ("localhost",)
    active: bool = True
    created: str = ""


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    email: str
    created: str = ""


@dataclass(frozen=True, slots=True)
class User:
    id: str
    account_id: str
    email: str
    token: str
    role: int
    created: str = ""
    password: str = field(default="", repr=False)
    reset_code: str = field(default="", repr=False)

    def public(self) -> dict[str, Any]:
        """The JSON shape clients see: never the user token nor the password hash."""
        return {
            "id": self.id,
            "accountId": self.account_id,
            "email": self.email,
            "role": self.role,
            "created": self.created,
        }


ROLE_USER = 0
ROLE_OWNER = 50
ROLE_ROOT = 100


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling, inside which base."""

    base: str  # base name
    account_id: str
    user_id: str
    email: str
    role: int
    user_token: str = field(default="", repr=False)

    @property
    def is_root(self) -> bool:
        return self.role >= ROLE_ROOT

    def public(self) -> dict[str, Any]:
        return {
            "accountId": self.account_id,
            "userId": self.user_id,
            "email": self.email,
            "role": self.role,
            "id": self.user_id,
        }


PUBLIC_CALLER_ID = "public_repo_called"


@dataclass(slots=True)
class StoredDoc:
    """A document as stored: the client's fields in ``data``, system fields beside them."""

    id: str
    account_id: str
    owner_id: str
    created: str
    data: dict[str, Any]

    def public(self) -> dict[str, Any]:
        """The JSON clients see: the data plus ``id`` and ``accountId`` (never the owner)."""
        out = dict(self.data)
        out["id"] = self.id
        out["accountId"] = self.account_id
        return out


@dataclass(frozen=True, slots=True)
class Scope:
    """Which rows a caller may touch: all (both None), one account, or one user of an account."""

    account_id: str | None = None
    owner_id: str | None = None


ALL_ROWS = Scope()
