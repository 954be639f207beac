"""The accounts contract: tenants, bases, accounts and users (see ``storage.base`` for errors)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from sbserver.types import Account, Base, Tenant, User


class AccountStore(ABC):
    """Tenants and their bases; the accounts and users of a base."""

    # tenants and bases
    @abstractmethod
    async def create_tenant(self, tenant: Tenant) -> None:
        """Insert a tenant; ``Conflict`` if its email is taken."""

    @abstractmethod
    async def tenant_by_email(self, email: str) -> Tenant | None:
        """The tenant with that (lower-cased) email."""

    @abstractmethod
    async def create_base(self, base: Base) -> None:
        """Insert a base and create its storage namespace; ``Conflict`` if pk or name is taken."""

    @abstractmethod
    async def base_by_pk(self, pk: str) -> Base | None:
        """The base with that public key."""

    @abstractmethod
    async def bases_of_tenant(self, tenant_id: str) -> list[Base]:
        """Every base of a tenant, oldest first."""

    # accounts and users
    @abstractmethod
    async def create_account_with_user(self, base: Base, account: Account, user: User) -> None:
        """Insert an account and its first user in one transaction; ``Conflict`` on a taken email."""

    @abstractmethod
    async def create_user(self, base: Base, user: User) -> None:
        """Insert a user into an existing account; ``Conflict`` on a taken email."""

    @abstractmethod
    async def user_by_email(self, base: Base, email: str) -> User | None:
        """The user with that (lower-cased) email."""

    @abstractmethod
    async def user_by_id(self, base: Base, user_id: str) -> User | None:
        """The user with that id."""

    @abstractmethod
    async def root_user(self, base: Base) -> User | None:
        """The base's oldest user of role 100 or more (its administrator)."""

    @abstractmethod
    async def users_of_account(self, base: Base, account_id: str) -> list[User]:
        """The users of one account, oldest first."""

    @abstractmethod
    async def accounts(self, base: Base) -> list[Account]:
        """Every account of the base, oldest first."""

    @abstractmethod
    async def count_users(self, base: Base) -> int:
        """How many users the base has (every account)."""

    @abstractmethod
    async def delete_user(self, base: Base, user_id: str) -> bool:
        """Remove one user row (its account and documents stay); True if it existed."""

    @abstractmethod
    async def set_password(self, base: Base, user_id: str, password_hash: str, token: str) -> None:
        """Replace a user's password hash and secret token (which ends every session built on the old one)."""

    @abstractmethod
    async def set_reset_code(self, base: Base, email: str, code: str) -> bool:
        """Store a password-reset code for the user with that email; False if no such user."""

    @abstractmethod
    async def reset_password(self, base: Base, email: str, code: str, password_hash: str, token: str) -> bool:
        """Set the password and secret token where email and a non-empty code match, clearing the code."""

    # allowed origins (CORS)
    @abstractmethod
    async def set_whitelist(self, base_pk: str, origins: list[str]) -> bool:
        """Replace a base's list of allowed origins; False if no base has that public key."""

    @abstractmethod
    async def whitelist_entries(self) -> list[str]:
        """Every distinct entry of the active bases' lists of allowed origins."""

    # emails sent (spec 01 §1.2: the hidden monthly email counter)
    @abstractmethod
    async def count_email(self, base: Base, month: str) -> int:
        """Add one to the emails the base sent in ``month`` (``YYYY-MM``); the new total."""

    @abstractmethod
    async def emails_sent(self, base: Base, month: str) -> int:
        """The emails the base sent in ``month`` (``YYYY-MM``); 0 when none."""

    # one's own email, roles
    @abstractmethod
    async def change_email(self, base: Base, user: User, email: str, token: str, tenant_id: str = "") -> bool:
        """Give ``user`` a new email and secret token in one transaction; the account's email and
        (with ``tenant_id``) the tenant's follow where they equal the old one. ``Conflict`` on a
        taken email; False if the user row no longer has its old email."""

    @abstractmethod
    async def set_role(self, base: Base, user_id: str, role: int) -> bool:
        """Set a user's role; False if no such user."""
