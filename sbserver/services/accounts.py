"""Accounts and users of one base: sign-up, sign-in, passwords, magic links, account members."""

from __future__ import annotations

import secrets

from sbserver.backends.cache import Cache
from sbserver.backends.mail import Email, Mailer
from sbserver.backends.storage import Store
from sbserver.errors import BadRequest, Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized
from sbserver.ids import new_id, new_secret, now_iso, random_code
from sbserver.services.identity import IdentityService
from sbserver.services.passwords import check_password, hash_password
from sbserver.settings import Settings
from sbserver.types import ROLE_OWNER, ROLE_USER, Account, Base, Identity, User

MAGIC_TTL = 12 * 3600
MAGIC_MAX_ATTEMPTS = 10
DEV_MAGIC_CODE = "666333"
BAD_LOGIN = "invalid email/password"


def normalize_email(email: str) -> str:
    return email.strip().lower()


def require_email(email: str) -> str:
    """Lower-cased email, or 400 when it cannot be an address."""
    email = normalize_email(email)
    at = email.find("@")
    if at <= 0 or "." not in email[at:] or len(email) > 320 or any(c.isspace() for c in email):
        raise BadRequest("invalid email")
    return email


def require_password(password: str) -> str:
    if not password:
        raise BadRequest("invalid password: it must not be empty")
    return password


class AccountService:
    def __init__(
        self, store: Store, cache: Cache, mailer: Mailer, identities: IdentityService, settings: Settings
    ) -> None:
        self.store = store
        self.cache = cache
        self.mailer = mailer
        self.identities = identities
        self.settings = settings

    # sign-up and sign-in
    async def register(self, base: Base, email: str, password: str) -> str:
        email = require_email(email)
        require_password(password)
        if await self.store.user_by_email(base, email) is not None:
            raise Conflict("invalid email: this email is already registered")
        created = now_iso()
        account = Account(new_id(), email, created)
        user = User(new_id(), account.id, email, new_secret(), ROLE_OWNER, created, await hash_password(password))
        try:
            await self.store.create_account_with_user(base, account, user)
        except Conflict as exc:
            raise Conflict("invalid email: this email is already registered") from exc
        return self.identities.issue(base, user)

    async def _check_login_rate(self, base: Base, email: str, address: str) -> list[str]:
        keys = [f"loginfail:{base.name}:e:{email}"]
        if address:
            keys.append(f"loginfail:{base.name}:a:{address}")
        limit = self.settings.login_max_failures
        if limit > 0:
            for key in keys:
                count = await self.cache.get(key)
                if count is not None and int(count) >= limit:
                    minutes = max(1, self.settings.login_window_seconds // 60)
                    raise TooManyRequests(
                        f"too many failed logins: try again in {minutes} minutes or reset the password"
                    )
        return keys

    async def login(self, base: Base, email: str, password: str, address: str = "") -> str:
        email = normalize_email(email)
        keys = await self._check_login_rate(base, email, address)
        user = await self.store.user_by_email(base, email)
        if user is None or not await check_password(password, user.password):
            if self.settings.login_max_failures > 0:
                for key in keys:
                    await self.cache.incr(key, self.settings.login_window_seconds)
            raise Unauthorized(BAD_LOGIN)
        await self.cache.delete(keys[0])
        return self.identities.issue(base, user)

    async def email_exists(self, base: Base, email: str) -> bool:
        email = normalize_email(email)
        return bool(email) and await self.store.user_by_email(base, email) is not None

    async def token_for_account(self, base: Base, account_id: str) -> str:
        users = await self.store.users_of_account(base, account_id)
        if not users:
            raise NotFound("no user found in this account")
        return self.identities.issue(base, users[0])

    # members of the caller's account
    async def add_user(self, caller: Identity, base: Base, email: str, password: str) -> User:
        email = normalize_email(email)
        if "@" not in email or "." not in email:
            raise BadRequest("invalid email")
        email = require_email(email)
        require_password(password)
        if await self.store.user_by_email(base, email) is not None:
            raise Conflict("email already in use")
        user = User(
            new_id(), caller.account_id, email, new_secret(), ROLE_USER, now_iso(), await hash_password(password)
        )
        try:
            await self.store.create_user(base, user)
        except Conflict as exc:
            raise Conflict("email already in use") from exc
        return user

    async def list_users(self, caller: Identity, base: Base) -> list[User]:
        return await self.store.users_of_account(base, caller.account_id)

    async def delete_user(self, caller: Identity, base: Base, user_id: str) -> None:
        target = await self.store.user_by_id(base, user_id)
        if target is None or target.account_id != caller.account_id:
            raise NotFound("user not found in your account")
        if caller.role < target.role:
            raise Forbidden("permission level not high enough")
        await self.store.delete_user(base, user_id)
        self.identities.forget_user(base, user_id)

    # passwords
    async def reset_code(self, base: Base, email: str) -> str:
        email = normalize_email(email)
        if email.find("@") <= 0:
            raise BadRequest("invalid email")
        code = random_code(10, first="a")
        if not await self.store.set_reset_code(base, email, code):
            raise NotFound("no user with this email")
        return code

    async def send_reset_code(self, base: Base, email: str) -> None:
        """Email a reset code to the user; silent when the email is unknown (no user enumeration)."""
        email = require_email(email)
        code = random_code(10, first="a")
        if not await self.store.set_reset_code(base, email, code):
            return
        await self.mailer.send(
            Email(
                to=email,
                subject="Your password reset code",
                html=f"<p>Your password reset code is <b>{code}</b>.</p>",
                text=f"Your password reset code is {code}.",
                from_email=self.settings.from_email,
                from_name=self.settings.from_name,
            )
        )

    async def reset_password(self, base: Base, email: str, code: str, password: str) -> bool:
        email = normalize_email(email)
        if not code or not email:
            return False
        require_password(password)
        user = await self.store.user_by_email(base, email)
        if user is None or not user.reset_code or not secrets.compare_digest(user.reset_code.encode(), code.encode()):
            return False
        done = await self.store.reset_password(base, email, code, await hash_password(password))
        if done:
            await self.cache.delete(f"loginfail:{base.name}:e:{email}")
        return done

    async def change_password(self, caller: Identity, base: Base, email: str, old: str, new: str) -> None:
        if normalize_email(email) != caller.email:
            raise Forbidden("you can only change your own password")
        require_password(new)
        user = await self.store.user_by_id(base, caller.user_id)
        if user is None or not await check_password(old, user.password):
            raise Unauthorized(BAD_LOGIN)
        await self.store.set_password(base, user.id, await hash_password(new))

    # magic links
    def _magic_key(self, base: Base, email: str) -> str:
        return f"ml-{base.name}-{email}"

    async def magic_start(
        self, base: Base, email: str, link: str, subject: str, body: str, from_email: str, from_name: str
    ) -> None:
        email = require_email(email)
        code = DEV_MAGIC_CODE if self.settings.is_dev else str(secrets.randbelow(987654) + 123456)
        await self.cache.set(self._magic_key(base, email), f"{code} a", MAGIC_TTL)
        final = f"{link}?code={code}&email={email}"
        html = (body or '<p>Sign in: <a href="[link]">[link]</a></p>').replace("[link]", final)
        await self.mailer.send(
            Email(
                to=email,
                subject=subject or "Your sign-in link",
                html=html,
                text=final,
                from_email=from_email or self.settings.from_email,
                from_name=from_name or self.settings.from_name,
            )
        )

    async def magic_complete(self, base: Base, email: str, code: str) -> str:
        email = normalize_email(email)
        key = self._magic_key(base, email)
        stored = await self.cache.get(key)
        if stored is None:
            raise NotFound("no sign-in link was requested for this email (or it expired)")
        expected, _, attempts = stored.partition(" ")
        if not expected or not attempts:
            raise BadRequest("invalid code")
        if not secrets.compare_digest(expected.encode(), code.encode()):
            if len(attempts) >= MAGIC_MAX_ATTEMPTS:
                raise TooManyRequests("maximum retry reached")
            await self.cache.set(key, f"{expected} {attempts}a", MAGIC_TTL)
            raise BadRequest("invalid code")
        await self.cache.delete(key)
        user = await self.store.user_by_email(base, email)
        if user is None:
            raise NotFound("no user with this email")
        return self.identities.issue(base, user)
