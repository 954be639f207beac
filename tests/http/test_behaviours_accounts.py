"""Spec 09, items 1-51: conventions, base resolution, tokens, accounts, users and bases.

Each test is named after its item. Where decision 3 of ``spec/00-index.md`` replaces upstream's
200/500 by a client-error status, the test asserts the decision's status and says so.
"""

from __future__ import annotations

import re
import time

import pytest

from sbserver.ids import ALPHABET
from sbserver.services.identity import DEV_ROOT_ALIAS, DEV_ROOT_KEY
from sbserver.services.tenancy import DEV_SIGNUP_TEXT
from sbserver.services.tokens import TokenCodec
from sbserver.types import User
from tests.http.conftest import DEV_EMAIL, DEV_PK, Server
from tests.http.helpers import (
    PASSWORD,
    ServerFactory,
    _pg_session_ready,
    accounts_ab,
    add_user,
    admin_token,
    assert_error,
    assert_json,
    auth,
    extra_client,
    jwt_parts,
    login,
    make_server,
    me,
    register,
    snapshot,
    stored_user,
    unique_email,
)

__all__ = ["_pg_session_ready", "make_server"]

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAGIC_BODY = {"fromEmail": "app@example.com", "fromName": "App", "subject": "Sign in", "body": "Go: [link]"}


def root(server: Server) -> dict[str, str]:
    return auth(server.dev.root_token)


async def admin_user(server: Server) -> User:
    user = await stored_user(server, DEV_EMAIL)
    assert user is not None
    return user


# Conventions and base resolution


async def test_b001_success_is_application_json_without_charset(server: Server) -> None:
    c = server.client
    admin = await admin_token(server)
    email = unique_email()
    register_r = await c.post("/register", json={"email": email, "password": PASSWORD})
    account_id = (await me(c, assert_json(register_r)))["accountId"]
    responses = {
        "ping": await c.get("/ping"),
        "login": await login(c, email),
        "me": await c.get("/me", headers=auth(admin)),
        "email": await c.get("/email", params={"e": email}),
        "users list": await c.get("/account/users", headers=auth(admin)),
        "users add": await c.post(
            "/account/users", json={"email": unique_email(), "password": PASSWORD}, headers=auth(admin)
        ),
        "resetcode": await c.get("/password/resetcode", params={"e": email}, headers=root(server)),
        "reset": await c.post("/password/reset", json={"email": email, "code": "wrong", "password": "x1"}),
        "magic": await c.post("/login/magic", json={**MAGIC_BODY, "email": email, "link": "http://localhost"}),
        "sudogettoken": await c.get(f"/sudogettoken/{account_id}", headers=root(server)),
        "account auth": await c.get("/account/auth", headers=root(server)),
        "init": await c.get("/account/init", params={"email": unique_email("init")}),
    }
    for name, r in responses.items():
        assert r.status_code == 200, (name, r.status_code, r.text)
        assert r.headers["content-type"] == "application/json", (name, r.headers)
        assert not r.text.endswith("\n"), name
        r.json()


async def test_b002_errors_are_plain_text_with_final_newline(server: Server) -> None:
    c = server.client
    email = unique_email()
    await register(c, email)
    async with extra_client(server) as bare:
        responses = {
            "no auth": (await c.get("/me"), 401),
            "bad password": (await login(c, email, "wrong-password"), 401),
            "duplicate": (await c.post("/register", json={"email": email, "password": PASSWORD}), 409),
            "bad json": (await c.post("/register", content=b"{not json"), 400),
            "unknown path": (await c.get("/no-such-route-here"), 404),
            "bad method": (await c.get("/register"), 405),
            "bad init": (await c.get("/account/init", params={"email": "x"}), 400),
            "no key": (await bare.get("/me"), 401),
            "unknown key": (await bare.get("/me", headers={"SB-PUBLIC-KEY": "nope"}), 404),
            "session on root": (await c.get("/account/auth", headers=auth(await admin_token(server))), 400),
        }
    for name, (r, status) in responses.items():
        assert r.status_code == status, (name, r.status_code, r.text)
        assert_error(r, status)


@pytest.mark.parametrize("path", ["/db/tasks", "/me"])
async def test_b003_no_public_key_is_401(server: Server, path: str) -> None:
    async with extra_client(server) as bare:
        r = await bare.get(path)
        assert_error(r, 401, "invalid StaticBackend public key")
        assert r.text == "invalid StaticBackend public key\n"
        # the key is checked before the token
        assert_error(await bare.get(path, headers=auth("junk")), 401, "invalid StaticBackend public key")


async def test_b004_public_key_from_sbpk_query(server: Server) -> None:
    token = await admin_token(server)
    async with extra_client(server) as bare:
        r = await bare.get("/me", params={"sbpk": DEV_PK}, headers=auth(token))
        assert assert_json(r)["email"] == DEV_EMAIL
        assert assert_json(await bare.get("/email", params={"e": DEV_EMAIL, "sbpk": DEV_PK})) is True


async def test_b005_public_key_from_pk_cookie(server: Server) -> None:
    token = await admin_token(server)
    async with extra_client(server) as bare:
        r = await bare.get("/me", headers={**auth(token), "Cookie": f"pk={DEV_PK}"})
        assert assert_json(r)["email"] == DEV_EMAIL
        r = await bare.get("/email", params={"e": DEV_EMAIL}, headers={"Cookie": f"pk={DEV_PK}"})
        assert assert_json(r) is True


# decision 3: an unknown public key is "not found" -> 404 (upstream 500)
async def test_b006_unknown_public_key(server: Server) -> None:
    async with extra_client(server, pk="no-such-key-123") as c:
        for r in (await c.get("/me"), await c.post("/login", json={"email": DEV_EMAIL, "password": "x"})):
            assert_error(r, 404, startswith="error finding database 'no-such-key-123'")


@pytest.mark.parametrize("path", ["/db/tasks", "/me", "/register"])
async def test_b007_preflight_answered_without_key_or_token(server: Server, path: str) -> None:
    async with extra_client(server) as bare:
        r = await bare.options(path, headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"})
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert r.text == ""


async def test_b008_cors_reflects_origin_and_uppercases_method(server: Server) -> None:
    token = await admin_token(server)
    r = await server.client.get(
        "/me",
        headers={
            **auth(token),
            "Origin": "https://a.example",
            "Access-Control-Request-Method": "post",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert_json(r)
    assert r.headers["access-control-allow-origin"] == "https://a.example"
    assert r.headers["access-control-allow-methods"] == "POST"
    assert r.headers["access-control-allow-headers"] == "authorization"
    assert "Origin" in r.headers.get_list("vary")
    # without an Origin: Vary only, no other CORS header
    plain = await server.client.get("/me", headers=auth(token))
    assert "access-control-allow-origin" not in plain.headers
    assert "Origin" in plain.headers.get_list("vary")


async def test_b009_ping(server: Server) -> None:
    r = await server.client.get("/ping")
    assert assert_json(r) is True
    assert r.text == "true"


# Tokens


async def test_b010_login_returns_jwt_with_claims(server: Server) -> None:
    admin = await admin_user(server)
    r = await login(server.client, DEV_EMAIL, server.dev.password)
    token = assert_json(r)
    assert isinstance(token, str) and token.count(".") == 2
    header, payload, sig = jwt_parts(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert sig
    assert payload["iss"] == "StaticBackend"
    user_id, _, user_token = payload["token"].partition("|")
    assert user_id == admin.id
    assert UUID.fullmatch(user_token) and user_token == admin.token
    assert isinstance(payload["jti"], str) and len(payload["jti"]) == 32
    assert payload["exp"] - payload["iat"] == 12 * 3600


async def test_b011_fresh_token_accepted_despite_nbf(server: Server) -> None:
    token = await admin_token(server)
    _, payload, _ = jwt_parts(token)
    assert payload["nbf"] > time.time() + 25 * 60  # the token claims not to be valid yet
    assert (await me(server.client, token))["email"] == DEV_EMAIL


async def test_b012_me_without_authorization(server: Server) -> None:
    assert_error(await server.client.get("/me"), 401, "missing authorization HTTP header")


async def test_b013_me_with_non_bearer_authorization(server: Server) -> None:
    r = await server.client.get("/me", headers={"Authorization": "Token abc"})
    assert_error(r, 400, startswith="invalid authorization HTTP header, should be: Bearer your-token")


async def test_b014_me_with_bearer_not_a_jwt(server: Server) -> None:
    r = await server.client.get("/me", headers=auth("not-a-jwt"))
    assert_error(r, 400, startswith="error validating auth key:")


async def test_b015_jwt_with_other_secret_rejected(server: Server) -> None:
    admin = await admin_user(server)
    forged = TokenCodec(b"some-other-secret").issue(admin.id, admin.token)
    assert_error(await server.client.get("/me", headers=auth(forged)), 400)
    genuine = TokenCodec(server.services.settings.jwt_secret).issue(admin.id, admin.token)
    assert (await me(server.client, genuine))["userId"] == admin.id


@pytest.mark.parametrize("path", ["/db/tasks", "/me"])
async def test_b016_root_token_on_user_route(server: Server, path: str) -> None:
    assert_error(await server.client.get(path, headers=root(server)), 400)


@pytest.mark.parametrize("path", ["/sudo/tasks", "/sudogettoken/x", "/account/auth"])
async def test_b017_session_token_on_root_route(server: Server, path: str) -> None:
    token = await admin_token(server)
    assert_error(await server.client.get(path, headers=auth(token)), 400, "invalid root token")


@pytest.mark.parametrize("path", ["/sudo/tasks", "/account/auth"])
async def test_b018_root_token_of_low_role_user(server: Server, path: str) -> None:
    a1, _, _ = await accounts_ab(server.client)
    user = await stored_user(server, a1.email)
    assert user is not None
    fake_root = f"{user.id}|{user.account_id}|{user.token}"
    assert_error(await server.client.get(path, headers=auth(fake_root)), 400, "not enough permission")


@pytest.mark.parametrize("path", ["/sudolistall/", "/account/auth"])
async def test_b019_dev_root_alias_after_init(server: Server, path: str) -> None:
    await server.services.cache.delete(DEV_ROOT_KEY)
    c = server.client
    assert_error(await c.get(path, headers=auth(DEV_ROOT_ALIAS)), 401, "not in dev mode")
    async with extra_client(server) as bare:
        r = await bare.get("/account/init", params={"email": DEV_EMAIL, "mem": "1"})
    assert assert_json(r) == DEV_SIGNUP_TEXT
    r = await c.get(path, headers=auth(DEV_ROOT_ALIAS))
    body = assert_json(r)
    if path == "/account/auth":
        assert body == DEV_EMAIL
    else:
        assert isinstance(body, list)


@pytest.mark.parametrize("path", ["/account/auth", "/sudogettoken/x", "/password/resetcode?e=a@b.co"])
async def test_b020_dev_alias_without_stored_root_token(server: Server, path: str) -> None:
    await server.services.cache.delete(DEV_ROOT_KEY)
    assert_error(await server.client.get(path, headers=auth(DEV_ROOT_ALIAS)), 401, "not in dev mode")


async def test_b021_session_survives_cache_clear(server: Server) -> None:
    token = await register(server.client)
    first = await me(server.client, token)
    identities = server.services.identities
    assert identities._claims, "the verified token was expected to be cached"
    identities._claims.clear()
    await server.services.cache.delete(DEV_ROOT_KEY)  # nothing else of the cache is needed either
    assert await me(server.client, token) == first


# Register, login, me


async def test_b022_register_returns_session_for_role_50(server: Server) -> None:
    email = unique_email("New")
    token = await register(server.client, email)
    data = await me(server.client, token)
    assert data["role"] == 50
    assert data["email"] == email.lower()


# decision 3: an email already registered is a conflict -> 409 (upstream 500)
async def test_b023_register_duplicate_email(server: Server) -> None:
    email = unique_email()
    await register(server.client, email)
    before = await snapshot(server)
    for variant in (email, email.upper()):
        r = await server.client.post("/register", json={"email": variant, "password": "other-pw"})
        assert_error(r, 409, contains="invalid email")
    assert await snapshot(server) == before
    assert_json(await login(server.client, email))


async def test_b024_register_lowercases_email(server: Server) -> None:
    local = unique_email("User").split("@")[0]
    mixed = f"{local}@Example.COM"
    token = await register(server.client, mixed)
    user = await stored_user(server, mixed.lower())
    assert user is not None and user.email == mixed.lower()
    assert (await me(server.client, token))["email"] == mixed.lower()
    r = await login(server.client, f"{local.upper()}@example.com")
    assert (await me(server.client, assert_json(r)))["userId"] == user.id


async def test_b025_login_wrong_password(server: Server) -> None:
    r = await login(server.client, DEV_EMAIL, "not-the-password")
    assert_error(r, 401, "invalid email/password")


async def test_b026_login_unknown_email(server: Server) -> None:
    r = await login(server.client, unique_email("nobody"), PASSWORD)
    assert_error(r, 401, "invalid email/password")


async def test_b027_me_of_admin(server: Server) -> None:
    admin = await admin_user(server)
    data = await me(server.client, await admin_token(server))
    assert {k: data[k] for k in ("accountId", "userId", "email", "role")} == {
        "accountId": admin.account_id,
        "userId": admin.id,
        "email": DEV_EMAIL,
        "role": 100,
    }
    assert set(data) <= {"accountId", "userId", "email", "role", "id"}
    assert data.get("id", admin.id) == admin.id


async def test_b028_email_exists(server: Server) -> None:
    c = server.client
    email = unique_email()
    await register(c, email)
    assert assert_json(await c.get("/email", params={"e": email})) is True
    assert assert_json(await c.get("/email", params={"e": email.upper()})) is True
    assert assert_json(await c.get("/email", params={"e": unique_email("unknown")})) is False
    assert assert_json(await c.get("/email")) is False
    assert assert_json(await c.get("/email", params={"e": ""})) is False


# Magic link and password reset


async def test_b029_magic_link_in_dev(server: Server) -> None:
    c = server.client
    email = unique_email()
    await register(c, email)
    r = await c.post("/login/magic", json={**MAGIC_BODY, "email": email, "link": "http://localhost:3000/in"})
    assert assert_json(r) is True
    r = await c.get("/login/magic", params={"email": email, "code": "666333"})
    token = assert_json(r)
    assert (await me(c, token))["email"] == email


# decision 3: a wrong code is bad input -> 400 (upstream issues a token, spec (compat) says 500)
async def test_b030_magic_link_wrong_code(server: Server) -> None:
    c = server.client
    email = unique_email()
    await register(c, email)
    assert_json(await c.post("/login/magic", json={**MAGIC_BODY, "email": email, "link": "http://localhost"}))
    r = await c.get("/login/magic", params={"email": email, "code": "123456"})
    assert_error(r, 400, "invalid code")
    assert "." not in r.text  # no token anywhere in the answer
    token = assert_json(await c.get("/login/magic", params={"email": email, "code": "666333"}))
    assert (await me(c, token))["email"] == email


async def test_b031_magic_link_retry_limit(server: Server) -> None:
    c = server.client
    email = unique_email()
    await register(c, email)
    assert_json(await c.post("/login/magic", json={**MAGIC_BODY, "email": email, "link": "http://localhost"}))
    for _ in range(server.services.settings.magic_code_max_attempts):
        assert_error(await c.get("/login/magic", params={"email": email, "code": "000000"}), 400, "invalid code")
    r = await c.get("/login/magic", params={"email": email, "code": "000000"})
    assert_error(r, 429, "maximum retry reached")


# decision 3: a link never requested is "not found" -> 404 (upstream 500)
async def test_b032_magic_link_never_requested(server: Server) -> None:
    email = unique_email()
    await register(server.client, email)
    r = await server.client.get("/login/magic", params={"email": email, "code": "666333"})
    assert_error(r, 404)


async def test_b033_reset_code_with_root(server: Server) -> None:
    email = unique_email()
    await register(server.client, email)
    r = await server.client.get("/password/resetcode", params={"e": email}, headers=root(server))
    code = assert_json(r)
    assert isinstance(code, str) and len(code) == 10 and code[0] == "a"
    assert set(code) <= set(ALPHABET)
    user = await stored_user(server, email)
    assert user is not None and user.reset_code == code


async def test_b034_reset_code_invalid_email(server: Server) -> None:
    r = await server.client.get("/password/resetcode", params={"e": "nope"}, headers=root(server))
    assert_error(r, 400, "invalid email")


async def test_b035_reset_code_needs_root(server: Server) -> None:
    email = unique_email()
    token = await register(server.client, email)
    r = await server.client.get("/password/resetcode", params={"e": email}, headers=auth(token))
    assert_error(r, 400)
    user = await stored_user(server, email)
    assert user is not None and user.reset_code == ""


async def test_b036_password_reset(server: Server) -> None:
    c = server.client
    email = unique_email()
    await register(c, email, "old-password")
    code = assert_json(await c.get("/password/resetcode", params={"e": email}, headers=root(server)))
    r = await c.post("/password/reset", json={"email": email, "code": code, "password": "new-password"})
    assert assert_json(r) is True
    assert_json(await login(c, email, "new-password"))
    assert_error(await login(c, email, "old-password"), 401)


async def test_b037_password_reset_wrong_code(server: Server) -> None:
    c = server.client
    email = unique_email()
    await register(c, email, "old-password")
    code = assert_json(await c.get("/password/resetcode", params={"e": email}, headers=root(server)))
    wrong = "a" + ("b" if code[1:] != "b" * 9 else "c") * 9
    r = await c.post("/password/reset", json={"email": email, "code": wrong, "password": "new-password"})
    assert assert_json(r) is False
    assert_json(await login(c, email, "old-password"))
    assert_error(await login(c, email, "new-password"), 401)


async def test_b038_password_reset_empty_code(server: Server) -> None:
    c = server.client
    email = unique_email()
    await register(c, email, "old-password")
    r = await c.post("/password/reset", json={"email": email, "code": "", "password": "new-password"})
    assert assert_json(r) is False
    r = await c.post("/password/reset", json={"email": email, "password": "new-password"})
    assert assert_json(r) is False
    assert_json(await login(c, email, "old-password"))
    assert_error(await login(c, email, "new-password"), 401)


# Account users and bases


async def test_b039_add_account_user(server: Server) -> None:
    c = server.client
    email = unique_email()
    token = await register(c, email)
    owner = await me(c, token)
    new_email = unique_email("Member")
    user = await add_user(c, token, new_email)
    assert user["role"] == 0
    assert user["accountId"] == owner["accountId"]
    assert user["email"] == new_email.lower()
    assert UUID.fullmatch(user["id"])
    stored = await stored_user(server, new_email.lower())
    assert stored is not None and stored.id == user["id"] and stored.account_id == owner["accountId"]


# decision 3: an email already in use is a conflict -> 409 (upstream 400)
async def test_b040_add_account_user_twice(server: Server) -> None:
    c = server.client
    token = await register(c)
    email = unique_email()
    await add_user(c, token, email)
    before = await snapshot(server)
    r = await c.post("/account/users", json={"email": email, "password": PASSWORD}, headers=auth(token))
    assert_error(r, 409, "email already in use")
    assert await snapshot(server) == before


async def test_b041_add_account_user_bad_email(server: Server) -> None:
    token = await register(server.client)
    before = await snapshot(server)
    r = await server.client.post("/account/users", json={"email": "bad", "password": PASSWORD}, headers=auth(token))
    assert_error(r, 400, "invalid email")
    assert await snapshot(server) == before


async def test_b042_account_users_never_show_token(server: Server) -> None:
    c = server.client
    token = await register(c)
    created = await add_user(c, token, unique_email())
    listed = assert_json(await c.get("/account/users", headers=auth(token)))
    assert len(listed) == 2
    for user in [created, *listed]:
        assert "token" not in user
        assert "password" not in user
        stored = await stored_user(server, user["email"])
        assert stored is not None and stored.token not in str(user)


async def test_b043_account_users_lists_own_account_only(server: Server) -> None:
    a1, a2, b = await accounts_ab(server.client)
    listed = assert_json(await server.client.get("/account/users", headers=auth(a1.token)))
    assert sorted(u["id"] for u in listed) == sorted([a1.user_id, a2.user_id])
    assert all(u["accountId"] == a1.account_id for u in listed)
    listed_b = assert_json(await server.client.get("/account/users", headers=auth(b.token)))
    assert [u["id"] for u in listed_b] == [b.user_id]


async def test_b044_admin_deletes_user_of_its_account(server: Server) -> None:
    c = server.client
    admin = await admin_token(server)
    email = unique_email()
    user = await add_user(c, admin, email)
    assert_json(await login(c, email))
    r = await c.delete(f"/account/users/{user['id']}", headers=auth(admin))
    assert assert_json(r) is True
    listed = assert_json(await c.get("/account/users", headers=auth(admin)))
    assert user["id"] not in [u["id"] for u in listed]
    assert_error(await login(c, email), 401)


# decision 3: not allowed -> 403 (upstream 401)
async def test_b045_delete_higher_role_user(server: Server) -> None:
    a1, a2, _ = await accounts_ab(server.client)
    r = await server.client.delete(f"/account/users/{a1.user_id}", headers=auth(a2.token))
    assert_error(r, 403, "permission level not high enough")
    assert await stored_user(server, a1.email) is not None
    assert_json(await login(server.client, a1.email))


# decision 3: a user of another account is not visible -> 404
async def test_b046_delete_user_of_other_account(server: Server) -> None:
    a1, _, b = await accounts_ab(server.client)
    r = await server.client.delete(f"/account/users/{b.user_id}", headers=auth(a1.token))
    assert_error(r, 404)
    assert await stored_user(server, b.email) is not None
    assert (await me(server.client, b.token))["userId"] == b.user_id


async def test_b047_add_db_as_admin(server: Server) -> None:
    r = await server.client.get("/account/add-db", headers=auth(await admin_token(server)))
    data = assert_json(r)
    assert set(data) == {"pk", "rootToken", "pw"}
    assert data["pk"] and data["pw"] and data["pk"] != DEV_PK
    parts = data["rootToken"].split("|")
    assert len(parts) == 3 and all(parts)
    async with extra_client(server, pk=data["pk"]) as other:
        assert assert_json(await other.get("/account/auth", headers=auth(data["rootToken"]))) == DEV_EMAIL
        assert (await me(other, assert_json(await login(other, DEV_EMAIL, data["pw"]))))["role"] == 100


# decision 3: not allowed -> 403 (upstream 406)
async def test_b048_add_db_by_non_root_session(server: Server) -> None:
    a1, a2, _ = await accounts_ab(server.client)
    for m in (a1, a2):
        r = await server.client.get("/account/add-db", headers=auth(m.token))
        assert_error(r, 403, "you cannot perform this action")


async def test_b049_sudogettoken_for_account(server: Server) -> None:
    a1, _a2, _ = await accounts_ab(server.client)
    r = await server.client.get(f"/sudogettoken/{a1.account_id}", headers=root(server))
    token = assert_json(r)
    data = await me(server.client, token)
    assert data["accountId"] == a1.account_id
    assert data["userId"] == a1.user_id  # the oldest user of the account, not A2
    assert data["role"] == 50


# decision 3: the email is taken -> 409 (upstream 500)
async def test_b050_account_init_bad_and_repeated_email(server: Server) -> None:
    async with extra_client(server) as bare:
        assert_error(await bare.get("/account/init", params={"email": "x"}), 400, "invalid email")
        email = unique_email("tenant")
        assert assert_json(await bare.get("/account/init", params={"email": email})) == DEV_SIGNUP_TEXT
        r = await bare.get("/account/init", params={"email": email})
        assert_error(r, 409, "Please use a different/valid email.")
        r = await bare.get("/account/init", params={"email": email.upper()})
        assert_error(r, 409, "Please use a different/valid email.")


async def test_b051_account_init_with_activation_flag(make_server: ServerFactory) -> None:
    async with make_server(activate_flag="flag123") as srv, extra_client(srv) as bare:
        email = unique_email("flag")
        r = await bare.get("/account/init", params={"email": email, "ui": "1", "x": "flag123"})
        data = assert_json(r)
        assert set(data) == {"pk", "rootToken", "pw"}
        async with extra_client(srv, pk=data["pk"]) as app:
            assert assert_json(await app.get("/account/auth", headers=auth(data["rootToken"]))) == email
            assert (await me(app, assert_json(await login(app, email, data["pw"]))))["role"] == 100
        r = await bare.get("/account/init", params={"email": unique_email("flag"), "x": "FLAG123"})
        assert assert_json(r) == DEV_SIGNUP_TEXT
        r = await bare.get("/account/init", params={"email": unique_email("flag"), "ui": "1", "x": "wrong"})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")


async def test_b051_account_init_accept_json_answers_credentials(server: Server) -> None:
    email = unique_email("json")
    async with extra_client(server) as bare:
        r = await bare.get("/account/init", params={"email": email, "ui": "1"}, headers={"Accept": "application/json"})
        data = assert_json(r)
        assert set(data) == {"pk", "rootToken", "pw"}
        async with extra_client(server, pk=data["pk"]) as app:
            assert assert_json(await app.get("/account/auth", headers=auth(data["rootToken"]))) == email


async def test_b051_account_init_without_ui_is_signup_text(server: Server) -> None:
    async with extra_client(server) as bare:
        r = await bare.get("/account/init", params={"email": unique_email("cli")})
    assert assert_json(r) == DEV_SIGNUP_TEXT
