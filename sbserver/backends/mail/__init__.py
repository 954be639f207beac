"""Outgoing mail: printed to the terminal in development, SMTP otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbserver.backends.mail.base import Email, Mailer

if TYPE_CHECKING:
    from sbserver.settings import Settings


def create_mailer(settings: Settings) -> Mailer:
    if settings.mail_provider in ("smtp", "local") and settings.smtp_host:
        from sbserver.backends.mail.smtp import SMTPMailer

        return SMTPMailer(settings.smtp_host, settings.smtp_port, settings.smtp_user, settings.smtp_password)
    from sbserver.backends.mail.console import ConsoleMailer

    return ConsoleMailer()


__all__ = ["Email", "Mailer", "create_mailer"]
