"""The JS client's account calls (issue 14 item 6), on every store kind.

* ``POST /me/email {email[, password]}``: one's own email; a fresh session token comes back and
  every other session and root token of the user ends; a notice goes to the old address.
* ``POST /setrole {email, role[, accountId]}``: an account admin sets users of its own account
  below its role; root sets any user; nobody its own role or above its own.
* ``GET /account/associations``: the caller's one account.
* ``POST /account/promote``: 501, multi-account membership being hosted-only.
"""

from __future__ import annotations

from typing import Any

import httpx

from sbserver.backends.mail.console import ConsoleMailer
from tests.http.conftest import DEV_EMAIL, Server
from tests.http.helpers import (
    PASSWORD,
    _pg_session_ready,
    accounts_ab,
    admin_token,
    assert_error,
    assert_json,
    auth,
    b64url,
    dev_base,
    extra_client,
    login,
    me,
    member,
    register,
    snapshot,
    stored_user,
    unique_email,
)

__all__ = ["_pg_session_ready"]

SESSION_GONE = "error validating auth key: invalid authentication token"


async def change_email(c: httpx.AsyncClient, token: str, body: Any) -> httpx.Response:
    return await c.post("/me/email", json=body, headers=auth(token))


async def set_role(c: httpx.AsyncClient, token: str, body: Any) -> httpx.Response:
    return await c.post("/setrole", json=body, headers=auth(token))


def forged(token: str) -> str:
    """The same claims with a signature of another secret."""
    head, body, _ = token.split(".")
    return f"{head}.{body}.{b64url(b'not-the-signature-of-this-token!')}"


async def other_app(server: Server) -> tuple[str, str]:
    """A second app of the same server: its public key and a registered user's session token."""
    new = await server.services.tenancy.init_account(unique_email("tenant"), False, True, True)
    async with extra_client(server, pk=new.base.id) as c:
        return new.base.id, await register(c)


# --- POST /me/email -----------------------------------------------------------------------


async def test_change_email_moves_the_user_and_ends_other_sessions(server: Server) -> None:
    c = server.client
    old, new = unique_email("old"), unique_email("new")
    first = await register(c, old)
    second = assert_json(await login(c, old))
    before = await me(c, first)

    fresh = assert_json(await change_email(c, first, {"email": f"  {new.upper()} "}))
    assert isinstance(fresh, str)
    now = await me(c, fresh)
    assert now == {**before, "email": new}
    for token in (first, second):
        assert_error(await c.get("/me", headers=auth(token)), 400, SESSION_GONE)
    assert_error(await login(c, old), 401, "invalid email/password")
    assert_json(await login(c, new))
    # the account's email followed (it was the owner's)
    base = await dev_base(server)
    assert {a.email for a in await server.services.store.accounts(base) if a.id == before["accountId"]} == {new}
    # the old address is told where the account went
    mailer = server.services.mailer
    assert isinstance(mailer, ConsoleMailer)
    notice = [m for m in mailer.sent if m.to == old]
    assert len(notice) == 1 and new in notice[0].text


async def test_change_email_to_a_taken_one_is_409_and_changes_nothing(server: Server) -> None:
    c = server.client
    a, b = unique_email("a"), unique_email("b")
    token = await register(c, a)
    await register(c, b)
    before = await snapshot(server)
    assert_error(await change_email(c, token, {"email": b.upper()}), 409, "email already in use")
    assert await snapshot(server) == before
    assert (await me(c, token))["email"] == a  # the session survives a refusal


async def test_change_email_bad_input(server: Server) -> None:
    c = server.client
    token = await register(c)
    before = await snapshot(server)
    for body in ({"email": "not-an-address"}, {"email": ""}, {}, {"email": "a b@example.com"}):
        assert_error(await change_email(c, token, body), 400, "invalid email")
    assert_error(await change_email(c, token, {"email": 5}), 400, startswith='invalid field "email"')
    assert_error(await change_email(c, token, ["x@example.com"]), 400, startswith="invalid JSON body")
    r = await c.post("/me/email", content=b"{", headers=auth(token))
    assert_error(r, 400, startswith="invalid JSON body")
    assert await snapshot(server) == before
    assert (await me(c, token))["email"]


async def test_change_email_checks_a_given_password(server: Server) -> None:
    c = server.client
    old, new = unique_email("pw"), unique_email("pw-new")
    token = await register(c, old)
    before = await snapshot(server)
    assert_error(await change_email(c, token, {"email": new, "password": "wrong"}), 401, "invalid email/password")
    assert await snapshot(server) == before
    fresh = assert_json(await change_email(c, token, {"email": new, "password": PASSWORD}))
    assert (await me(c, fresh))["email"] == new


async def test_change_email_to_the_same_one_keeps_sessions(server: Server) -> None:
    c = server.client
    email = unique_email("same")
    token = await register(c, email)
    again = assert_json(await change_email(c, token, {"email": email.upper()}))
    assert (await me(c, token))["email"] == email
    assert (await me(c, again))["email"] == email


async def test_change_email_refuses_other_apps_forged_and_missing_tokens(server: Server) -> None:
    c = server.client
    token = await register(c)
    _, foreign = await other_app(server)
    before = await snapshot(server)
    body = {"email": unique_email("x")}
    assert_error(await change_email(c, foreign, body), 400, startswith="error validating auth key")
    assert_error(await change_email(c, forged(token), body), 400, startswith="error validating auth key")
    assert_error(await c.post("/me/email", json=body), 401)
    assert_error(await change_email(c, server.dev.root_token, body), 400)  # a root token is not a session
    assert await snapshot(server) == before


async def test_change_email_of_the_dev_admin_is_refused(server: Server) -> None:
    c = server.client
    token = await admin_token(server)
    r = await change_email(c, token, {"email": unique_email("admin")})
    assert_error(r, 403, startswith="the development app's administrator keeps")
    assert (await me(c, token))["email"] == DEV_EMAIL


async def test_change_email_of_a_root_user_moves_the_tenant_email(server: Server) -> None:
    store = server.services.store
    tenant_email = unique_email("tenant")
    new_app = await server.services.tenancy.init_account(tenant_email, False, True, True)
    new = unique_email("tenant-new")
    async with extra_client(server, pk=new_app.base.id) as c:
        token = assert_json(await login(c, tenant_email, new_app.password))
        fresh = assert_json(await change_email(c, token, {"email": new}))
        assert (await me(c, fresh))["email"] == new
        # the root token carried the old secret: it ends with the other sessions
        assert_error(await c.get("/sudolistall", headers=auth(new_app.root_token)), 400)
    assert await store.tenant_by_email(tenant_email) is None
    tenant = await store.tenant_by_email(new)
    assert tenant is not None and tenant.id == new_app.base.tenant_id


# --- POST /setrole ------------------------------------------------------------------------


async def test_account_admin_sets_a_member_role_at_once(server: Server) -> None:
    c = server.client
    a1, a2, _ = await accounts_ab(c)
    assert assert_json(await set_role(c, a1.token, {"email": a2.email.upper(), "role": 10})) is True
    assert (await me(c, a2.token))["role"] == 10  # the session sees it on its next request
    assert assert_json(await set_role(c, a1.token, {"email": a2.email, "role": 50, "accountId": a1.account_id}))
    assert (await me(c, a2.token))["role"] == 50
    # now equal to the admin: no longer below it
    assert_error(await set_role(c, a1.token, {"email": a2.email, "role": 0}), 403, "permission level not high enough")


async def test_setrole_refusals_for_account_members(server: Server) -> None:
    c = server.client
    a1, a2, b = await accounts_ab(c)
    before = await snapshot(server)
    cases = [
        (a1, {"email": a2.email, "role": 60}, 403, "you cannot give a role above your own (50)"),
        (a1, {"email": a1.email, "role": 10}, 403, "you cannot change your own role"),
        (a1, {"email": b.email, "role": 0}, 404, "user not found in your account"),
        (a1, {"email": a2.email, "role": 0, "accountId": b.account_id}, 404, "user not found in this account"),
        (a2, {"email": a1.email, "role": 0}, 403, "only an account admin (role 50 or more) or root can set roles"),
        (a2, {"email": a2.email, "role": 50}, 403, "only an account admin (role 50 or more) or root can set roles"),
        (b, {"email": a2.email, "role": 10}, 404, "user not found in your account"),
        (a1, {"email": unique_email("nobody"), "role": 0}, 404, "user not found in your account"),
    ]
    for caller, body, status, text in cases:
        assert_error(await set_role(c, caller.token, body), status, text)
    assert await snapshot(server) == before
    assert (await me(c, a1.token))["role"] == 50 and (await me(c, a2.token))["role"] == 0


async def test_root_sets_any_user_but_not_itself_nor_the_app_admin(server: Server) -> None:
    c = server.client
    root = await admin_token(server)
    _, a2, b = await accounts_ab(c)
    assert assert_json(await set_role(c, root, {"email": b.email, "role": 100})) is True
    assert (await me(c, b.token))["role"] == 100
    assert assert_json(await set_role(c, root, {"email": a2.email, "role": 70, "accountId": a2.account_id})) is True
    assert (await me(c, a2.token))["role"] == 70
    assert_error(await set_role(c, root, {"email": DEV_EMAIL, "role": 50}), 403, "you cannot change your own role")
    # another root cannot demote the app's administrator (its root token depends on the role)
    r = await set_role(c, b.token, {"email": DEV_EMAIL, "role": 0})
    assert_error(r, 403, "the app's administrator keeps its role (its root token depends on it)")
    assert_error(await set_role(c, root, {"email": unique_email("none"), "role": 0}), 404, "no user with this email")
    r = await set_role(c, root, {"email": a2.email, "role": 0, "accountId": b.account_id})
    assert_error(r, 404, "user not found in this account")
    # a demoted root loses root at once
    assert assert_json(await set_role(c, root, {"email": b.email, "role": 0})) is True
    assert (await me(c, b.token))["role"] == 0
    assert (await stored_user(server, DEV_EMAIL)) is not None


async def test_setrole_bad_input(server: Server) -> None:
    c = server.client
    a1, a2, _ = await accounts_ab(c)
    before = await snapshot(server)
    for role in ("5", 1.5, True, None, [1], {"r": 1}):
        r = await set_role(c, a1.token, {"email": a2.email, "role": role})
        assert_error(r, 400, startswith='missing field "role"' if role is None else 'invalid field "role"')
    for role in (-1, 101, 2**40):
        r = await set_role(c, a1.token, {"email": a2.email, "role": role})
        assert_error(r, 400, startswith=f"invalid role {role}")
    assert_error(await set_role(c, a1.token, {"role": 0}), 400, "invalid email")
    assert_error(await set_role(c, a1.token, {"email": "nope", "role": 0}), 400, "invalid email")
    assert_error(await set_role(c, a1.token, {"email": a2.email, "role": 0, "accountId": 3}), 400)
    assert_error(await set_role(c, a1.token, "x"), 400, startswith="invalid JSON body")
    assert await snapshot(server) == before


async def test_setrole_refuses_other_apps_forged_and_root_tokens(server: Server) -> None:
    c = server.client
    a1, a2, _ = await accounts_ab(c)
    pk, foreign = await other_app(server)
    before = await snapshot(server)
    body = {"email": a2.email, "role": 10}
    assert_error(await set_role(c, foreign, body), 400, startswith="error validating auth key")
    assert_error(await set_role(c, forged(a1.token), body), 400, startswith="error validating auth key")
    assert_error(await set_role(c, server.dev.root_token, body), 400)
    assert_error(await c.post("/setrole", json=body), 401)
    # the dev admin's session on another app's key is refused there too
    async with extra_client(server, pk=pk) as other:
        assert_error(await set_role(other, await admin_token(server), body), 400)
    assert await snapshot(server) == before


# --- GET /account/associations, POST /account/promote ---------------------------------------


async def test_associations_list_the_callers_account(server: Server) -> None:
    c = server.client
    a1, a2, b = await accounts_ab(c)
    for m in (a1, a2, b):
        got = assert_json(await c.get("/account/associations", headers=auth(m.token)))
        assert got == [{"accountId": m.account_id, "role": m.role, "home": True}]
    _, foreign = await other_app(server)
    assert_error(await c.get("/account/associations", headers=auth(foreign)), 400)
    assert_error(await c.get("/account/associations", headers=auth(forged(a1.token))), 400)
    assert_error(await c.get("/account/associations"), 401)


async def test_promote_is_not_served_and_changes_nothing(server: Server) -> None:
    c = server.client
    email = unique_email("promo")
    m = await member(c, email, await register(c, email))
    before = await snapshot(server)
    r = await c.post("/account/promote", headers=auth(m.token))
    assert_error(r, 501, startswith="account promotion belongs to the hosted offering")
    r = await c.post("/account/promote", headers=auth(await admin_token(server)))
    assert r.status_code == 501
    assert_error(await c.post("/account/promote"), 401)
    assert_error(await c.post("/account/promote", headers=auth(forged(m.token))), 400)
    assert await snapshot(server) == before
