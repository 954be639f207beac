"""Accounts and sessions (issue 13, items 4, 5, 7 and the tokens of 9): each test replays an attack
that worked before the fix and shows it refused, on every store kind.

* A password change or reset left every earlier session (and root token) working; another
  process kept serving a cached identity for 30 seconds.
* Magic links: the caller chose the link, sender and HTML body; codes were short, fixed in dev,
  never spent, and a new request reset the attempt counter; nothing limited requests.
* Failed-login counting was read-then-write (parallel guesses passed the limit); unknown emails
  skipped bcrypt.
* Tokens were checked by hand-written HMAC code; PyJWT now pins HS256 and checks exp and iss.

Different client addresses are simulated with one ASGI transport per address.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import orjson
import pytest

from sbserver.app import create_app
from sbserver.backends.mail.console import ConsoleMailer
from sbserver.services.tokens import LIFETIME
from tests.conftest import STORE_KINDS
from tests.http.conftest import DEV_EMAIL, Server, make_settings
from tests.http.helpers import (
    PASSWORD,
    _pg_session_ready,
    assert_error,
    assert_json,
    auth,
    login,
    me,
    register,
    unique_email,
)

__all__ = ["_pg_session_ready"]

LINK = "http://localhost:5173/signin"  # on the default allowed origins (``localhost``)


@asynccontextmanager
async def running(kind: str, data_dir: Path, pg_url: str | None, **overrides: object) -> AsyncIterator[Server]:
    """An app with settings overrides; in prod (no dev app) a fresh app is created for the test."""
    app = create_app(make_settings(kind, data_dir, pg_url, **overrides))
    svc = app.state.services
    svc.tenancy.announce = lambda text: None
    async with app.router.lifespan_context(app):
        if svc.settings.is_dev:
            new = await svc.tenancy.dev_app()
        else:
            new = await svc.tenancy.init_account(unique_email("tenant"), False, True, True)
        assert new is not None
        async with client_for(app, new.base.id) as client:
            yield Server(app, client, new, kind)


@asynccontextmanager
async def client_for(app: Any, pk: str, address: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(address, 40000), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers={"SB-PUBLIC-KEY": pk}) as c:
        yield c


@pytest.fixture(params=STORE_KINDS)
def start(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    kind = request.param
    pg_url = request.getfixturevalue("pg_url") if kind == "pg" else None
    counter = iter(range(1000))

    def factory(shared_dir: Path | None = None, **overrides: object) -> Any:
        return running(kind, shared_dir or tmp_path / f"app{next(counter)}", pg_url, **overrides)

    return factory


def mails(srv: Server) -> list[Any]:
    mailer = srv.services.mailer
    assert isinstance(mailer, ConsoleMailer)
    return mailer.sent


def magic_body(email: str, link: str = LINK, **extra: str) -> dict[str, str]:
    return {"email": email, "link": link, "subject": "Sign in", "body": "Go: [link]", **extra}


async def change_password(c: httpx.AsyncClient, token: str, email: str, old: str, new: str) -> httpx.Response:
    body = {"email": email, "oldPassword": old, "newPassword": new}
    return await c.post("/user/changepw", json=body, headers=auth(token))


SESSION_GONE = "error validating auth key: invalid authentication token"


# Item 4: a password change or reset ends every session


async def test_password_change_ends_every_earlier_session(server: Server) -> None:
    c = server.client
    email = unique_email()
    first = await register(c, email)
    second = assert_json(await login(c, email))
    assert (await me(c, second))["email"] == email
    assert assert_json(await change_password(c, first, email, PASSWORD, "new-pw-123")) is True
    for token in (first, second):
        assert_error(await c.get("/me", headers=auth(token)), 400, SESSION_GONE)
    assert_error(await login(c, email), 401)
    fresh = assert_json(await login(c, email, "new-pw-123"))
    assert (await me(c, fresh))["email"] == email


async def test_password_reset_ends_every_earlier_session(server: Server) -> None:
    c = server.client
    email = unique_email()
    token = await register(c, email)
    assert (await me(c, token))["email"] == email
    code = assert_json(await c.get("/password/resetcode", params={"e": email}, headers=auth(server.dev.root_token)))
    r = await c.post("/password/reset", json={"email": email, "code": code, "password": "reset-pw-1"})
    assert assert_json(r) is True
    assert_error(await c.get("/me", headers=auth(token)), 400, SESSION_GONE)
    assert (await me(c, assert_json(await login(c, email, "reset-pw-1"))))["email"] == email


async def test_root_token_of_the_old_credentials_is_refused(server: Server) -> None:
    c = server.client
    old_root = server.dev.root_token
    assert assert_json(await c.get("/account/auth", headers=auth(old_root))) == DEV_EMAIL
    session = assert_json(await login(c, DEV_EMAIL, server.dev.password))
    assert assert_json(await change_password(c, session, DEV_EMAIL, server.dev.password, "admin-new-pw-1")) is True
    try:
        r = await c.get("/account/auth", headers=auth(old_root))
        assert_error(r, 400, "invalid root token: no such user in this app")
        assert_error(await c.get("/me", headers=auth(session)), 400, SESSION_GONE)
    finally:  # the dev app outlives this test on PostgreSQL (one database per worker): give its password back
        fresh = assert_json(await login(c, DEV_EMAIL, "admin-new-pw-1"))
        assert assert_json(await change_password(c, fresh, DEV_EMAIL, "admin-new-pw-1", server.dev.password)) is True


async def test_revocation_reaches_another_process_at_once(start: Any, tmp_path: Path) -> None:
    """Two app instances on one store (the same SQLite file, or the same PostgreSQL database)."""
    secret = ("shared-" + uuid.uuid4().hex * 2).encode()
    shared = tmp_path / "shared"
    async with start(shared, jwt_secret=secret) as a, start(shared, jwt_secret=secret) as b:
        email = unique_email()
        token = await register(a.client, email)
        for _ in range(3):  # b has seen (and could have cached) this session
            assert (await me(b.client, token))["email"] == email
        assert assert_json(await change_password(a.client, token, email, PASSWORD, "new-pw-456")) is True
        assert_error(await b.client.get("/me", headers=auth(token)), 400, SESSION_GONE)
        fresh = assert_json(await login(b.client, email, "new-pw-456"))
        assert (await me(a.client, fresh))["email"] == email


# Item 5: magic links


async def test_magic_link_to_a_foreign_page_is_refused(server: Server) -> None:
    c = server.client
    email = unique_email()
    await register(c, email)
    before = len(mails(server))
    for link in ("https://attacker.example/steal", "http://localhost.attacker.example/", "javascript:alert(1)", ""):
        r = await c.post("/login/magic", json=magic_body(email, link))
        assert_error(r, 400)
        assert "link" in r.text
    assert len(mails(server)) == before  # nothing was mailed
    assert_json(await c.post("/login/magic", json=magic_body(email)))
    assert len(mails(server)) == before + 1


async def test_magic_link_on_a_server_wide_origin(start: Any) -> None:
    async with start(cors_origins=("https://app.example",)) as srv:
        email = unique_email()
        await register(srv.client, email)
        assert_json(await srv.client.post("/login/magic", json=magic_body(email, "https://app.example/in")))


async def test_magic_mail_is_the_servers_not_the_callers(server: Server) -> None:
    c = server.client
    email = unique_email()
    await register(c, email)
    body = magic_body(
        email,
        subject="Hi\r\nBcc: victim@example.com",
        body='<a href="https://attacker.example/?x=">Click</a> [link]',
        fromEmail="security@bank.example",
        fromName="Your Bank",
    )
    assert_json(await c.post("/login/magic", json=body))
    sent = mails(server)[-1]
    settings = server.services.settings
    assert (sent.from_email, sent.from_name) == (settings.from_email, settings.from_name)
    assert "\r" not in sent.subject and "\n" not in sent.subject
    assert '<a href="https://attacker.example' not in sent.html
    assert "&lt;a href=&quot;https://attacker.example" in sent.html
    assert f'<a href="{LINK}?code=666333&amp;email={email}">' in sent.html


async def test_magic_codes_are_random_six_digits_outside_dev(start: Any) -> None:
    async with start(app_env="prod") as srv:
        email = unique_email()
        await register(srv.client, email)
        codes = []
        for _ in range(2):
            assert_json(await srv.client.post("/login/magic", json=magic_body(email)))
            text = mails(srv)[-1].text
            codes.append(text.split("code=")[1].split("&")[0])
        assert all(len(code) == 6 and code.isdigit() for code in codes)
        assert "666333" not in codes and codes[0] != codes[1]
        # only the latest code works, once
        assert_error(await srv.client.get("/login/magic", params={"email": email, "code": codes[0]}), 400)
        token = assert_json(await srv.client.get("/login/magic", params={"email": email, "code": codes[1]}))
        assert (await me(srv.client, token))["email"] == email


async def test_magic_code_is_single_use(server: Server) -> None:
    c = server.client
    email = unique_email()
    await register(c, email)
    assert_json(await c.post("/login/magic", json=magic_body(email)))
    assert_json(await c.get("/login/magic", params={"email": email, "code": "666333"}))
    assert_error(await c.get("/login/magic", params={"email": email, "code": "666333"}), 404)


async def test_parallel_uses_of_one_code_yield_one_token(server: Server) -> None:
    c = server.client
    email = unique_email()
    await register(c, email)
    assert_json(await c.post("/login/magic", json=magic_body(email)))
    answers = await asyncio.gather(
        *(c.get("/login/magic", params={"email": email, "code": "666333"}) for _ in range(10))
    )
    assert [r.status_code for r in answers].count(200) == 1


async def test_magic_code_expires(start: Any) -> None:
    async with start(magic_code_ttl_seconds=1) as srv:
        email = unique_email()
        await register(srv.client, email)
        assert_json(await srv.client.post("/login/magic", json=magic_body(email)))
        key = f"ml-{srv.dev.base.name}-{email}"
        assert await srv.services.cache.get(key) is not None
        deadline = time.monotonic() + 5
        while await srv.services.cache.get(key) is not None:  # the positive marker: the code is gone
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        r = await srv.client.get("/login/magic", params={"email": email, "code": "666333"})
        assert_error(r, 404)


async def test_magic_attempts_are_not_reset_by_a_new_request(server: Server) -> None:
    c = server.client
    limit = server.services.settings.magic_code_max_attempts
    email = unique_email()
    await register(c, email)
    assert_json(await c.post("/login/magic", json=magic_body(email)))
    for _ in range(limit):
        assert_error(await c.get("/login/magic", params={"email": email, "code": "000000"}), 400, "invalid code")
    right = {"email": email, "code": "666333"}
    assert_error(await c.get("/login/magic", params=right), 429, "maximum retry reached")
    assert_json(await c.post("/login/magic", json=magic_body(email)))  # a new link...
    assert_error(await c.get("/login/magic", params=right), 429, "maximum retry reached")  # ...same count


async def test_parallel_magic_guesses_cannot_pass_the_limit(server: Server) -> None:
    c = server.client
    limit = server.services.settings.magic_code_max_attempts
    email = unique_email()
    await register(c, email)
    assert_json(await c.post("/login/magic", json=magic_body(email)))
    guesses = [f"{n:06d}" for n in range(40)]
    answers = await asyncio.gather(*(c.get("/login/magic", params={"email": email, "code": g}) for g in guesses))
    statuses = [r.status_code for r in answers]
    assert statuses.count(400) == limit and statuses.count(429) == len(guesses) - limit


async def test_magic_requests_limited_per_email(start: Any) -> None:
    async with start(magic_requests_per_email=2) as srv:
        email, other = unique_email(), unique_email()
        for i in range(2):
            async with client_for(srv.app, srv.dev.base.id, f"10.1.0.{i}") as c:
                assert_json(await c.post("/login/magic", json=magic_body(email)))
        async with client_for(srv.app, srv.dev.base.id, "10.1.0.9") as c:
            r = await c.post("/login/magic", json=magic_body(email))
            assert_error(r, 429, startswith="too many sign-in links requested for this email")
            assert_json(await c.post("/login/magic", json=magic_body(other)))


# Item 7: request limits per client address, on every unauthenticated route


def _route_calls(pk: str) -> dict[str, Any]:
    def register_call(c: httpx.AsyncClient) -> Any:
        return c.post("/register", json={"email": unique_email(), "password": PASSWORD})

    def magic_call(c: httpx.AsyncClient) -> Any:
        return c.post("/login/magic", json=magic_body(unique_email()))

    def pwsend_call(c: httpx.AsyncClient) -> Any:
        return c.post("/password/send", json={"email": unique_email()})

    def postform_call(c: httpx.AsyncClient) -> Any:
        return c.post("/postform/contact", data={"name": "x"})

    def init_call(c: httpx.AsyncClient) -> Any:
        return c.get("/account/init", params={"email": unique_email("init")}, headers={"Accept": "application/json"})

    return {
        "register": register_call,
        "magic": magic_call,
        "pwsend": pwsend_call,
        "postform": postform_call,
        "init": init_call,
    }


@pytest.mark.parametrize("action", ["register", "magic", "pwsend", "postform", "init"])
async def test_requests_limited_per_address(start: Any, action: str) -> None:
    async with start(requests_per_address=3) as srv:
        call = _route_calls(srv.dev.base.id)[action]
        async with client_for(srv.app, srv.dev.base.id, "10.2.0.1") as c:
            for _ in range(3):
                r = await call(c)
                assert r.status_code < 400, r.text
            assert_error(await call(c), 429, startswith=f"too many {action} requests from your address")
        async with client_for(srv.app, srv.dev.base.id, "10.2.0.2") as other:
            r = await call(other)
            assert r.status_code < 400, r.text


async def test_parallel_wrong_logins_cannot_pass_the_limit(start: Any) -> None:
    async with start(login_max_failures=3) as srv:
        email = unique_email()
        await register(srv.client, email)

        async def guess(i: int) -> int:
            async with client_for(srv.app, srv.dev.base.id, f"10.3.{i // 250}.{i % 250}") as c:
                return (await login(c, email, f"guess-{i}")).status_code

        statuses = await asyncio.gather(*(guess(i) for i in range(40)))
        assert statuses.count(401) == 3 and statuses.count(429) == 37
        assert_error(await login(srv.client, email), 429)  # the right password too, until the window ends


async def test_unknown_email_costs_a_bcrypt_check(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    email = unique_email()
    await register(server.client, email)
    assert_error(await login(server.client, unique_email("nobody")), 401, "invalid email/password")
    assert len(calls) == 1 and calls[0].startswith(b"$2b$10$")  # same cost as a real hash
    assert_error(await login(server.client, email, "wrong-password"), 401, "invalid email/password")
    assert len(calls) == 2


# Item 9: tokens


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_token(secret: bytes, claims: dict[str, Any], header: dict[str, Any] | None = None, digest: Any = None) -> str:
    """A JWT built byte for byte as the earlier hand-written signer (and upstream) built them."""
    head = _b64(orjson.dumps(header or {"alg": "HS256", "typ": "JWT"}))
    signing_input = f"{head}.{_b64(orjson.dumps(claims))}"
    if digest is None:
        return signing_input + "."
    return signing_input + "." + _b64(hmac.new(secret, signing_input.encode(), digest).digest())


async def _claims(server: Server) -> dict[str, Any]:
    user = await server.services.store.user_by_email(server.dev.base, DEV_EMAIL)
    assert user is not None
    now = int(time.time())
    return {
        "iss": "StaticBackend",
        "exp": now + LIFETIME,
        "nbf": now + 1800,
        "iat": now,
        "jti": uuid.uuid4().hex,
        "token": f"{user.id}|{user.token}",
    }


async def test_tokens_of_the_earlier_format_are_accepted(server: Server) -> None:
    secret = server.services.settings.jwt_secret
    claims = await _claims(server)
    upstream_style = hand_token(secret, claims, digest=hashlib.sha256)  # no "sbb"
    ours_before = hand_token(secret, {**claims, "sbb": server.dev.base.id}, digest=hashlib.sha256)
    for token in (upstream_style, ours_before):
        assert (await me(server.client, token))["email"] == DEV_EMAIL


async def test_forged_tokens_are_refused(server: Server) -> None:
    secret = server.services.settings.jwt_secret
    claims = await _claims(server)
    forged = {
        "alg none": hand_token(secret, claims, {"alg": "none", "typ": "JWT"}),
        "HS512 same key": hand_token(secret, claims, {"alg": "HS512", "typ": "JWT"}, hashlib.sha512),
        "HS256 other key": hand_token(b"x" * 40, claims, digest=hashlib.sha256),
        "wrong issuer": hand_token(secret, {**claims, "iss": "Other"}, digest=hashlib.sha256),
        "no exp": hand_token(secret, {k: v for k, v in claims.items() if k != "exp"}, digest=hashlib.sha256),
        "expired": hand_token(secret, {**claims, "exp": int(time.time()) - 1}, digest=hashlib.sha256),
    }
    for name, token in forged.items():
        r = await server.client.get("/me", headers=auth(token))
        assert r.status_code == 400, (name, r.status_code, r.text)
        assert_error(r, 400, startswith="error validating auth key")
