"""Users and accounts: /register, /login, /me, passwords, magic links, account members, roles."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sbserver.errors import BadRequest, NotImplementedYet
from sbserver.http.request import base_of, client_address, fields, json_body, root_of, services, user_of
from sbserver.http.responses import boolean, ok


async def register(request: Request) -> Response:
    base = await base_of(request)
    email, password = fields(await json_body(request), "email", "password")
    return ok(await services(request).accounts.register(base, email, password, client_address(request)))


async def login(request: Request) -> Response:
    base = await base_of(request)
    email, password = fields(await json_body(request), "email", "password")
    return ok(await services(request).accounts.login(base, email, password, client_address(request)))


async def magic_link(request: Request) -> Response:
    base = await base_of(request)
    svc = services(request).accounts
    if request.method == "GET":
        q = request.query_params
        return ok(await svc.magic_complete(base, q.get("email", ""), q.get("code", "")))
    # fromEmail and fromName are read (clients send them) but never used: the sender is the server's
    _, _, email, subject, body, link = fields(
        await json_body(request), "fromEmail", "fromName", "email", "subject", "body", "link"
    )
    await svc.magic_start(base, email, link, subject, body, client_address(request))
    return boolean(True)


async def email_exists(request: Request) -> Response:
    base = await base_of(request)
    return boolean(await services(request).accounts.email_exists(base, request.query_params.get("e", "")))


async def me(request: Request) -> Response:
    _, ident = await user_of(request)
    return ok(ident.public())


async def reset_code(request: Request) -> Response:
    base, _ = await root_of(request)
    return ok(await services(request).accounts.reset_code(base, request.query_params.get("e", "")))


async def send_reset_code(request: Request) -> Response:
    base = await base_of(request)
    (email,) = fields(await json_body(request), "email")
    await services(request).accounts.send_reset_code(base, email, client_address(request))
    return boolean(True)


async def reset_password(request: Request) -> Response:
    base = await base_of(request)
    email, code, password = fields(await json_body(request), "email", "code", "password")
    return boolean(await services(request).accounts.reset_password(base, email, code, password))


async def change_password(request: Request) -> Response:
    base, ident = await user_of(request)
    email, old, new = fields(await json_body(request), "email", "oldPassword", "newPassword")
    await services(request).accounts.change_password(ident, base, email, old, new)
    return boolean(True)


async def token_for_account(request: Request) -> Response:
    base, _ = await root_of(request)
    account_id = request.path_params.get("account_id", "").strip("/")
    if not account_id:
        raise BadRequest("missing account id: use /sudogettoken/{accountId}")
    return ok(await services(request).accounts.token_for_account(base, account_id))


async def account_users(request: Request) -> Response:
    base, ident = await user_of(request)
    svc = services(request).accounts
    if request.method == "POST":
        email, password = fields(await json_body(request), "email", "password")
        return ok((await svc.add_user(ident, base, email, password)).public())
    return ok([u.public() for u in await svc.list_users(ident, base)])


async def delete_account_user(request: Request) -> Response:
    base, ident = await user_of(request)
    await services(request).accounts.delete_user(ident, base, request.path_params["user_id"])
    return boolean(True)


async def add_db(request: Request) -> Response:
    base, ident = await user_of(request)
    return ok((await services(request).tenancy.add_db(ident, base)).credentials())


async def account_auth(request: Request) -> Response:
    _, ident = await root_of(request)
    return ok(ident.email)


async def change_email(request: Request) -> Response:
    base, ident = await user_of(request)
    email, password = fields(await json_body(request), "email", "password")
    return ok(await services(request).accounts.change_email(ident, base, email, password))


def _role_of(body: dict[str, Any]) -> int:
    role = body.get("role", next((v for k, v in body.items() if str(k).lower() == "role"), None))
    if role is None:
        raise BadRequest('missing field "role": give an integer from 0 to 100')
    if isinstance(role, float) and role.is_integer():
        role = int(role)
    if isinstance(role, bool) or not isinstance(role, int):
        raise BadRequest(f'invalid field "role": expected an integer, got {type(role).__name__}')
    return role


async def set_role(request: Request) -> Response:
    base, ident = await user_of(request)
    body = await json_body(request)
    email, account_id = fields(body, "email", "accountId")
    await services(request).accounts.set_role(ident, base, email, _role_of(body), account_id)
    return boolean(True)


async def account_associations(request: Request) -> Response:
    base, ident = await user_of(request)
    return ok(await services(request).accounts.associations(ident, base))


async def account_promote(request: Request) -> Response:
    await user_of(request)
    raise NotImplementedYet(
        "account promotion belongs to the hosted offering's multi-account membership, which this server "
        "does not have: an account admin or root sets roles with POST /setrole"
    )


async def account_portal(request: Request) -> Response:
    await root_of(request)
    raise NotImplementedYet("billing is not configured on this server")


ANY = ["GET", "POST", "PUT", "DELETE", "PATCH"]

routes = [
    Route("/register", register, methods=["POST"]),
    Route("/login", login, methods=["POST"]),
    Route("/login/magic", magic_link, methods=["GET", "POST"]),
    Route("/email", email_exists, methods=["GET"]),
    Route("/me", me, methods=ANY),
    Route("/password/resetcode", reset_code, methods=ANY),
    Route("/password/send", send_reset_code, methods=["POST"]),
    Route("/password/reset", reset_password, methods=["POST"]),
    Route("/user/changepw", change_password, methods=["POST"]),
    Route("/sudogettoken", token_for_account, methods=ANY),
    Route("/sudogettoken/{account_id:path}", token_for_account, methods=ANY),
    Route("/account/users", account_users, methods=ANY),
    Route("/account/users/{user_id}", delete_account_user, methods=["DELETE"]),
    Route("/account/add-db", add_db, methods=ANY),
    Route("/account/auth", account_auth, methods=ANY),
    Route("/account/portal", account_portal, methods=ANY),
    Route("/me/email", change_email, methods=["POST"]),
    Route("/setrole", set_role, methods=["POST"]),
    Route("/account/associations", account_associations, methods=["GET"]),
    Route("/account/promote", account_promote, methods=["POST"]),
]
