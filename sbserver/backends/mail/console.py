"""Development mailer: prints each email to standard output instead of sending it."""

from __future__ import annotations

import sys

from sbserver.backends.mail.base import Email, Mailer


class ConsoleMailer(Mailer):
    """``show_body`` off (prod): only the envelope is printed, never the codes and links a body holds.

    ``sent`` keeps the last 100 emails delivered (tests read them)."""

    def __init__(self, show_body: bool = True) -> None:
        self.show_body = show_body
        self.sent: list[Email] = []

    async def deliver(self, email: Email) -> None:
        self.sent.append(email)
        del self.sent[:-100]
        body = (
            email.text or email.html
            if self.show_body
            else "(body not shown outside dev mode: set MAIL_PROVIDER=smtp to deliver mail)"
        )
        sender = f"{email.from_name} <{email.from_email}>" if email.from_name else email.from_email
        reply = f"Reply-To: {email.reply_to}\n" if email.reply_to else ""
        sys.stdout.write(
            f"\n--- email to {email.to} ---\nFrom: {sender}\n{reply}"
            f"Subject: {email.subject}\n\n{body}\n--- end of email ---\n"
        )
        sys.stdout.flush()
