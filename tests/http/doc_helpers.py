"""Helpers for the document tests: unique collection names, creating documents, filters.

Collection names are unique per test (``unique_col``): the PostgreSQL database lives for a whole
pytest-xdist worker session and the dev app is shared by every test of that worker.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import orjson

from tests.http.conftest import Server
from tests.http.helpers import assert_json, auth

Doc = dict[str, Any]


def unique_col(prefix: str = "tasks", suffix: str = "") -> str:
    """``<prefix><8 hex><suffix>``: the suffix stays last, so permission digits still apply."""
    return f"{prefix}{uuid.uuid4().hex[:8]}{suffix}"


def root(server: Server) -> dict[str, str]:
    return auth(server.dev.root_token)


def b64(clauses: Any) -> str:
    """The ``x`` parameter of a bulk delete, as the JS client builds it (standard, padded)."""
    return base64.b64encode(orjson.dumps(clauses)).decode()


async def create(c: httpx.AsyncClient, token: str, col: str, body: Doc) -> Doc:
    doc = assert_json(await c.post(f"/db/{col}", json=body, headers=auth(token)), 201)
    assert isinstance(doc, dict)
    return doc


async def sudo_get(server: Server, col: str, doc_id: str) -> Doc | None:
    """The stored document as root sees it, or None when it does not exist."""
    r = await server.client.get(f"/sudo/{col}/{doc_id}", headers=root(server))
    if r.status_code == 404:
        return None
    doc = assert_json(r)
    assert isinstance(doc, dict)
    return doc


async def list_ids(c: httpx.AsyncClient, col: str, headers: dict[str, str], route: str = "/db") -> list[str]:
    page = assert_json(await c.get(f"{route}/{col}", params={"size": "1000"}, headers=headers))
    return [d["id"] for d in page["results"]]


async def query(c: httpx.AsyncClient, token: str, col: str, clauses: Any, **params: str) -> Doc:
    page = assert_json(await c.post(f"/query/{col}", json=clauses, params=params, headers=auth(token)))
    assert isinstance(page, dict)
    return page


def strip_system(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if k not in ("id", "accountId")}


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values with the same types: ``1`` is not ``1.0`` nor ``true``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and str(a) == str(b)  # -0.0 vs 0.0 too
    return bool(a == b)
