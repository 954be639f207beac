"""SMTP mailer (Mailpit in development, any relay in production), with aiosmtplib.

``tls``: ``tls`` connects with implicit TLS (port 465), ``starttls`` requires STARTTLS, ``none``
sends in clear, ``auto`` uses implicit TLS on port 465 and otherwise STARTTLS whenever the server
offers it (required when a user is set: credentials never travel in clear under ``auto``).
Certificates are verified (``tls_context`` replaces the system's trust, e.g. a private CA).
"""

from __future__ import annotations

import ssl

import aiosmtplib

from sbserver.backends.mail.base import Email, Mailer, build_message
from sbserver.errors import StoreError

TLS_MODES = ("auto", "starttls", "tls", "none")
TIMEOUT = 15.0  # seconds for the whole exchange


class SMTPMailer(Mailer):
    def __init__(
        self,
        host: str,
        port: int,
        user: str = "",
        password: str = "",
        tls: str = "auto",
        tls_context: ssl.SSLContext | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        if tls not in TLS_MODES:
            raise ValueError(f"unknown SMTP TLS mode {tls!r}: use one of {', '.join(TLS_MODES)}")
        self.host, self.port, self.user, self.password = host, port, user, password
        self.tls, self.tls_context, self.timeout = tls, tls_context, timeout

    def _tls_options(self) -> tuple[bool, bool | None]:
        """(implicit TLS, STARTTLS: True required, None when offered, False never)."""
        mode = self.tls
        if mode == "auto":
            if self.port == 465:
                return True, False
            return False, True if self.user else None
        return mode == "tls", {"starttls": True, "tls": False, "none": False}[mode]

    async def deliver(self, email: Email) -> None:
        implicit, start_tls = self._tls_options()
        try:
            await aiosmtplib.send(
                build_message(email),
                sender=email.from_email,
                recipients=[email.to],
                hostname=self.host,
                port=self.port,
                username=self.user or None,
                password=self.password or None,
                use_tls=implicit,
                start_tls=start_tls,
                tls_context=self.tls_context,
                timeout=self.timeout,
            )
        except (OSError, aiosmtplib.SMTPException, ssl.SSLError) as exc:
            raise StoreError(f"unable to send email through {self.host}:{self.port}: {exc}") from exc
