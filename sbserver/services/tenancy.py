"""Tenants and bases: creating apps, the development app, and resolving a public key.

Creating an app makes a tenant (unless it exists), a base, and the base's admin account with
its role-100 user; the caller receives the public key, the admin password and the root token.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sbserver.backends.cache import Cache
from sbserver.backends.mail import Email, Mailer
from sbserver.backends.storage import Store
from sbserver.errors import BadRequest, Conflict, Forbidden, NotFound, SBError
from sbserver.ids import base_name, new_id, new_secret, now_iso, random_code
from sbserver.lru import ExpiringLRU
from sbserver.services.identity import DEV_ROOT_KEY, IdentityService
from sbserver.services.origins import app_url_origin, entry_is_valid, normalize_entry, origin_allowed
from sbserver.services.passwords import hash_password
from sbserver.settings import Settings
from sbserver.types import ROLE_ROOT, Account, Base, Identity, Tenant, User

DEV_PK = "dev_memory_pk"
DEV_EMAIL = "admin@dev.com"
DEV_PASSWORD = "devpw1234"
DEV_SIGNUP_TEXT = "no need to sign up in dev mode"
BASE_TTL = 10.0  # seconds a process keeps a base (and the union of origin lists) before reading again
MAX_ORIGINS = 100


@dataclass(frozen=True)
class NewApp:
    base: Base
    email: str
    password: str
    root_token: str

    def credentials(self) -> dict[str, str]:
        return {"pk": self.base.id, "rootToken": self.root_token, "pw": self.password}


def banner(app: NewApp, dev_alias: bool) -> str:
    lines = [
        "",
        "",
        f"Public key:      {app.base.id}",
        "Admin user:",
        f"    Email:       {app.email}",
        f"    Password:    {app.password}",
    ]
    if dev_alias:
        lines.append("Dev root token:  safe-to-use-in-dev-root-token")
    lines += [
        f"Real root token: {app.root_token}",
        "",
        "Admin pages: open this server's address in a browser and sign in with the public key",
        "and the admin user's email and password.",
        "Refer to the documentation at https://staticbackend.dev/docs for the API and clients.",
        "",
    ]
    return "\n".join(lines)


def _print(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def valid_tenant_email(email: str) -> bool:
    return len(email) >= 4 and "@" in email and "." in email


class TenancyService:
    def __init__(
        self,
        store: Store,
        cache: Cache,
        mailer: Mailer,
        identities: IdentityService,
        settings: Settings,
        announce: Callable[[str], None] = _print,
    ) -> None:
        self.store = store
        self.cache = cache
        self.mailer = mailer
        self.identities = identities
        self.settings = settings
        self.announce = announce
        self._bases: ExpiringLRU[str, Base] = ExpiringLRU(10_000, BASE_TTL)
        self._roots: dict[str, Identity] = {}
        self._entries: tuple[str, ...] = ()  # the union of the apps' origin lists
        self._entries_until = 0.0
        self._entries_lock = asyncio.Lock()
        self._origin_answers: dict[str, bool] = {}

    async def base(self, pk: str) -> Base:
        """The active base of a public key; cached for a few seconds per process."""
        hit = self._bases.get(pk)
        if hit is not None:
            base = hit
        else:
            found = await self.store.base_by_pk(pk)
            if found is None:
                raise NotFound(f"error finding database '{pk[:64]}': no app has this public key")
            base = found
            self._bases.put(pk, base)
        if not base.active:
            raise SBError("your account is inactive.")
        return base

    def server_origins(self) -> tuple[str, ...]:
        """The origins every app accepts: ``SB_CORS_ORIGINS`` and ``APP_URL``'s origin."""
        extra = app_url_origin(self.settings.app_url) if self.settings.app_url else ""
        return (*self.settings.cors_origins, *((extra,) if extra else ()))

    def allowed_origins(self, base: Base) -> tuple[str, ...]:
        """The origins ``base`` accepts: its own list, ``SB_CORS_ORIGINS`` and ``APP_URL``'s origin."""
        return (*base.whitelist, *self.server_origins())

    def accepts_origin(self, base: Base, origin: str) -> bool:
        """Whether a browser at ``origin`` (or a page at that URL) may act for ``base``."""
        return origin_allowed(origin, self.allowed_origins(base))

    def server_accepts(self, origin: str) -> bool:
        """Whether the server-wide list holds ``origin`` (requests that name no app)."""
        return origin_allowed(origin, self.server_origins())

    async def any_app_accepts(self, origin: str) -> bool:
        """Whether the server-wide list or at least one active app's list holds ``origin`` (for
        preflights, which carry no public key). The union of the lists and the answers are kept
        for ``BASE_TTL`` seconds per process; a change made here is seen at once."""
        if self.server_accepts(origin):
            return True
        now = time.monotonic()
        if self._entries_until <= now:
            async with self._entries_lock:
                if self._entries_until <= time.monotonic():
                    self._entries = tuple(await self.store.whitelist_entries())
                    self._origin_answers.clear()
                    self._entries_until = time.monotonic() + BASE_TTL
        hit = self._origin_answers.get(origin)
        if hit is None:
            hit = origin_allowed(origin, self._entries)
            if len(self._origin_answers) > 10_000:
                self._origin_answers.clear()
            if len(origin) <= 512:
                self._origin_answers[origin] = hit
        return hit

    async def set_origins(self, base: Base, value: Any) -> Base:
        """Replace ``base``'s list of allowed origins (``/account/origins``); ``BadRequest`` names
        the first entry that is not a full origin, a host, a ``*.host`` or ``*``."""
        if not isinstance(value, list):
            raise BadRequest(f"invalid origins: expected a list of strings, got {type(value).__name__}")
        if len(value) > MAX_ORIGINS:
            raise BadRequest(f"invalid origins: {len(value)} entries, at most {MAX_ORIGINS}")
        entries: list[str] = []
        for i, entry in enumerate(value, 1):
            if not isinstance(entry, str):
                raise BadRequest(f"invalid origin {i}: expected a string, got {type(entry).__name__}")
            clean = normalize_entry(entry)
            if not entry_is_valid(clean):
                raise BadRequest(
                    f"invalid origin {i} {entry[:100]!r}: use https://host[:port], a host name, *.host or *"
                )
            if clean not in entries:
                entries.append(clean)
        if not await self.store.set_whitelist(base.id, entries):
            raise NotFound("this app no longer exists")
        self.forget_base(base.id)
        return replace(base, whitelist=tuple(entries))

    def forget_base(self, pk: str) -> None:
        """Drop this process's cached copy of a base and of the origins of all apps (after a
        base's settings change); other processes see the change within ``BASE_TTL`` seconds."""
        self._bases.pop(pk)
        self._entries_until = 0.0

    async def base_by_name(self, name: str) -> Base:
        """Bases are created with their name as public key, so the name finds them too."""
        return await self.base(name)

    async def root_identity(self, base: Base) -> Identity:
        """The identity scheduled and system runs act as: the app's administrator."""
        hit = self._roots.get(base.name)
        if hit is not None:
            return hit
        user = await self.store.root_user(base)
        if user is None:
            raise NotFound("this app has no administrator")
        ident = Identity(base.name, user.account_id, user.id, user.email, user.role, user.token)
        self._roots[base.name] = ident
        return ident

    async def _create_app(self, tenant: Tenant, email: str, name: str, password: str) -> NewApp:
        base = Base(
            id=name,
            name=name,
            tenant_id=tenant.id,
            whitelist=("localhost",),
            active=tenant.active,
            created=now_iso(),
        )
        await self.store.create_base(base)
        created = now_iso()
        account = Account(new_id(), email, created)
        user = User(new_id(), account.id, email, new_secret(), ROLE_ROOT, created, await hash_password(password))
        await self.store.create_account_with_user(base, account, user)
        return NewApp(base, email, password, self.identities.root_token_of(user))

    async def _new_tenant(self, email: str) -> Tenant:
        tenant = Tenant(new_id(), email, plan=1, active=True, created=now_iso())
        try:
            await self.store.create_tenant(tenant)
        except Conflict as exc:
            raise Conflict("Please use a different/valid email.") from exc
        return tenant

    async def dev_app(self) -> NewApp | None:
        """The development app when it exists, with its admin's real root token."""
        base = await self.store.base_by_pk(DEV_PK)
        if base is None:
            return None
        admin = await self.store.user_by_email(base, DEV_EMAIL)
        if admin is None or admin.role < ROLE_ROOT:
            return None
        return NewApp(base, DEV_EMAIL, DEV_PASSWORD, self.identities.root_token_of(admin))

    async def ensure_dev_app(self) -> NewApp:
        """Create the development app on first start; on later starts find it again.

        Either way the dev root alias is (re)armed and the credentials are printed.
        """
        app = await self.dev_app()
        if app is None:
            tenant = await self.store.tenant_by_email(DEV_EMAIL)
            if tenant is None:
                try:
                    tenant = await self._new_tenant(DEV_EMAIL)
                except Conflict:  # another process created it a moment ago
                    tenant = await self.store.tenant_by_email(DEV_EMAIL)
                    assert tenant is not None
            try:
                app = await self._create_app(tenant, DEV_EMAIL, DEV_PK, DEV_PASSWORD)
            except Conflict:  # another process is creating it: its admin appears in a moment
                app = await self._created_elsewhere()
        await self.cache.set(DEV_ROOT_KEY, app.root_token)
        self.announce(banner(app, dev_alias=True))
        return app

    async def _created_elsewhere(self, wait: float = 30.0) -> NewApp:
        """The dev app another process created (its base and its admin are two transactions)."""
        deadline = time.monotonic() + wait
        while (app := await self.dev_app()) is None:
            if time.monotonic() > deadline:
                raise SBError("the development app exists but has no administrator")
            await asyncio.sleep(0.05)
        return app

    async def init_account(self, email: str, memory_mode: bool, from_cli: bool, bypass: bool) -> NewApp:
        """``/account/init``: a new tenant with its first app (or the dev app in memory mode)."""
        email = email.strip().lower()
        if not valid_tenant_email(email):
            raise BadRequest("invalid email")
        if memory_mode and email == DEV_EMAIL:
            existing = await self.dev_app()
            if existing is not None:
                if from_cli:
                    await self.cache.set(DEV_ROOT_KEY, existing.root_token)
                self.announce(banner(existing, dev_alias=from_cli))
                return existing
        if await self.store.tenant_by_email(email) is not None:
            raise Conflict("Please use a different/valid email.")
        tenant = await self._new_tenant(email)
        if memory_mode and await self.store.base_by_pk(DEV_PK) is None:
            name, password = DEV_PK, DEV_PASSWORD
        else:
            name, password = base_name(), random_code(6, first="a")
        app = await self._create_app(tenant, email, name, password)
        if memory_mode and from_cli:
            await self.cache.set(DEV_ROOT_KEY, app.root_token)
        if not bypass:
            await self._deliver(app, dev_alias=memory_mode and from_cli)
        return app

    async def add_db(self, caller: Identity, base: Base) -> NewApp:
        """``/account/add-db``: another app for the same tenant, admin = the caller's email."""
        if caller.role != ROLE_ROOT:
            raise Forbidden("you cannot perform this action")
        tenant = Tenant(base.tenant_id, caller.email, active=base.active)
        return await self._create_app(tenant, caller.email, base_name(), random_code(6, first="a"))

    async def _deliver(self, app: NewApp, dev_alias: bool) -> None:
        text = banner(app, dev_alias)
        if self.settings.is_dev or self.settings.mail_provider == "dev":
            self.announce(text)
            return
        await self.mailer.send(
            Email(
                to=app.email,
                subject="Your StaticBackend account",
                html=text.replace("\n", "<br>\n"),
                text=text,
                from_email=self.settings.from_email,
                from_name=self.settings.from_name,
            )
        )
