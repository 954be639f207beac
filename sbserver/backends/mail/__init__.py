"""Outgoing mail: printed to the terminal in development, SMTP or Amazon SES otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbserver.backends.mail.base import Email, Mailer, check, check_address, html_of, text_of

if TYPE_CHECKING:
    from sbserver.settings import Settings


def create_mailer(settings: Settings) -> Mailer:
    mailer: Mailer
    if settings.mail_provider == "ses":
        if not settings.ses_region:
            raise SystemExit("MAIL_PROVIDER=ses needs a region: set S3_REGION (or SB_SES_REGION, AWS_REGION)")
        from sbserver.backends.mail.ses import SESMailer

        mailer = SESMailer(settings.ses_region, settings.ses_endpoint)
    elif settings.mail_provider in ("smtp", "local"):
        if not settings.smtp_host:
            raise SystemExit(f"MAIL_PROVIDER={settings.mail_provider} needs SB_SMTP_HOST: the server to send through")
        from sbserver.backends.mail.smtp import SMTPMailer

        mailer = SMTPMailer(
            settings.smtp_host, settings.smtp_port, settings.smtp_user, settings.smtp_password, settings.smtp_tls
        )
    else:
        from sbserver.backends.mail.console import ConsoleMailer

        # outside dev mode the terminal is a log others read: it never shows a mail's body (codes, links)
        mailer = ConsoleMailer(show_body=settings.is_dev)
    mailer.default_from, mailer.default_name = settings.from_email, settings.from_name
    return mailer


__all__ = ["Email", "Mailer", "check", "check_address", "create_mailer", "html_of", "text_of"]
