"""Text messages through Twilio (``/extra/sms``, spec 02 §8.2): the app's root sends one SMS with
its own Twilio credentials, which pass through and are never kept.

One request to Twilio's Messages API: ``POST {SB_TWILIO_API_URL}/2010-04-01/Accounts/{sid}/
Messages.json`` with the form fields ``To``, ``From`` and ``Body`` and HTTP basic auth
``sid:token``. Every field is checked first (400 with the reason): the account SID goes into the
URL's path, so it is letters and digits only; numbers have a phone number's shape (``+`` and
digits, spaces, dots, dashes and brackets; a ``whatsapp:`` prefix is allowed), the sender may also
be an alphanumeric sender ID or a messaging service SID; the body is 1-1600 characters. Twilio
answering past 299 is a 500 ``error returned by Twilio: <its body>`` (cut to 500 characters, one
line), as upstream; so is a network failure.
"""

from __future__ import annotations

import re

import httpx

from sbserver.errors import BadRequest, SBError
from sbserver.settings import Settings

MAX_BODY = 1600  # Twilio's own limit for one message
MAX_ECHO = 500  # characters of Twilio's answer quoted back
TIMEOUT = 15.0
_SID = re.compile(r"[A-Za-z0-9]{2,64}")
_PHONE = re.compile(r"(whatsapp:)?\+?[0-9][0-9 ().-]{2,30}[0-9]")
_SENDER_ID = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")  # alphanumeric sender IDs: 11 characters, a letter


def _control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def check_message(sid: str, token: str, to: str, sender: str, body: str) -> None:
    """Raise ``BadRequest`` naming the first field that cannot go to Twilio as it is."""
    if not sid:
        raise BadRequest('missing accountSID: send your Twilio account SID in "accountSID"')
    if not _SID.fullmatch(sid):
        raise BadRequest(f"invalid accountSID {sid[:40]!r}: a Twilio account SID is letters and digits (AC...)")
    if not token:
        raise BadRequest('missing authToken: send your Twilio auth token in "authToken"')
    if len(token) > 256 or _control(token):
        raise BadRequest("invalid authToken: at most 256 characters, no control characters")
    if not to:
        raise BadRequest('missing toNumber: send the recipient\'s phone number in "toNumber"')
    if not _PHONE.fullmatch(to):
        raise BadRequest(f"invalid toNumber {to[:40]!r}: expected a phone number such as +15551234567")
    if not sender:
        raise BadRequest('missing fromNumber: send your Twilio number in "fromNumber"')
    if not (_PHONE.fullmatch(sender) or _SENDER_ID.fullmatch(sender) or _SID.fullmatch(sender)):
        raise BadRequest(
            f"invalid fromNumber {sender[:40]!r}: expected a phone number such as +15551234567, "
            "an alphanumeric sender ID or a messaging service SID"
        )
    if not body.strip():
        raise BadRequest('missing body: send the message\'s text in "body"')
    if len(body) > MAX_BODY:
        raise BadRequest(f"invalid body: at most {MAX_BODY} characters ({len(body)} sent)")


class SmsService:
    def __init__(self, settings: Settings) -> None:
        self.api_url = settings.twilio_api_url.rstrip("/")

    async def send(self, sid: str, token: str, to: str, sender: str, body: str) -> None:
        """Send one message (module docstring)."""
        check_message(sid, token, to, sender, body)
        url = f"{self.api_url}/2010-04-01/Accounts/{sid}/Messages.json"
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT, trust_env=False) as client:
                response = await client.post(
                    url, data={"To": to, "From": sender, "Body": body}, auth=httpx.BasicAuth(sid, token)
                )
        except httpx.HTTPError as exc:
            raise SBError(f"cannot reach Twilio: {exc.__class__.__name__}: {exc}"[:MAX_ECHO]) from None
        if response.status_code > 299:
            text = " ".join(response.text.split())
            raise SBError(f"error returned by Twilio: {text[:MAX_ECHO]}")
