"""SMTP mailer (Mailpit in development, any relay in production)."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

from sbserver.backends.mail.base import Email, Mailer
from sbserver.errors import StoreError


class SMTPMailer(Mailer):
    def __init__(self, host: str, port: int, user: str = "", password: str = "") -> None:
        self.host, self.port, self.user, self.password = host, port, user, password

    def _send(self, email: Email) -> None:
        msg = EmailMessage()
        msg["From"] = f"{email.from_name} <{email.from_email}>" if email.from_name else email.from_email
        msg["To"] = f"{email.to_name} <{email.to}>" if email.to_name else email.to
        msg["Subject"] = email.subject
        if email.reply_to:
            msg["Reply-To"] = email.reply_to
        msg.set_content(email.text or email.html)
        if email.html:
            msg.add_alternative(email.html, subtype="html")
        with smtplib.SMTP(self.host, self.port, timeout=15) as smtp:
            if self.user:
                smtp.starttls()
                smtp.login(self.user, self.password)
            smtp.send_message(msg)

    async def send(self, email: Email) -> None:
        try:
            await asyncio.to_thread(self._send, email)
        except (OSError, smtplib.SMTPException) as exc:
            raise StoreError(f"unable to send email: {exc}") from exc
