"""Outgoing mail: printed to the terminal in development, SMTP otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbserver.backends.mail.base import Email, Mailer, check, check_address, html_of, text_of

if TYPE_CHECKING:
    from sbserver.settings import Settings


def create_mailer(settings: Settings) -> Mailer:
    if settings.mail_provider in ("smtp", "local"):
        if not settings.smtp_host:
            raise SystemExit(f"MAIL_PROVIDER={settings.mail_provider} needs SB_SMTP_HOST: the server to send through")
        from sbserver.backends.mail.smtp import SMTPMailer

        return SMTPMailer(
            settings.smtp_host, settings.smtp_port, settings.smtp_user, settings.smtp_password, settings.smtp_tls
        )
    from sbserver.backends.mail.console import ConsoleMailer

    # outside dev mode the terminal is a log others read: it never shows a mail's body (codes, links)
    return ConsoleMailer(show_body=settings.is_dev)


__all__ = ["Email", "Mailer", "check", "check_address", "create_mailer", "html_of", "text_of"]
