"""Security properties: failed-login limits, password storage, reset codes, secrets never echoed.

Requests from several client addresses are simulated with one ASGI transport per address.
"""

from __future__ import annotations

import bcrypt
import httpx

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
    login,
    make_server,
    me,
    register,
    stored_user,
    unique_email,
)

__all__ = ["_pg_session_ready", "make_server"]


async def login_from(srv: Server, address: str, email: str, password: str) -> httpx.Response:
    async with extra_client(srv, pk=DEV_PK, address=address) as c:
        return await login(c, email, password)


# Failed-login limit


async def test_login_blocked_after_max_failures_even_with_right_password(make_server: ServerFactory) -> None:
    async with make_server(login_max_failures=3) as srv:
        c = srv.client
        email = unique_email()
        await register(c, email)
        for _ in range(3):
            assert_error(await login(c, email, "wrong-password"), 401, "invalid email/password")
        r = await login(c, email)
        assert_error(r, 429)
        assert "eyJ" not in r.text


async def test_login_limit_is_per_email_whatever_the_address(make_server: ServerFactory) -> None:
    async with make_server(login_max_failures=3) as srv:
        email, other = unique_email("victim"), unique_email("other")
        await register(srv.client, email)
        await register(srv.client, other)
        for i in range(3):
            assert_error(await login_from(srv, f"10.0.0.{i + 1}", email, "wrong-password"), 401)
        assert_error(await login_from(srv, "10.0.0.50", email, PASSWORD), 429)
        # another email from another address is not blocked
        r = await login_from(srv, "10.0.1.1", other, PASSWORD)
        assert (await me(srv.client, assert_json(r)))["email"] == other


async def test_successful_login_before_the_limit_resets_it(make_server: ServerFactory) -> None:
    async with make_server(login_max_failures=3) as srv:
        email = unique_email()
        await register(srv.client, email)
        for i in range(2):
            assert_error(await login_from(srv, f"10.0.2.{i + 1}", email, "wrong-password"), 401)
        assert_json(await login_from(srv, "10.0.2.10", email, PASSWORD))
        for i in range(2):
            assert_error(await login_from(srv, f"10.0.3.{i + 1}", email, "wrong-password"), 401)
        # 4 failures in all, but only 2 since the last success
        assert_json(await login_from(srv, "10.0.3.10", email, PASSWORD))
        # and the limit still applies after the reset
        for i in range(3):
            assert_error(await login_from(srv, f"10.0.4.{i + 1}", email, "wrong-password"), 401)
        assert_error(await login_from(srv, "10.0.4.10", email, PASSWORD), 429)


async def test_password_reset_lifts_the_login_block(make_server: ServerFactory) -> None:
    async with make_server(login_max_failures=3) as srv:
        email = unique_email()
        await register(srv.client, email)
        for i in range(3):
            assert_error(await login_from(srv, f"10.0.5.{i + 1}", email, "wrong-password"), 401)
        assert_error(await login_from(srv, "10.0.5.9", email, PASSWORD), 429)
        root = auth(srv.dev.root_token)
        code = assert_json(await srv.client.get("/password/resetcode", params={"e": email}, headers=root))
        r = await srv.client.post("/password/reset", json={"email": email, "code": code, "password": "fresh-pw-1"})
        assert assert_json(r) is True
        assert_json(await login_from(srv, "10.0.5.10", email, "fresh-pw-1"))


# Password storage


def assert_bcrypt(user: User | None, password: str) -> None:
    assert user is not None
    hashed = user.password
    assert hashed.startswith("$2"), hashed[:4]
    assert hashed.split("$")[2] == "10"  # cost 10, as the Go server
    assert password not in hashed
    assert bcrypt.checkpw(password.encode(), hashed.encode())


async def test_passwords_are_stored_as_bcrypt_hashes(server: Server) -> None:
    c = server.client
    assert_bcrypt(await stored_user(server, DEV_EMAIL), server.dev.password)

    email = unique_email()
    token = await register(c, email, "register-pw-1")
    assert_bcrypt(await stored_user(server, email), "register-pw-1")

    added = unique_email()
    await add_user(c, token, added, "added-pw-1")
    assert_bcrypt(await stored_user(server, added), "added-pw-1")

    code = assert_json(await c.get("/password/resetcode", params={"e": email}, headers=auth(server.dev.root_token)))
    assert assert_json(await c.post("/password/reset", json={"email": email, "code": code, "password": "reset-pw-1"}))
    assert_bcrypt(await stored_user(server, email), "reset-pw-1")
    token = assert_json(await login(c, email, "reset-pw-1"))  # the reset ended the earlier session

    r = await c.post(
        "/user/changepw",
        json={"email": email, "oldPassword": "reset-pw-1", "newPassword": "changed-pw-1"},
        headers=auth(token),
    )
    assert assert_json(r) is True
    assert_bcrypt(await stored_user(server, email), "changed-pw-1")

    db = assert_json(await c.get("/account/add-db", headers=auth(await admin_token(server))))
    assert_bcrypt(await stored_user(server, DEV_EMAIL, pk=db["pk"]), db["pw"])

    tenant = unique_email("tenant")
    async with extra_client(server) as bare:
        r = await bare.get("/account/init", params={"email": tenant}, headers={"Accept": "application/json"})
    init = assert_json(r)
    assert_bcrypt(await stored_user(server, tenant, pk=init["pk"]), init["pw"])


# Reset codes


async def test_reset_code_is_cleared_after_use(server: Server) -> None:
    c = server.client
    email = unique_email()
    await register(c, email, "first-pw-1")
    code = assert_json(await c.get("/password/resetcode", params={"e": email}, headers=auth(server.dev.root_token)))
    assert assert_json(await c.post("/password/reset", json={"email": email, "code": code, "password": "second-pw"}))
    user = await stored_user(server, email)
    assert user is not None and user.reset_code == ""
    r = await c.post("/password/reset", json={"email": email, "code": code, "password": "third-pw-1"})
    assert assert_json(r) is False
    assert_json(await login(c, email, "second-pw"))
    assert_error(await login(c, email, "third-pw-1"), 401)


async def test_reset_code_of_one_user_does_not_reset_another(server: Server) -> None:
    c = server.client
    mine, theirs = unique_email("mine"), unique_email("theirs")
    await register(c, mine)
    await register(c, theirs)
    root = auth(server.dev.root_token)
    code = assert_json(await c.get("/password/resetcode", params={"e": mine}, headers=root))
    r = await c.post("/password/reset", json={"email": theirs, "code": code, "password": "hijacked-1"})
    assert assert_json(r) is False
    assert_json(await login(c, theirs))
    assert_error(await login(c, theirs, "hijacked-1"), 401)


async def test_a_new_reset_code_replaces_the_old_one(server: Server) -> None:
    c = server.client
    email = unique_email()
    await register(c, email)
    root = auth(server.dev.root_token)
    old = assert_json(await c.get("/password/resetcode", params={"e": email}, headers=root))
    new = assert_json(await c.get("/password/resetcode", params={"e": email}, headers=root))
    assert old != new
    assert (
        assert_json(await c.post("/password/reset", json={"email": email, "code": old, "password": "x-pass-1"}))
        is False
    )
    assert (
        assert_json(await c.post("/password/reset", json={"email": email, "code": new, "password": "x-pass-1"})) is True
    )


# Secrets never leave the server


async def test_no_token_or_hash_in_json_responses(server: Server) -> None:
    c = server.client
    a1, a2, b = await accounts_ab(c)
    admin = await admin_token(server)
    new_email = unique_email()
    register_r = await c.post("/register", json={"email": new_email, "password": PASSWORD})
    responses = {
        "register": register_r,
        "users add": await c.post(
            "/account/users", json={"email": unique_email(), "password": PASSWORD}, headers=auth(a1.token)
        ),
        "users list a1": await c.get("/account/users", headers=auth(a1.token)),
        "users list a2": await c.get("/account/users", headers=auth(a2.token)),
        "users list b": await c.get("/account/users", headers=auth(b.token)),
        "users list admin": await c.get("/account/users", headers=auth(admin)),
        "me a1": await c.get("/me", headers=auth(a1.token)),
        "me admin": await c.get("/me", headers=auth(admin)),
    }
    secrets: list[str] = []
    for email in (a1.email, a2.email, b.email, new_email, DEV_EMAIL):
        user = await stored_user(server, email)
        assert user is not None
        secrets += [user.token, user.password]
    for name, r in responses.items():
        body = assert_json(r)
        for secret in secrets:
            assert secret not in r.text, name
        items = body if isinstance(body, list) else [body] if isinstance(body, dict) else []
        for item in items:
            assert not {"token", "password", "resetCode", "reset_code"} & set(item), (name, item)


async def test_deleted_user_session_is_rejected(server: Server) -> None:
    c = server.client
    owner = await register(c)
    email = unique_email()
    user = await add_user(c, owner, email)
    token = assert_json(await login(c, email))
    assert (await me(c, token))["userId"] == user["id"]
    assert assert_json(await c.delete(f"/account/users/{user['id']}", headers=auth(owner))) is True
    assert_error(await c.get("/me", headers=auth(token)), 400)


async def test_root_token_is_bound_to_its_app(server: Server) -> None:
    db = assert_json(await server.client.get("/account/add-db", headers=auth(await admin_token(server))))
    async with extra_client(server, pk=db["pk"]) as other:
        assert_error(await other.get("/account/auth", headers=auth(server.dev.root_token)), 400)
        assert assert_json(await other.get("/account/auth", headers=auth(db["rootToken"]))) == DEV_EMAIL
    assert_error(await server.client.get("/account/auth", headers=auth(db["rootToken"])), 400)
