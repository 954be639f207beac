"""The mail contract: an ``Email``, the checks every one passes, and the MIME message built from it.

``Mailer.send`` checks the email first (``check``) and only then hands it to the backend's
``deliver``: a refused email never reaches a terminal or a server. Refusals are 400 with the
reason (413 for a body over ``MAX_BODY_BYTES``); a backend that cannot deliver raises
``StoreError``.
"""

from __future__ import annotations

import html
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from sbserver.errors import BadRequest, PayloadTooLarge

MAX_BODY_BYTES = 1024 * 1024  # HTML and text parts together, UTF-8
MAX_SUBJECT = 500
MAX_NAME = 200
MAX_ADDRESS = 254  # RFC 5321's path limit, less the angle brackets

# ASCII addresses only: local part of atext and dots, a domain of letters, digits and hyphens
# (punycode for international names). Single-label domains (``localhost``) are accepted.
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)
_BREAK = re.compile(r"<\s*(br|/p|/div|/h[1-6]|/li|/tr)\b[^>]*>", re.IGNORECASE)


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    html: str
    text: str = ""
    from_email: str = ""
    from_name: str = ""
    to_name: str = ""
    reply_to: str = ""


def text_of(markup: str) -> str:
    """The readable text of an HTML body: tags removed (line breaks kept), entities decoded."""
    text = html.unescape(_TAG.sub("", _BREAK.sub("\n", markup)))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_of(text: str) -> str:
    """An HTML body showing ``text`` as it is (escaped, line breaks kept)."""
    return "<p>" + html.escape(text).replace("\n", "<br>\n") + "</p>"


def _header(field: str, value: str, limit: int) -> str:
    if "\r" in value or "\n" in value:
        raise BadRequest(f"invalid {field}: it contains a line break (CR or LF), which would start a new mail header")
    if _CONTROL.search(value):
        raise BadRequest(f"invalid {field}: it contains a control character")
    if len(value) > limit:
        raise BadRequest(f"invalid {field}: {len(value)} characters (at most {limit})")
    return value.strip()


def check_address(field: str, value: str, required: bool = True) -> str:
    """``value`` as a bare address (``user@example.com``), or 400 with the reason."""
    value = _header(field, value, MAX_ADDRESS)
    if not value:
        if required:
            raise BadRequest(f"missing {field}: give an email address")
        return ""
    local, at, domain = value.rpartition("@")
    if (
        not at
        or len(local) > 64
        or not _LOCAL.fullmatch(local)
        or not all(_LABEL.fullmatch(label) for label in domain.split("."))
    ):
        raise BadRequest(f"invalid {field}: {value[:100]!r} is not an email address (like name@example.com)")
    return value


def check(email: Email) -> Email:
    """The email as it will be sent, or 400/413 with the first thing wrong in it."""
    to = check_address("to", email.to)
    from_email = check_address("from", email.from_email)
    reply_to = check_address("replyTo", email.reply_to, required=False)
    subject = _header("subject", email.subject, MAX_SUBJECT)
    from_name = _header("fromName", email.from_name, MAX_NAME)
    to_name = _header("toName", email.to_name, MAX_NAME)
    if not email.html.strip() and not email.text.strip():
        raise BadRequest("empty email: give body, htmlBody or textBody")
    size = len(email.html.encode("utf-8", "replace")) + len(email.text.encode("utf-8", "replace"))
    if size > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"email body is {size} bytes (at most {MAX_BODY_BYTES} for HTML and text together)")
    text = email.text if email.text.strip() else text_of(email.html)
    return replace(
        email,
        to=to,
        from_email=from_email,
        reply_to=reply_to,
        subject=subject,
        from_name=from_name,
        to_name=to_name,
        text=text,
    )


def _address(name: str, addr: str) -> Address:
    local, _, domain = addr.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def build_message(email: Email) -> EmailMessage:
    """The MIME message of a checked email: text, plus an HTML alternative when there is one."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = _address(email.from_name, email.from_email)
    msg["To"] = _address(email.to_name, email.to)
    if email.reply_to:
        msg["Reply-To"] = _address("", email.reply_to)
    msg["Subject"] = email.subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=email.from_email.rpartition("@")[2])
    msg.set_content(email.text or text_of(email.html))
    if email.html.strip():
        msg.add_alternative(email.html, subtype="html")
    return msg


class Mailer(ABC):
    # the sender of an email that names none (FROM_EMAIL, FROM_NAME; set by ``create_mailer``)
    default_from: str = ""
    default_name: str = ""

    async def send(self, email: Email) -> None:
        """Check ``email`` (400/413 with the reason, nothing sent), then deliver it."""
        if not email.from_email and self.default_from:
            email = replace(email, from_email=self.default_from, from_name=email.from_name or self.default_name)
        await self.deliver(check(email))

    @abstractmethod
    async def deliver(self, email: Email) -> None:
        """Deliver one checked email or raise ``StoreError`` with the reason."""
