"""Amazon SES mailer, with boto3: SendRawEmail with the MIME message ``base.build_message`` makes,
so the headers and parts are the ones the SMTP mailer sends, byte for byte.

Credentials come from boto3's chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile,
an instance role) unless given; the region is required; ``endpoint`` replaces SES's (a VPC
endpoint, or moto in the tests). The sender must be an identity SES has verified: SES refuses
others, and every refusal or failure is ``StoreError`` with SES's reason.
"""

from __future__ import annotations

import asyncio
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from sbserver.backends.aws import session
from sbserver.backends.mail.base import Email, Mailer, build_message
from sbserver.errors import StoreError

TIMEOUT = 15  # seconds to connect, and to wait for an answer


class SESMailer(Mailer):
    def __init__(
        self,
        region: str,
        endpoint: str = "",
        access_key: str = "",
        secret_key: str = "",
        timeout: float = TIMEOUT,
    ) -> None:
        self.region, self.endpoint = region, endpoint
        config = Config(
            region_name=region,
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=timeout,
            read_timeout=timeout,
        )
        self.client: Any = session().client(
            "ses",
            endpoint_url=endpoint or None,
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            config=config,
        )

    async def deliver(self, email: Email) -> None:
        raw = build_message(email).as_bytes()
        try:
            await asyncio.to_thread(
                self.client.send_raw_email,
                Source=email.from_email,
                Destinations=[email.to],
                RawMessage={"Data": raw},
            )
        except (ClientError, BotoCoreError) as exc:
            where = self.endpoint or f"SES {self.region}"
            raise StoreError(f"unable to send email through {where}: {exc}") from exc
