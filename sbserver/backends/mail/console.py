"""Development mailer: prints each email to standard output instead of sending it."""

from __future__ import annotations

import sys

from sbserver.backends.mail.base import Email, Mailer


class ConsoleMailer(Mailer):
    """``show_body`` off (prod): only the envelope is printed, never the codes and links a body holds."""

    def __init__(self, show_body: bool = True) -> None:
        self.show_body = show_body
        self.sent: list[Email] = []

    async def send(self, email: Email) -> None:
        self.sent.append(email)
        del self.sent[:-100]
        body = (
            email.text or email.html
            if self.show_body
            else "(body not shown outside dev mode: set MAIL_PROVIDER=smtp to deliver mail)"
        )
        sys.stdout.write(
            f"\n--- email to {email.to} ---\nFrom: {email.from_name} <{email.from_email}>\n"
            f"Subject: {email.subject}\n\n{body}\n--- end of email ---\n"
        )
        sys.stdout.flush()
