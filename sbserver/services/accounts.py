"""Accounts and users of one base: sign-up, sign-in, passwords, magic links, account members.

Passwords: changing or resetting one replaces the user's secret token, which every session and
root token carries, so every token issued before is refused at once (see ``identity``).
Limits (``limits``): failed logins per email and per address, magic-link and reset requests per
email, and every unauthenticated action per client address; magic-link codes are single-use,
expire, and allow a fixed number of wrong guesses per code and per email.
"""

from __future__ import annotations

import html
import logging
import secrets
from collections.abc import Callable
from urllib.parse import quote

from sbserver.backends.cache import Cache
from sbserver.backends.mail import Email, Mailer
from sbserver.backends.storage import Store
from sbserver.errors import BadRequest, Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized
from sbserver.ids import new_id, new_secret, now_iso, random_code
from sbserver.services.identity import DEV_ROOT_KEY, IdentityService
from sbserver.services.limits import Limits
from sbserver.services.passwords import DUMMY_HASH, check_password, hash_password
from sbserver.services.tenancy import DEV_EMAIL, DEV_PK
from sbserver.settings import Settings
from sbserver.types import ROLE_OWNER, ROLE_ROOT, ROLE_USER, Account, Base, Identity, User

DEV_MAGIC_CODE = "666333"
MAGIC_CODE_DIGITS = 6
BAD_LOGIN = "invalid email/password"
MAX_SUBJECT = 150
MAX_BODY = 2000
LOGIN_REFUSAL = "too many failed logins: try again in {wait} or reset the password"

log = logging.getLogger("sbserver.accounts")


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


def _one_line(text: str, limit: int) -> str:
    """A header-safe single line: control characters (CR, LF...) become spaces."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:limit]


class AccountService:
    def __init__(
        self,
        store: Store,
        cache: Cache,
        mailer: Mailer,
        identities: IdentityService,
        settings: Settings,
        limits: Limits,
        accepts_origin: Callable[[Base, str], bool],
    ) -> None:
        self.store = store
        self.cache = cache
        self.mailer = mailer
        self.identities = identities
        self.settings = settings
        self.limits = limits
        self.accepts_origin = accepts_origin

    # sign-up and sign-in
    async def register(self, base: Base, email: str, password: str, address: str = "") -> str:
        email = require_email(email)
        require_password(password)
        await self.limits.from_address("register", base.name, address)
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

    async def login(self, base: Base, email: str, password: str, address: str = "") -> str:
        """A session token; every attempt takes its place in the failure counters *before* the
        password is checked (parallel guesses cannot overtake the limit), a success gives it back."""
        email = normalize_email(email)
        rule = self.limits.login
        await self.limits.reserve(rule, base.name, f"e:{email}", LOGIN_REFUSAL)
        await self.limits.reserve(rule, base.name, f"a:{address}" if address else "", LOGIN_REFUSAL)
        user = await self.store.user_by_email(base, email)
        # an unknown email (or a user without password) costs the same bcrypt check as a wrong password
        hashed = user.password if user is not None and user.password else DUMMY_HASH
        matches = await check_password(password, hashed)
        if user is None or not user.password or not matches:
            raise Unauthorized(BAD_LOGIN)
        await self.limits.clear(rule, base.name, f"e:{email}")
        if address:
            await self.limits.refund(rule, base.name, f"a:{address}")
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

    # every account of the app (the admin pages; root only)
    async def all_accounts(self, caller: Identity, base: Base) -> list[Account]:
        if caller.role < ROLE_ROOT:
            raise Forbidden("not enough permission")
        return await self.store.accounts(base)

    async def users_in(self, caller: Identity, base: Base, account_id: str) -> list[User]:
        """The users of one of the app's accounts; 404 when the app has no such account."""
        if caller.role < ROLE_ROOT:
            raise Forbidden("not enough permission")
        users = await self.store.users_of_account(base, account_id[:200])
        if not users:
            raise NotFound("this app has no account with this id")
        return users

    async def delete_user(self, caller: Identity, base: Base, user_id: str) -> None:
        target = await self.store.user_by_id(base, user_id)
        if target is None or target.account_id != caller.account_id:
            raise NotFound("user not found in your account")
        if caller.role < target.role:
            raise Forbidden("permission level not high enough")
        await self.store.delete_user(base, user_id)

    # passwords
    async def reset_code(self, base: Base, email: str) -> str:
        email = normalize_email(email)
        if email.find("@") <= 0:
            raise BadRequest("invalid email")
        code = random_code(10, first="a")
        if not await self.store.set_reset_code(base, email, code):
            raise NotFound("no user with this email")
        return code

    async def send_reset_code(self, base: Base, email: str, address: str = "") -> None:
        """Email a reset code to the user; silent when the email is unknown (no user enumeration)."""
        email = require_email(email)
        await self.limits.from_address("pwsend", base.name, address)
        await self.limits.reserve(
            self.limits.reset_email,
            base.name,
            email,
            "too many reset codes requested for this email: try again in {wait}",
        )
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
        """Set a new password with a reset code; every token issued before stops working."""
        email = normalize_email(email)
        if not code or not email:
            return False
        require_password(password)
        user = await self.store.user_by_email(base, email)
        if user is None or not user.reset_code or not secrets.compare_digest(user.reset_code.encode(), code.encode()):
            return False
        token = new_secret()
        done = await self.store.reset_password(base, email, code, await hash_password(password), token)
        if done:
            await self.limits.clear(self.limits.login, base.name, f"e:{email}")
            await self._follow_dev_alias(user, token)
        return done

    async def change_password(self, caller: Identity, base: Base, email: str, old: str, new: str) -> None:
        """Replace the caller's password; every token issued before (this one too) stops working."""
        if normalize_email(email) != caller.email:
            raise Forbidden("you can only change your own password")
        require_password(new)
        user = await self.store.user_by_id(base, caller.user_id)
        if user is None or not await check_password(old, user.password):
            raise Unauthorized(BAD_LOGIN)
        token = new_secret()
        await self.store.set_password(base, user.id, await hash_password(new), token)
        await self._follow_dev_alias(user, token)

    async def _follow_dev_alias(self, user: User, token: str) -> None:
        """In dev mode the root-token alias follows the admin's new token (it is a convenience only)."""
        if not self.settings.is_dev or user.role < ROLE_ROOT:
            return
        old_root = self.identities.root_token_of(user)
        if await self.cache.get(DEV_ROOT_KEY) == old_root:
            new_root = self.identities.root_token_of(User(user.id, user.account_id, user.email, token, user.role, ""))
            await self.cache.set(DEV_ROOT_KEY, new_root)

    # magic links
    def _magic_key(self, base: Base, email: str) -> str:
        return f"ml-{base.name}-{email}"

    def _magic_email(self, email: str, final: str, subject: str, body: str) -> Email:
        """The server's message: the caller's subject and text, escaped, around the server's link.

        Nothing the caller sends becomes markup or a header: the sender is the server's."""
        anchor = f'<a href="{html.escape(final)}">{html.escape(final)}</a>'
        text_body = body.strip() or "Sign in: [link]"
        if "[link]" not in text_body:
            text_body += "\n\n[link]"
        paragraphs = html.escape(text_body).replace("\n", "<br>").replace("[link]", anchor)
        return Email(
            to=email,
            subject=_one_line(subject, MAX_SUBJECT) or "Your sign-in link",
            html=f"<p>{paragraphs}</p>",
            text=text_body.replace("[link]", final),
            from_email=self.settings.from_email,
            from_name=self.settings.from_name,
        )

    async def magic_start(self, base: Base, email: str, link: str, subject: str, body: str, address: str = "") -> None:
        """Mail a single-use sign-in code inside a link to one of the app's allowed pages."""
        email = require_email(email)
        link = link.strip()
        if not link:
            raise BadRequest("missing link: give the URL of your app's sign-in page")
        if not self.accepts_origin(base, link):
            raise BadRequest(
                f"invalid link: {link[:200]!r} is not on this app's allowed origins "
                "(add its origin to the app's list, SB_CORS_ORIGINS or APP_URL)"
            )
        if len(body) > MAX_BODY:
            raise BadRequest(f"body is too long: {len(body)} characters (at most {MAX_BODY})")
        await self.limits.from_address("magic", base.name, address)
        await self.limits.reserve(
            self.limits.magic_email,
            base.name,
            email,
            "too many sign-in links requested for this email: try again in {wait}",
        )
        if self.settings.is_dev:
            code = DEV_MAGIC_CODE
        else:
            code = f"{secrets.randbelow(10**MAGIC_CODE_DIGITS):0{MAGIC_CODE_DIGITS}d}"
        # the nonce names this code's own attempt counter
        await self.cache.set(
            self._magic_key(base, email), f"{code} {random_code(16)}", self.settings.magic_code_ttl_seconds
        )
        final = f"{link}?code={code}&email={quote(email, safe='@')}"
        await self.mailer.send(self._magic_email(email, final, subject, body))

    async def magic_complete(self, base: Base, email: str, code: str) -> str:
        """A session token for a valid code, which is then spent. Each guess counts against the
        code and against the email (a new link does not reset the email's count) before it is
        compared; past ``magic_code_max_attempts`` the answer is 429 until the window ends."""
        email = normalize_email(email)
        key = self._magic_key(base, email)
        stored = await self.cache.get(key)
        if stored is None:
            raise NotFound("no sign-in link was requested for this email (or it expired)")
        expected, _, nonce = stored.partition(" ")
        if not expected or not nonce:
            raise BadRequest("invalid code")
        limit, window = self.settings.magic_code_max_attempts, self.settings.magic_code_ttl_seconds
        per_code = await self.cache.incr(f"mlfail:{base.name}:{email}:{nonce}", window)
        per_email = await self.cache.incr(f"mlfail:{base.name}:{email}", window)
        if per_code > limit or per_email > limit:
            raise TooManyRequests("maximum retry reached")
        if not secrets.compare_digest(expected.encode(), code.encode()):
            raise BadRequest("invalid code")
        if await self.cache.take(key) != stored:  # spent by a parallel request, or replaced
            raise BadRequest("invalid code")
        await self.cache.delete(f"mlfail:{base.name}:{email}:{nonce}")
        await self.cache.delete(f"mlfail:{base.name}:{email}")
        user = await self.store.user_by_email(base, email)
        if user is None:
            raise NotFound("no user with this email")
        return self.identities.issue(base, user)

    # the JS client's account calls: one's own email, roles, associations
    async def change_email(self, caller: Identity, base: Base, email: str, password: str = "") -> str:
        """Change the caller's own email; a fresh session token for the caller.

        The user's secret token is replaced, so every other session and root token of this user
        ends at once (as after a password change). A non-empty ``password`` must be the current
        one (wrong guesses count against the email's failed-login limit). The old address gets a
        notice naming the new one. The account's email follows when it was the old one; for a
        root user (role 100 or more) the tenant's email follows too."""
        new = require_email(email)
        user = await self.store.user_by_id(base, caller.user_id)
        if user is None:
            raise NotFound("no user with this id")
        if password:
            rule, key = self.limits.login, f"e:{user.email}"
            await self.limits.reserve(rule, base.name, key, LOGIN_REFUSAL)
            if not await check_password(password, user.password or DUMMY_HASH) or not user.password:
                raise Unauthorized(BAD_LOGIN)
            await self.limits.clear(rule, base.name, key)
        if new == user.email:
            return self.identities.issue(base, user)
        if base.id == DEV_PK and user.email == DEV_EMAIL and user.role >= ROLE_ROOT:
            raise Forbidden(f"the development app's administrator keeps {DEV_EMAIL}: the server finds the app by it")
        if await self.store.user_by_email(base, new) is not None:
            raise Conflict("email already in use")
        token = new_secret()
        tenant_id = base.tenant_id if user.role >= ROLE_ROOT else ""
        try:
            changed = await self.store.change_email(base, user, new, token, tenant_id)
        except Conflict as exc:
            raise Conflict("email already in use") from exc
        if not changed:
            raise Conflict("the email changed meanwhile: read /me and try again")
        await self._follow_dev_alias(user, token)
        await self._notify_email_change(user.email, new)
        return self.identities.issue(base, User(user.id, user.account_id, new, token, user.role, user.created))

    async def _notify_email_change(self, old: str, new: str) -> None:
        """Tell the old address (a takeover shows there); the change stands if the mail fails."""
        try:
            await self.mailer.send(
                Email(
                    to=old,
                    subject="Your email address was changed",
                    html=f"<p>The email of your account was changed to <b>{html.escape(new)}</b>. "
                    "If you did not do this, contact the application's support.</p>",
                    text=f"The email of your account was changed to {new}. "
                    "If you did not do this, contact the application's support.",
                    from_email=self.settings.from_email,
                    from_name=self.settings.from_name,
                )
            )
        except Exception:  # the change is committed: a lost notice must not undo it or fail the request
            log.warning("could not send the email-change notice to the old address", exc_info=True)

    async def set_role(self, caller: Identity, base: Base, email: str, role: int, account_id: str = "") -> None:
        """Set the role of a user found by email.

        Root (role 100 or more) may set any user of the app; an account admin (role 50 or more)
        only users of its own account whose current role is below its own. Nobody changes its own
        role or gives a role above its own; the app's administrator keeps role 100. A given
        ``account_id`` must be the user's account. Takes effect on the user's next request."""
        email = require_email(email)
        if not 0 <= role <= ROLE_ROOT:
            raise BadRequest(f"invalid role {role}: use an integer from 0 to {ROLE_ROOT}")
        if not caller.is_root and caller.role < ROLE_OWNER:
            raise Forbidden(f"only an account admin (role {ROLE_OWNER} or more) or root can set roles")
        target = await self.store.user_by_email(base, email)
        if target is None or (not caller.is_root and target.account_id != caller.account_id):
            raise NotFound("user not found in your account" if not caller.is_root else "no user with this email")
        if account_id and account_id != target.account_id:
            raise NotFound("user not found in this account")
        if target.id == caller.user_id:
            raise Forbidden("you cannot change your own role")
        if role > caller.role:
            raise Forbidden(f"you cannot give a role above your own ({caller.role})")
        if not caller.is_root and target.role >= caller.role:
            raise Forbidden("permission level not high enough")
        if role < ROLE_ROOT:
            admin = await self.store.root_user(base)
            if admin is not None and admin.id == target.id:
                raise Forbidden("the app's administrator keeps its role (its root token depends on it)")
        if not await self.store.set_role(base, target.id, role):
            raise NotFound("no user with this email")

    async def associations(self, caller: Identity, base: Base) -> list[dict[str, object]]:
        """The accounts the caller belongs to: on this server a user belongs to exactly one."""
        return [{"accountId": caller.account_id, "role": caller.role, "home": True}]
