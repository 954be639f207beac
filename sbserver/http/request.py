"""Reading requests: JSON bodies, fixed-shape fields, credentials."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.requests import Request

from sbserver.errors import BadRequest, InvalidJSON, Unauthorized
from sbserver.services.container import Services
from sbserver.services.identity import DEV_ROOT_ALIAS
from sbserver.types import Base, Identity


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def parse_json(raw: bytes) -> Any:
    """The first JSON value of a body (trailing bytes are ignored, as upstream does)."""
    if not raw.strip():
        raise InvalidJSON("invalid JSON body: EOF (the body is empty)")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as first:
        try:
            value = json.JSONDecoder().raw_decode(raw.decode("utf-8").lstrip())[0]
        except (ValueError, UnicodeDecodeError):
            raise InvalidJSON(f"invalid JSON body: {first}") from first
        try:
            orjson.dumps(value)
        except TypeError as exc:  # integers past 64 bits, NaN, Infinity
            raise InvalidJSON(f"invalid JSON body: {exc}") from exc
        return value


async def json_body(request: Request) -> Any:
    return parse_json(await request.body())


def fields(body: Any, *names: str) -> list[str]:
    """String fields of a fixed-shape object, matched case-insensitively; missing -> ''."""
    if not isinstance(body, dict):
        raise InvalidJSON("invalid JSON body: expected an object")
    lowered: dict[str, Any] | None = None
    out: list[str] = []
    for name in names:
        if name in body:
            value = body[name]
        else:
            if lowered is None:
                lowered = {str(k).lower(): v for k, v in body.items()}
            value = lowered.get(name.lower())
        if value is None:
            out.append("")
        elif isinstance(value, str):
            out.append(value)
        else:
            raise BadRequest(f'invalid field "{name}": expected a string, got {type(value).__name__}')
    return out


def public_key(request: Request) -> str:
    return request.headers.get("sb-public-key") or request.query_params.get("sbpk") or request.cookies.get("pk") or ""


async def base_of(request: Request) -> Base:
    pk = public_key(request)
    if not pk:
        raise Unauthorized("invalid StaticBackend public key")
    return await services(request).tenancy.base(pk)


def bearer(request: Request, cookie: bool = False) -> str:
    value = request.headers.get("authorization", "")
    if not value and cookie:
        value = request.cookies.get("token", "")
        if value:
            return value
    if not value:
        raise Unauthorized("missing authorization HTTP header")
    if not value.startswith("Bearer "):
        raise BadRequest(f"invalid authorization HTTP header, should be: Bearer your-token, but we got {value[:80]}")
    return value[7:].strip()


async def user_of(request: Request) -> tuple[Base, Identity]:
    base = await base_of(request)
    return base, await services(request).identities.session(base, bearer(request))


async def root_of(request: Request) -> tuple[Base, Identity]:
    base = await base_of(request)
    return base, await services(request).identities.root(base, bearer(request, cookie=True))


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


async def user_or_root_of(request: Request) -> tuple[Base, Identity]:
    """Routes that take either credential: a root token has two '|' (or is the dev alias)."""
    base = await base_of(request)
    token = bearer(request, cookie=True)
    ids = services(request).identities
    if token.count("|") == 2 or token == DEV_ROOT_ALIAS:
        return base, await ids.root(base, token)
    return base, await ids.session(base, token)
