"""Development mailer: prints each email to standard output instead of sending it."""

from __future__ import annotations

import sys

from sbserver.backends.mail.base import Email, Mailer


class ConsoleMailer(Mailer):
    def __init__(self) -> None:
        self.sent: list[Email] = []

    async def send(self, email: Email) -> None:
        self.sent.append(email)
        del self.sent[:-100]
        sys.stdout.write(
            f"\n--- email to {email.to} ---\nFrom: {email.from_name} <{email.from_email}>\n"
            f"Subject: {email.subject}\n\n{email.text or email.html}\n--- end of email ---\n"
        )
        sys.stdout.flush()
