"""``POST /sudo/sendmail`` (spec 02 §7.1): an app's root sends an email.

The path is never a collection: every other method answers 501, with or without a token.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sbserver.errors import NotImplementedYet
from sbserver.http.request import fields, json_body, root_of, services
from sbserver.http.responses import boolean

METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]
FIELDS = ("from", "fromName", "to", "toName", "subject", "replyTo", "htmlBody", "textBody", "body")


async def send_mail(request: Request) -> Response:
    if request.method != "POST":
        raise NotImplementedYet(f"method not implemented: {request.method} /sudo/sendmail (send with POST)")
    base, _ = await root_of(request)
    from_email, from_name, to, to_name, subject, reply_to, html, text, body = fields(await json_body(request), *FIELDS)
    mail = services(request).mail
    email = mail.compose(to, subject, body, html, text, from_email, from_name, to_name, reply_to)
    await mail.send(base, email)
    return boolean(True)


routes = [
    Route("/sudo/sendmail", send_mail, methods=METHODS),
    Route("/sudo/sendmail/", send_mail, methods=METHODS),
]
