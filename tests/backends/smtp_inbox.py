"""A real SMTP server for the mail tests: aiosmtpd on a local port, in its own thread.

``smtp_server(...)`` yields an ``Inbox`` whose ``messages`` holds what the server accepted: the
envelope, the parsed message, whether the session was over TLS and who authenticated. A mailer's
``send`` returns only once the server has answered DATA, by which time the message is recorded.
``self_signed()`` makes a certificate for ``localhost`` / ``127.0.0.1`` with ``cryptography``.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

USER, PASSWORD = "mailer", "s3cret-pass"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    tls: bool
    login: str


@dataclass
class Inbox:
    port: int = 0
    messages: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        message = cast(EmailMessage, message_from_bytes(raw, policy=default))
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else ""
        # STARTTLS records the session's TLS; implicit TLS shows on the transport only
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message, raw, tls, login))
        return "250 OK"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    good = isinstance(data, LoginPassword) and data.login == USER.encode() and data.password == PASSWORD.encode()
    return AuthResult(success=good, handled=False, auth_data=data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Certificate:
    cert_pem: bytes
    key_pem: bytes

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as d:
            cert, key = Path(d, "cert.pem"), Path(d, "key.pem")
            cert.write_bytes(self.cert_pem)
            key.write_bytes(self.key_pem)
            ctx.load_cert_chain(cert, key)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A context that trusts this certificate (and verifies host names)."""
        return ssl.create_default_context(cadata=self.cert_pem.decode())


def self_signed() -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Certificate(cert.public_bytes(serialization.Encoding.PEM), key_pem)


@contextmanager
def smtp_server(
    *,
    auth: bool = False,
    starttls: Certificate | None = None,
    implicit_tls: Certificate | None = None,
) -> Iterator[Inbox]:
    """``auth``: AUTH required (``USER``/``PASSWORD``; over TLS when the server has TLS);
    ``starttls``: STARTTLS offered and required; ``implicit_tls``: TLS from the first byte."""
    inbox = Inbox(free_port())
    kwargs: dict[str, Any] = {}
    if auth:
        kwargs.update(authenticator=_authenticator, auth_required=True, auth_require_tls=starttls is not None)
    if starttls is not None:
        kwargs.update(tls_context=starttls.server_context(), require_starttls=True)
    if implicit_tls is not None:
        kwargs.update(ssl_context=implicit_tls.server_context(), server_hostname="localhost")
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port, **kwargs)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
