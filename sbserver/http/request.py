"""Reading requests: JSON bodies, fixed-shape fields, credentials."""

from __future__ import annotations

import json
import math
import re
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


MAX_DEPTH = 128
_LONG_INT = re.compile(rb"\d{19,}")
INT64 = (-(2**63), 2**64 - 1)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _checked_int(text: str) -> int:
    value = int(text)
    if not INT64[0] <= value <= INT64[1]:
        raise ValueError(f"the integer {text[:40]} does not fit in 64 bits")
    return value


def _checked_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


_STRICT = json.JSONDecoder(parse_int=_checked_int, parse_float=_checked_float, parse_constant=_refuse_constant)


def _depth_ok(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True


def parse_json(raw: bytes) -> Any:
    """The first JSON value of a body (trailing bytes are ignored, as upstream does).

    Refused with 400: invalid JSON, NaN/Infinity, integers past 64 bits (orjson alone would
    silently turn them into floats), numbers out of range, nesting deeper than ``MAX_DEPTH``.
    """
    if not raw.strip():
        raise InvalidJSON("invalid JSON body: EOF (the body is empty)")
    value: Any
    try:
        if _LONG_INT.search(raw):
            raise ValueError("long integers: take the strict path")
        value = orjson.loads(raw)
    except (orjson.JSONDecodeError, ValueError) as first:
        if "recursion" in str(first).lower():
            raise InvalidJSON(f"invalid JSON body: nested deeper than {MAX_DEPTH} levels") from first
        try:
            value = _STRICT.raw_decode(raw.decode("utf-8").lstrip())[0]
        except RecursionError as exc:
            raise InvalidJSON(f"invalid JSON body: nested deeper than {MAX_DEPTH} levels") from exc
        except (ValueError, UnicodeDecodeError) as exc:
            reason = exc if isinstance(first, ValueError) and not isinstance(first, orjson.JSONDecodeError) else first
            raise InvalidJSON(f"invalid JSON body: {reason}") from exc
        try:
            orjson.dumps(value)
        except TypeError as exc:  # lone surrogates and other text JSON allows but UTF-8 cannot hold
            raise InvalidJSON(f"invalid JSON body: {exc}") from exc
    if (raw.count(b"[") + raw.count(b"{") > MAX_DEPTH) and not _depth_ok(value):
        raise InvalidJSON(f"invalid JSON body: nested deeper than {MAX_DEPTH} levels")
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


REQUEST_ID = "sb.request_id"  # the scope key the RequestId middleware fills


def request_id(request: Request) -> str:
    """This request's id (the ``X-Request-Id`` it came with, or one made for it)."""
    value = request.scope.get(REQUEST_ID, "")
    return value if isinstance(value, str) else ""


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
