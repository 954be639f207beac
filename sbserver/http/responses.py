"""Responses in StaticBackend's wire format.

Success: ``Content-Type: application/json`` exactly (no charset), compact JSON, no newline.
Error: ``text/plain; charset=utf-8``, ``X-Content-Type-Options: nosniff``, one line + newline.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

_OPTS = orjson.OPT_NON_STR_KEYS


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=_OPTS)


TRUE = b"true"
FALSE = b"false"


def ok(value: Any, status: int = 200) -> Response:
    return JSON(value, status_code=status)


def boolean(value: bool) -> Response:
    return Response(TRUE if value else FALSE, media_type="application/json")


def error(message: str, status: int, request_id: str = "") -> Response:
    line = message.replace("\n", " ")
    headers = {"X-Content-Type-Options": "nosniff"}
    if request_id:
        headers["X-Request-Id"] = request_id
    return Response(line + "\n", status_code=status, media_type="text/plain", headers=headers)
