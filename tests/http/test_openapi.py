"""The OpenAPI document matches the route table both ways, and ``GET /openapi.json`` serves it.

A documented (path, method) must be served by the route Starlette would pick for it (first full
match, as the router does); every route method must be reached by some documented operation. A
route added without documentation, or documentation left for a route that went away, fails here.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
import schemathesis
from starlette.routing import BaseRoute, Match, Mount, Route, WebSocketRoute

from sbserver.app import build_routes
from sbserver.http.openapi import document
from tests.http.helpers import assert_json

METHODS = ("get", "post", "put", "delete", "patch", "head", "options")
_PARAM = re.compile(r"\{([^}]+)\}")


def _concrete(path: str) -> str:
    return _PARAM.sub(lambda m: "sample-" + m.group(1).lower(), path)


def _scope(path: str, method: str, websocket: bool) -> dict[str, Any]:
    kind = "websocket" if websocket else "http"
    return {"type": kind, "path": path, "root_path": "", "method": method.upper(), "path_params": {}}


def _serving(routes: list[BaseRoute], scope: dict[str, Any]) -> BaseRoute | None:
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return route
    return None


def _route_methods(route: BaseRoute) -> set[str]:
    """The methods a route must document: HEAD is implied by GET; no list means any method."""
    if isinstance(route, Route) and route.methods is not None:
        return {m.lower() for m in route.methods} - {"head"}
    if isinstance(route, Mount):
        return {"get"}
    if isinstance(route, WebSocketRoute):
        return {"websocket"}
    return {"any"}


def drift(doc: dict[str, Any], routes: list[BaseRoute]) -> list[str]:
    """Every mismatch between the document and the route table, one line each."""
    problems: list[str] = []
    reached: dict[int, set[str]] = {id(r): set() for r in routes}
    for path, item in doc["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            ws = bool(op.get("x-sb-websocket"))
            route = _serving(routes, _scope(_concrete(path), method, ws))
            if route is None:
                problems.append(f"documented {method.upper()} {path} has no route")
                continue
            reached[id(route)].add("websocket" if ws else method)
    for route in routes:
        want, got = _route_methods(route), reached[id(route)]
        label = getattr(route, "path", repr(route))
        if want == {"any"}:
            if not got:
                problems.append(f"route {label} (any method) is not documented")
            continue
        for method in sorted(want - got):
            problems.append(f"route {method.upper()} {label} is not documented")
    return problems


def test_every_route_is_documented_and_every_documented_path_is_routed() -> None:
    assert drift(document(), build_routes()) == []


def test_drift_is_caught_both_ways() -> None:
    """The check itself: a new route without documentation, and a stale documented path."""

    async def handler(request: Any) -> Any:
        raise AssertionError("never called")

    extra = Route("/brand-new/{thing}", handler, methods=["POST"])
    assert drift(document(), [*build_routes(), extra]) == ["route POST /brand-new/{thing} is not documented"]
    stale = {**document(), "paths": {**document()["paths"], "/gone/{id}": {"get": {"responses": {}}}}}
    assert drift(stale, build_routes()) == ["documented GET /gone/{id} has no route"]
    fewer = [r for r in build_routes() if getattr(r, "path", "") != "/task/{id}/runs"]
    assert drift(document(), fewer) == ["documented GET /task/{id}/runs has no route"]
    no_put = {**document(), "paths": {k: v for k, v in document()["paths"].items() if k != "/inc/{collection}/{id}"}}
    assert sorted(drift(no_put, build_routes())) == [
        "route POST /inc/{col}/{id} is not documented",
        "route PUT /inc/{col}/{id} is not documented",
    ]


def test_every_operation_states_access_security_and_responses() -> None:
    schemes = document()["components"]["securitySchemes"]
    assert schemes["publicKey"] == {"type": "apiKey", "in": "header", "name": "SB-PUBLIC-KEY"}
    assert schemes["sessionToken"]["scheme"] == schemes["rootToken"]["scheme"] == "bearer"
    for path, item in document()["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            where = f"{method.upper()} {path}"
            access = op["x-sb-access"]
            assert access in ("none", "base", "user", "root", "user-or-root"), where
            names = {name for requirement in op["security"] for name in requirement}
            assert ("publicKey" in names) == (access != "none"), where
            assert ("rootToken" in names) == (access in ("root", "user-or-root")), where
            assert ("sessionToken" in names) == (access in ("user", "user-or-root")), where
            assert op["responses"], where
            if access != "none":
                assert "401" in op["responses"], where
            for param in _PARAM.findall(path):
                declared = [
                    p["name"] for p in item.get("parameters", []) + op.get("parameters", []) if p["in"] == "path"
                ]
                assert param in declared, f"{where}: path parameter {param} is not declared"


def test_the_document_loads_as_openapi_3_1() -> None:
    schema = schemathesis.openapi.from_dict(document())
    operations = [op.ok() for op in schema.get_all_operations()]
    count = sum(1 for item in document()["paths"].values() for m in METHODS if m in item)
    assert len(operations) == count
    assert document()["openapi"] == "3.1.0"


@pytest.mark.parametrize("path", ["/openapi.json"])
async def test_the_document_is_served(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path, headers={"SB-PUBLIC-KEY": ""})
    body = assert_json(r)
    assert body == document()
    assert "/db/{collection}/{id}" in body["paths"]
    assert "/account/origins" in body["paths"]
