"""Extras (spec 02 §8): ``/extra/resizeimg`` (user: an image scaled to a width, stored as a file),
``/extra/htmltox`` (user: a page rendered to PDF or PNG, stored as a file) and ``/extra/sms``
(root: one text message through Twilio). The contracts are in the services: ``images``,
``render`` and ``sms``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sbserver.errors import BadRequest, InvalidJSON
from sbserver.http.request import fields, json_body, root_of, services, user_or_root_of
from sbserver.http.responses import boolean, ok
from sbserver.http.storage import read_upload


def _request_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def resize_image(request: Request) -> Response:
    base, caller = await user_or_root_of(request)
    images = services(request).images
    upload = await read_upload(request, images.max_bytes, images.too_large)
    record = await images.resize(base, caller, upload, _request_url(request))
    return ok({"id": record.id, "url": record.url})


def _flag(body: dict[str, Any], name: str) -> bool:
    """A boolean field, its name matched case-insensitively (as upstream's JSON decoding does)."""
    matches = [v for k, v in body.items() if k == name] or [
        v for k, v in body.items() if str(k).lower() == name.lower()
    ]
    value = matches[0] if matches else False
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f'invalid field "{name}": expected true or false, got {type(value).__name__}')
    return value


async def html_to_x(request: Request) -> Response:
    base, caller = await user_or_root_of(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise InvalidJSON('invalid JSON body: expected an object such as {"url": "https://...", "toPDF": true}')
    (url,) = fields(body, "url")
    to_pdf, fullpage = _flag(body, "toPDF"), _flag(body, "fullpage")
    result = await services(request).render.htmltox(base, caller, url, to_pdf, fullpage, _request_url(request))
    return ok(result)


async def send_sms(request: Request) -> Response:
    await root_of(request)
    sid, token, to, sender, text = fields(
        await json_body(request), "accountSID", "authToken", "toNumber", "fromNumber", "body"
    )
    await services(request).sms.send(sid, token, to, sender, text)
    return boolean(True)


routes = [
    Route("/extra/resizeimg", resize_image, methods=["POST"]),
    Route("/extra/htmltox", html_to_x, methods=["POST"]),
    Route("/extra/sms", send_sms, methods=["POST"]),
]
