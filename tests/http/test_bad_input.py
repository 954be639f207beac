"""Bad input is refused with a 4xx and a one-line plain-text reason, writes nothing, crashes nothing.

Every test checks the same three things: the status is a client error (never a 500), the body is
``text/plain; charset=utf-8`` with exactly one line ending in a newline, and the accounts and users
of the dev app are exactly what they were before; then ``/ping`` still answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

from sbserver.services.tokens import TokenCodec
from tests.http.conftest import DEV_EMAIL, DEV_PK, Server
from tests.http.helpers import (
    PASSWORD,
    ServerFactory,
    _pg_session_ready,
    add_user,
    admin_token,
    assert_error,
    assert_json,
    auth,
    b64url,
    extra_client,
    jwt_parts,
    login,
    make_server,
    me,
    ping_ok,
    register,
    snapshot,
    stored_user,
    unique_email,
)

__all__ = ["_pg_session_ready", "make_server"]


@pytest.fixture
async def bare(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """The dev app's public key, and a server crash answered as 500 rather than raised."""
    async with extra_client(server, pk=DEV_PK) as c:
        yield c


async def refused(
    server: Server, c: httpx.AsyncClient, method: str, path: str, status: int | None = None, **kw: Any
) -> str:
    """Send a request that must be refused; check format, that nothing changed, and /ping."""
    before = await snapshot(server)
    r = await c.request(method, path, **kw)
    line = assert_error(r, status)
    assert "Traceback" not in line
    assert await snapshot(server) == before
    await ping_ok(c)
    return line


# Bodies that are not a JSON object

BODY_ROUTES = [
    ("/register", False),
    ("/login", False),
    ("/login/magic", False),
    ("/password/reset", False),
    ("/password/send", False),
    ("/account/users", True),
    ("/user/changepw", True),
]

BAD_BODIES = {
    "malformed": b'{"email": "a@example.com", "password":',
    "not-json": b"email=a@example.com&password=x",
    "empty": b"",
    "blank": b"   \n\t ",
    "array": b'["a@example.com", "pw-123456"]',
    "string": b'"a@example.com"',
    "number": b"42",
    "null": b"null",
    "bool": b"true",
    "binary": bytes(range(256)),
}


@pytest.mark.parametrize("kind", list(BAD_BODIES))
@pytest.mark.parametrize(("path", "needs_session"), BODY_ROUTES)
async def test_body_not_an_object(
    server: Server, bare: httpx.AsyncClient, path: str, needs_session: bool, kind: str
) -> None:
    headers = {"Content-Type": "application/json"}
    if needs_session:
        headers.update(auth(await admin_token(server)))
    await refused(server, bare, "POST", path, 400, content=BAD_BODIES[kind], headers=headers)


WRONG_TYPES = [
    ("/register", {"email": 42, "password": PASSWORD}, "email"),
    ("/register", {"email": "x@example.com", "password": 123456}, "password"),
    ("/register", {"email": {"$ne": ""}, "password": PASSWORD}, "email"),
    ("/register", {"email": ["x@example.com"], "password": PASSWORD}, "email"),
    ("/register", {"email": True, "password": PASSWORD}, "email"),
    ("/login", {"email": 42, "password": PASSWORD}, "email"),
    ("/login", {"email": DEV_EMAIL, "password": {"$gt": ""}}, "password"),
    ("/password/reset", {"email": DEV_EMAIL, "code": 0, "password": "x"}, "code"),
    ("/login/magic", {"email": 7, "link": "https://a.example"}, "email"),
    ("/account/users", {"email": 42, "password": PASSWORD}, "email"),
    ("/account/users", {"email": "y@example.com", "password": ["a"]}, "password"),
]


@pytest.mark.parametrize(("path", "body", "field"), WRONG_TYPES)
async def test_field_of_wrong_type(
    server: Server, bare: httpx.AsyncClient, path: str, body: dict[str, Any], field: str
) -> None:
    headers = auth(await admin_token(server)) if path == "/account/users" else {}
    line = await refused(server, bare, "POST", path, 400, json=body, headers=headers)
    assert field in line.lower()


INVALID_EMAILS = ["", "bad", "@example.com", "a@b", "a b@example.com", "a@example .com", "a@", "   "]


@pytest.mark.parametrize("email", INVALID_EMAILS)
async def test_invalid_email_on_register(server: Server, bare: httpx.AsyncClient, email: str) -> None:
    line = await refused(server, bare, "POST", "/register", 400, json={"email": email, "password": PASSWORD})
    assert "invalid email" in line


@pytest.mark.parametrize("email", INVALID_EMAILS)
async def test_invalid_email_on_account_users(server: Server, bare: httpx.AsyncClient, email: str) -> None:
    token = await admin_token(server)
    line = await refused(
        server, bare, "POST", "/account/users", 400, json={"email": email, "password": PASSWORD}, headers=auth(token)
    )
    assert "invalid email" in line


# Unknown public key


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/register"), ("POST", "/login"), ("GET", "/me"), ("POST", "/account/users")]
)
async def test_unknown_public_key(server: Server, method: str, path: str) -> None:
    token = await admin_token(server)
    async with extra_client(server, pk="aNoSuchKey99") as c:
        line = await refused(
            server, c, method, path, 404, json={"email": unique_email(), "password": PASSWORD}, headers=auth(token)
        )
    assert line.startswith("error finding database 'aNoSuchKey99'")


# Tokens


async def test_forged_jwt_is_rejected(server: Server, bare: httpx.AsyncClient) -> None:
    token = await register(bare)
    head, body, _ = token.split(".")
    admin = await stored_user(server, DEV_EMAIL)
    assert admin is not None
    header, payload, _ = jwt_parts(token)
    other_secret = TokenCodec(b"not-the-secret").issue(admin.id, admin.token)
    payload_as_admin = b64url(orjson.dumps({**payload, "token": f"{admin.id}|{admin.token}"}))
    alg_none = b64url(orjson.dumps({**header, "alg": "none"}))
    forged = {
        "other secret": other_secret,
        "tampered payload": f"{head}.{payload_as_admin}.{token.split('.')[2]}",
        "alg none, empty signature": f"{alg_none}.{payload_as_admin}.",
        "signature of another token": f"{head}.{body}.{other_secret.split('.')[2]}",
        "two segments": f"{head}.{body}",
        "garbage segments": "a.b.c",
    }
    for name, value in forged.items():
        line = await refused(server, bare, "GET", "/me", 400, headers=auth(value))
        assert line.startswith("error validating auth key"), (name, line)
    assert (await me(bare, token))["email"] != DEV_EMAIL


async def test_expired_jwt_is_rejected(server: Server, bare: httpx.AsyncClient) -> None:
    admin = await stored_user(server, DEV_EMAIL)
    assert admin is not None
    codec = TokenCodec(server.services.settings.jwt_secret)
    expired = codec.issue(admin.id, admin.token, now=time.time() - 13 * 3600)
    assert jwt_parts(expired)[1]["exp"] < time.time()
    line = await refused(server, bare, "GET", "/me", 400, headers=auth(expired))
    assert line.startswith("error validating auth key")
    # the same secret and claims, but current, are accepted: only the expiry was wrong
    assert (await me(bare, codec.issue(admin.id, admin.token)))["userId"] == admin.id


async def test_jwt_of_another_app_is_rejected(server: Server, bare: httpx.AsyncClient) -> None:
    async with extra_client(server) as nokey:
        r = await nokey.get(
            "/account/init", params={"email": unique_email("tenant"), "ui": "1"}, headers={"Accept": "application/json"}
        )
    other_pk = assert_json(r)["pk"]
    email = unique_email("twin")
    own = await register(bare, email)
    async with extra_client(server, pk=other_pk) as other:
        foreign = await register(other, email)
        assert (await me(other, foreign))["email"] == email
        await refused(server, bare, "GET", "/me", 400, headers=auth(foreign))
        await refused(server, other, "GET", "/me", 400, headers=auth(own))
    assert (await me(bare, own))["email"] == email


async def test_session_token_on_root_route(server: Server, bare: httpx.AsyncClient) -> None:
    token = await admin_token(server)
    line = await refused(server, bare, "GET", "/sudogettoken/x", 400, headers=auth(token))
    assert line == "invalid root token"


async def test_root_token_on_user_route(server: Server, bare: httpx.AsyncClient) -> None:
    await refused(server, bare, "GET", "/me", 400, headers=auth(server.dev.root_token))
    await refused(
        server,
        bare,
        "POST",
        "/account/users",
        400,
        json={"email": unique_email(), "password": PASSWORD},
        headers=auth(server.dev.root_token),
    )


# Oversized bodies


def padded(size: int) -> bytes:
    """A register body of exactly ``size`` bytes (valid JSON, a new email)."""
    head = orjson.dumps({"email": unique_email("big"), "password": PASSWORD})[:-1] + b', "pad": "'
    tail = b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_body_over_default_limit(server: Server, bare: httpx.AsyncClient) -> None:
    limit = server.services.settings.max_body_bytes
    assert limit == 10 * 1024 * 1024
    body = padded(limit + 1)
    await refused(server, bare, "POST", "/register", 413, content=body)
    await refused(server, bare, "POST", "/register", 413, content=chunks(body))


async def test_body_over_small_limit(make_server: ServerFactory) -> None:
    async with make_server(max_body_bytes=1000) as srv, extra_client(srv, pk=DEV_PK) as c:
        await refused(srv, c, "POST", "/register", 413, content=padded(1001))
        await refused(srv, c, "POST", "/register", 413, content=chunks(padded(1001), 100))
        await refused(srv, c, "POST", "/login", 413, content=padded(5000))
        ok = padded(1000)
        assert len(ok) == 1000
        assert isinstance(assert_json(await c.post("/register", content=ok)), str)
        assert isinstance(assert_json(await c.post("/register", content=chunks(padded(1000), 100))), str)


# Passwords bcrypt cannot take


@pytest.mark.parametrize("password", ["p" * 73, "é" * 37, "😀" * 19])
async def test_password_over_72_bytes(server: Server, bare: httpx.AsyncClient, password: str) -> None:
    assert len(password.encode()) > 72
    await refused(server, bare, "POST", "/register", 400, json={"email": unique_email(), "password": password})
    token = await admin_token(server)
    await refused(
        server,
        bare,
        "POST",
        "/account/users",
        400,
        json={"email": unique_email(), "password": password},
        headers=auth(token),
    )
    await refused(server, bare, "POST", "/login", 401, json={"email": DEV_EMAIL, "password": password})


async def test_password_over_72_bytes_on_reset(server: Server, bare: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(bare, email)
    code = assert_json(await bare.get("/password/resetcode", params={"e": email}, headers=auth(server.dev.root_token)))
    await refused(
        server, bare, "POST", "/password/reset", 400, json={"email": email, "code": code, "password": "p" * 73}
    )
    assert_json(await login(bare, email))


async def test_password_of_exactly_72_bytes_is_accepted(bare: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(bare, email, "p" * 72)
    assert_json(await login(bare, email, "p" * 72))
    assert_error(await login(bare, email, "p" * 71), 401)


# Hostile strings

HOSTILE = [
    "' OR '1'='1@example.com",
    "x'or'1'='1@example.com",
    "robert');DROP TABLE users;--@example.com",
    'a"; DELETE FROM users; --@example.com',
    "a\x00b@example.com",
    DEV_EMAIL + "\x00",
    "\x00",
    "ünïcødé@exämple.com",
    "😀@example.com",
    "a" * 10_000 + "@example.com",
    "<script>alert(1)</script>@example.com",
    "%00@example.com",
    "a@example.com\r\nX-Injected: 1",
    "\ud800@example.com",
    "admin@dev.com' --",
    "*",
    "%",
]


def raw_json(value: dict[str, Any]) -> bytes:
    """JSON with every non-ASCII character escaped, so lone surrogates travel as ``\\udXXX``."""
    return json.dumps(value, ensure_ascii=True).encode()


def quoted(value: str) -> str:
    """Percent-encoded for a URL; a lone surrogate goes as the bytes it would have been."""
    return quote(value, safe="", errors="surrogatepass")


def crash_of(r: httpx.Response, what: str) -> str | None:
    """None when the answer is a well-formed success or client error, else what went wrong."""
    if r.status_code >= 500:
        return f"{what}: {r.status_code} {r.text[:200]!r}"
    try:
        if r.status_code >= 400:
            assert_error(r)
        else:
            assert r.headers["content-type"] == "application/json"
    except AssertionError as exc:
        return f"{what}: {r.status_code} malformed answer: {exc}"
    return None


@pytest.mark.parametrize("value", HOSTILE, ids=[f"h{i}" for i in range(len(HOSTILE))])
async def test_hostile_strings_do_not_crash(server: Server, bare: httpx.AsyncClient, value: str) -> None:
    before_accounts, before_users = await snapshot(server)
    admin = await admin_token(server)
    root = auth(server.dev.root_token)
    v = quoted(value)
    sent: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/register", {"content": raw_json({"email": value, "password": PASSWORD})}),
        ("POST", "/register", {"content": raw_json({"email": unique_email(), "password": value})}),
        ("POST", "/login", {"content": raw_json({"email": value, "password": value})}),
        ("POST", "/login", {"content": raw_json({"email": DEV_EMAIL, "password": value})}),
        ("GET", f"/email?e={v}", {}),
        ("POST", "/account/users", {"content": raw_json({"email": value, "password": value}), "headers": auth(admin)}),
        ("GET", f"/password/resetcode?e={v}", {"headers": root}),
        ("POST", "/password/reset", {"content": raw_json({"email": value, "code": value, "password": "x-123456"})}),
        ("POST", "/password/reset", {"content": raw_json({"email": DEV_EMAIL, "code": value, "password": "x-1234"})}),
        ("POST", "/login/magic", {"content": raw_json({"email": value, "link": value, "body": value})}),
        ("GET", f"/login/magic?email={v}&code={v}", {}),
        ("GET", f"/sudogettoken/{v}", {"headers": root}),
        ("DELETE", f"/account/users/{v}", {"headers": auth(admin)}),
        ("GET", f"/me?sbpk={v}", {"headers": {**auth(admin), "SB-PUBLIC-KEY": ""}}),
        ("GET", f"/account/init?email={v}", {}),
    ]
    crashes = []
    for method, path, kw in sent:
        r = await bare.request(method, path, **kw)
        crashes.append(crash_of(r, f"{method} {path[:40]}"))
        await ping_ok(bare)
    found = [c for c in crashes if c]
    assert not found, "server errors:\n" + "\n".join(found)
    after_accounts, after_users = await snapshot(server)
    # nothing changed for the users who were already there
    assert set(before_users) <= set(after_users)
    assert set(before_accounts) <= set(after_accounts)
    # anything new is exactly an account created by one of the two /register calls
    new_users = set(after_users) - set(before_users)
    assert len(new_users) <= 2
    for _, email, _, _ in new_users:
        assert email.endswith("@example.com") or email == value.strip().lower()
    assert len(set(after_accounts) - set(before_accounts)) == len(new_users)
    # the admin is intact: same password, still role 100
    assert_json(await login(bare, DEV_EMAIL, server.dev.password))
    assert (await me(bare, await admin_token(server)))["role"] == 100


async def test_hostile_email_registered_is_stored_verbatim(bare: httpx.AsyncClient, server: Server) -> None:
    email = f"x'or'1'='1-{unique_email()}"
    await register(bare, email)
    user = await stored_user(server, email)
    assert user is not None and user.email == email
    assert_json(await login(bare, email))
    assert await stored_user(server, "x'or'1'='1") is None


async def test_unicode_email_and_password_round_trip(bare: httpx.AsyncClient, server: Server) -> None:
    email = f"ünï-{unique_email()}".replace("example", "exämple")
    password = "pässwörd-😀"
    token = await register(bare, email.upper(), password)
    assert (await me(bare, token))["email"] == email.upper().lower()
    assert_json(await login(bare, email, password))
    assert_error(await login(bare, email, "passwörd-😀"), 401)


async def test_add_user_with_hostile_email_creates_only_that_user(server: Server, bare: httpx.AsyncClient) -> None:
    token = await register(bare)
    email = f"robert');DROP-TABLE-users;--{unique_email()}"
    user = await add_user(bare, token, email)
    assert user["email"] == email.lower()
    listed = assert_json(await bare.get("/account/users", headers=auth(token)))
    assert len(listed) == 2
    assert_json(await login(bare, DEV_EMAIL, server.dev.password))


async def test_non_ascii_reset_code_is_a_wrong_code(server: Server, bare: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(bare, email)
    assert_json(await bare.get("/password/resetcode", params={"e": email}, headers=auth(server.dev.root_token)))
    before = await snapshot(server)
    r = await bare.post("/password/reset", json={"email": email, "code": "ünïcødé-😀", "password": "new-pass"})
    assert r.status_code == 200, f"{r.status_code} {r.text!r}"
    assert assert_json(r) is False
    assert await snapshot(server) == before
    assert_json(await login(bare, email))


FULLWIDTH_CODE = "\uff16\uff16\uff16\uff13\uff13\uff13"  # 666333 in full-width digits


async def test_non_ascii_magic_code_is_a_wrong_code(bare: httpx.AsyncClient) -> None:
    email = unique_email()
    await register(bare, email)
    assert_json(await bare.post("/login/magic", json={"email": email, "link": "http://localhost"}))
    r = await bare.get("/login/magic", params={"email": email, "code": FULLWIDTH_CODE})
    assert_error(r, 400, "invalid code")
    await ping_ok(bare)
