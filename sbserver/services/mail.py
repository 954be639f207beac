"""An app's outgoing mail: ``/sudo/sendmail`` and the functions' ``sendMail``.

Each email is checked (400/413 with the reason, nothing sent), then counts against the app's
limit (``mail_per_app`` per ``mail_window_seconds``, 429 past it), is delivered through the
configured mailer, and is added to the app's monthly counter (spec 01 §1.2). A delivery that
fails gives its place in the limit back; a counter that cannot be written is only logged, as
upstream does: the email has left.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sbserver.backends.mail import Email, Mailer, check, html_of, text_of
from sbserver.backends.storage import Store
from sbserver.errors import SBError
from sbserver.services.limits import Limits, Rule
from sbserver.settings import Settings
from sbserver.types import Base

log = logging.getLogger("sbserver.mail")


def this_month() -> str:
    """The counter's month: ``YYYY-MM`` in UTC."""
    return datetime.now(UTC).strftime("%Y-%m")


def bodies(body: str, html: str, text: str) -> tuple[str, str]:
    """(HTML, text) by spec 02 §7.1's rules: ``body`` wins (as HTML, its text stripped of tags);
    an HTML body alone gets its stripped text; a text body alone is shown as HTML too."""
    if body:
        return body, text_of(body)
    if html and not text:
        return html, text_of(html)
    if text and not html:
        return html_of(text), text
    return html, text


class MailService:
    def __init__(self, store: Store, mailer: Mailer, limits: Limits, settings: Settings) -> None:
        self.store = store
        self.mailer = mailer
        self.limits = limits
        self.settings = settings
        self.rule = Rule("mail", settings.mail_per_app, settings.mail_window_seconds)

    def compose(
        self,
        to: str,
        subject: str,
        body: str = "",
        html: str = "",
        text: str = "",
        from_email: str = "",
        from_name: str = "",
        to_name: str = "",
        reply_to: str = "",
    ) -> Email:
        """An app's email; the sender defaults to the server's (``FROM_EMAIL``, ``FROM_NAME``)."""
        html, text = bodies(body, html, text)
        # values are passed as given: ``check`` refuses a line break anywhere, even a trailing one
        return Email(
            to=to,
            subject=subject,
            html=html,
            text=text,
            from_email=from_email or self.settings.from_email,
            from_name=from_name if from_email else (from_name or self.settings.from_name),
            to_name=to_name,
            reply_to=reply_to,
        )

    async def send(self, base: Base, email: Email) -> None:
        """Check, count against the app's limit, deliver, then add to the monthly counter."""
        email = check(email)
        refusal = "too many emails sent by this app: try again in {wait} (SB_MAIL_PER_APP)"
        counted = await self.limits.reserve(self.rule, base.name, "all", refusal)
        try:
            await self.mailer.send(email)
        except Exception:
            if counted:
                await self.limits.refund(self.rule, base.name, "all")
            raise
        try:
            await self.store.count_email(base, this_month())
        except SBError as exc:
            log.warning("email sent for app %s but not counted: %s", base.name, exc.message)

    async def sent_this_month(self, base: Base) -> int:
        return await self.store.emails_sent(base, this_month())
