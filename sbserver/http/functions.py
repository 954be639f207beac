"""Function routes: /fn (list), /fn/add, /fn/update, /fn/del|delete/{name}, /fn/info/{name},
/fn/exec/{name} (user session), /fn/sudoexec/{name} (root) and /fn/limits (root: the app's
limits on its functions, see services/fnlimits.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sbserver.errors import BadRequest, InvalidJSON
from sbserver.http.request import json_body, parse_json, root_of, services, user_of
from sbserver.http.responses import ok


def _empty() -> Response:
    return Response(b"", status_code=200)


def _text_fields(body: Any, *names: str) -> dict[str, str | None]:
    if not isinstance(body, dict):
        raise InvalidJSON("invalid JSON body: expected an object")
    out: dict[str, str | None] = {}
    for name in names:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f'invalid field "{name}": expected a string')
        out[name] = value
    return out


async def add(request: Request) -> Response:
    base, _ = await root_of(request)
    f = _text_fields(await json_body(request), "name", "trigger", "code", "secrets")
    await services(request).functions.add(
        base, f["name"] or "", f["trigger"] or "", f["code"] or "", f["secrets"] or ""
    )
    return _empty()


async def update(request: Request) -> Response:
    base, _ = await root_of(request)
    f = _text_fields(await json_body(request), "id", "name", "trigger", "code", "secrets")
    await services(request).functions.update(base, f["id"] or "", f["trigger"] or "", f["code"] or "", f["secrets"])
    return _empty()


async def delete(request: Request) -> Response:
    base, _ = await root_of(request)
    await services(request).functions.delete(base, request.path_params["name"])
    return _empty()


async def info(request: Request) -> Response:
    base, _ = await root_of(request)
    return ok(await services(request).functions.info(base, request.path_params["name"]))


async def list_functions(request: Request) -> Response:
    base, _ = await root_of(request)
    return ok(await services(request).functions.all(base))


def _canonical(name: str) -> str:
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


async def web_arguments(request: Request) -> list[Any]:
    """``handle(body, qs, headers)``: body by media type, qs and headers as arrays of strings."""
    qs: dict[str, list[str]] = {}
    for k, v in request.query_params.multi_items():
        qs.setdefault(k, []).append(v)
    headers: dict[str, list[str]] = {}
    for k, v in request.headers.items():
        headers.setdefault(_canonical(k), []).append(v)
    raw = await request.body()
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body: Any
    if media == "application/json":
        try:
            body = parse_json(raw) if raw.strip() else None
        except InvalidJSON as exc:
            raise BadRequest(f"error preparing argument: {exc.message}") from exc
    elif media == "application/x-www-form-urlencoded":
        joined: dict[str, list[str]] = {}
        for k, v in [*request.query_params.multi_items(), *parse_qsl(raw.decode("utf-8", "replace"), True)]:
            joined.setdefault(k, []).append(v)
        body = {k: ", ".join(v) for k, v in joined.items()}
    else:
        body = raw.decode("utf-8", "replace") if raw else None
    return [body, qs, headers]


async def exec_function(request: Request) -> Response:
    base, ident = await user_of(request)
    args = await web_arguments(request)
    await services(request).functions.exec_web(base, ident, request.path_params["name"], args)
    return _empty()


async def sudo_exec(request: Request) -> Response:
    base, ident = await root_of(request)
    args = await web_arguments(request)
    await services(request).functions.exec_web(base, ident, request.path_params["name"], args)
    return _empty()


async def limits(request: Request) -> Response:
    """GET: the app's limits in force and its own; POST: change its own (null: the server's)."""
    base, _ = await root_of(request)
    svc = services(request).functions
    if request.method != "GET":
        await svc.set_limits(base, await json_body(request))
    return ok({"limits": (await svc.limits(base)).public(), "own": await svc.own_limits(base)})


ANY = ["GET", "POST", "PUT", "DELETE", "PATCH"]

routes = [
    Route("/fn", list_functions, methods=["GET"]),
    Route("/fn/add", add, methods=["POST", "PUT"]),
    Route("/fn/update", update, methods=["POST", "PUT"]),
    Route("/fn/del/{name}", delete, methods=ANY),
    Route("/fn/delete/{name}", delete, methods=ANY),
    Route("/fn/info/{name}", info, methods=["GET"]),
    Route("/fn/limits", limits, methods=["GET", "POST", "PUT"]),
    Route("/fn/exec/{name}", exec_function, methods=ANY),
    Route("/fn/sudoexec/{name}", sudo_exec, methods=ANY),
]
