"""The mailers: one conformance suite on the console, SMTP and SES mailers, then what only SMTP
does (the MIME message a real server receives, AUTH, STARTTLS and implicit TLS with a self-signed
certificate made here), what only SES does (the same MIME message, SES's refusals), and the
monthly email counter of every store kind.

The SMTP server is aiosmtpd on a local port (tests/backends/smtp_inbox.py); SES is moto's server
(tests/backends/moto_server.py), whose received raw messages the tests read back. Nothing is mocked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_string
from email.message import EmailMessage
from email.policy import default
from email.utils import parseaddr
from typing import Any

import pytest

from sbserver.backends.mail import Email, Mailer, create_mailer
from sbserver.backends.mail.base import MAX_BODY_BYTES, text_of
from sbserver.backends.mail.console import ConsoleMailer
from sbserver.backends.mail.ses import SESMailer
from sbserver.backends.mail.smtp import SMTPMailer
from sbserver.backends.storage import Store
from sbserver.errors import BadRequest, PayloadTooLarge, StoreError
from sbserver.settings import from_env
from sbserver.types import Base
from tests.backends.moto_server import ACCESS_KEY, REGION, SECRET_KEY, Moto
from tests.backends.smtp_inbox import PASSWORD, USER, free_port, self_signed, smtp_server
from tests.backends.test_storage import new_store, store  # noqa: F401  (fixtures)

# the plain-text AUTH server is a test of the client's refusals, not a setup to copy
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


@dataclass
class Delivered:
    """One delivered email, as the conformance suite compares them across mailers."""

    to: str
    from_email: str
    from_name: str
    reply_to: str
    subject: str
    html: str
    text: str


@dataclass
class Box:
    mailer: Mailer
    delivered: Callable[[], list[Delivered]]


def _from_console(mailer: ConsoleMailer) -> list[Delivered]:
    return [Delivered(e.to, e.from_email, e.from_name, e.reply_to, e.subject, e.html, e.text) for e in mailer.sent]


def _part(msg: Any, kind: str) -> str:
    part = msg.get_body(preferencelist=(kind,))
    return "" if part is None or part.get_content_type() != f"text/{kind}" else str(part.get_content())


def _from_message(msg: Any) -> Delivered:
    name, addr = parseaddr(str(msg["From"]))
    return Delivered(
        parseaddr(str(msg["To"]))[1],
        addr,
        name,
        parseaddr(str(msg["Reply-To"] or ""))[1],
        str(msg["Subject"]),
        # MIME ends each part with a line break the sender did not write
        _part(msg, "html").replace("\r\n", "\n").removesuffix("\n"),
        _part(msg, "plain").replace("\r\n", "\n").removesuffix("\n"),
    )


def _from_inbox(inbox: Any) -> list[Delivered]:
    return [_from_message(got.message) for got in inbox.messages]


def ses_mailer(moto: Moto) -> SESMailer:
    """A mailer on moto's SES, whose test senders are verified identities."""
    for sender in ("app@example.com", "noreply@app.example"):
        moto.client("ses").verify_email_identity(EmailAddress=sender)
    return SESMailer(REGION, moto.endpoint, ACCESS_KEY, SECRET_KEY)


def ses_received(moto: Moto, since: int) -> list[EmailMessage]:
    """The messages moto's SES accepted after the first ``since``."""
    return [message_from_string(m["raw_data"], policy=default) for m in moto.sent_emails()[since:]]


@pytest.fixture(params=["console", "smtp", "ses"])
def box(request: pytest.FixtureRequest) -> Iterator[Box]:
    if request.param == "console":
        console = ConsoleMailer()
        yield Box(console, lambda: _from_console(console))
        return
    if request.param == "ses":
        moto: Moto = request.getfixturevalue("moto_ses")
        since = len(moto.sent_emails())
        yield Box(ses_mailer(moto), lambda: [_from_message(m) for m in ses_received(moto, since)])
        return
    with smtp_server() as inbox:
        yield Box(SMTPMailer("127.0.0.1", inbox.port, tls="none"), lambda: _from_inbox(inbox))


def mail(**kw: str) -> Email:
    fields = {
        "to": "reader@example.com",
        "subject": "Hello there",
        "html": "<p>Hi <b>you</b> &amp; welcome</p>",
        "text": "Hi you & welcome",
        "from_email": "app@example.com",
        "from_name": "The App",
        "reply_to": "help@example.com",
    }
    fields.update(kw)
    return Email(**fields)


MARKER = mail(subject="marker")


# conformance: every mailer


async def test_a_valid_email_is_delivered_as_given(box: Box) -> None:
    await box.mailer.send(mail(subject="Héllo ✓ there"))
    [got] = box.delivered()
    assert got == Delivered(
        "reader@example.com",
        "app@example.com",
        "The App",
        "help@example.com",
        "Héllo ✓ there",
        "<p>Hi <b>you</b> &amp; welcome</p>",
        "Hi you & welcome",
    )


async def test_an_html_only_email_gets_its_text_part_from_the_html(box: Box) -> None:
    await box.mailer.send(mail(html="<h1>Title</h1><p>A &lt;b&gt; line<br>next</p><script>x()</script>", text=""))
    [got] = box.delivered()
    assert got.text == "Title\nA <b> line\nnext", got.text


@pytest.mark.parametrize(
    "field",
    ["subject", "from_name", "to_name", "to", "from_email", "reply_to"],
)
@pytest.mark.parametrize("brk", ["\r\n", "\n", "\r"])
async def test_a_line_break_in_a_header_is_refused_before_sending(box: Box, field: str, brk: str) -> None:
    value = {"to": "reader@example.com", "from_email": "app@example.com", "reply_to": "help@example.com"}.get(
        field, "x"
    )
    with pytest.raises(BadRequest, match="line break") as refused:
        await box.mailer.send(mail(**{field: value + brk + "Bcc: victim@example.com"}))
    assert "\n" not in refused.value.message
    await box.mailer.send(MARKER)  # the marker: the refused one would have arrived before it
    assert [d.subject for d in box.delivered()] == ["marker"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("to", ""),
        ("to", "nobody"),
        ("to", "a@b@c.com"),
        ("to", "Name <a@example.com>"),
        ("to", "a@example.com, b@example.com"),
        ("to", "a b@example.com"),
        ("to", "a@-bad-.com"),
        ("to", "ü@example.com"),
        ("from_email", "not an address"),
        ("reply_to", "@example.com"),
        ("to", "x" * 65 + "@example.com"),
        ("subject", "\x00"),
    ],
)
async def test_invalid_addresses_and_control_characters_are_refused(box: Box, field: str, value: str) -> None:
    with pytest.raises(BadRequest) as refused:
        await box.mailer.send(mail(**{field: value}))
    assert refused.value.message.startswith(("invalid ", "missing ")), refused.value.message
    await box.mailer.send(MARKER)
    assert [d.subject for d in box.delivered()] == ["marker"]


async def test_an_empty_body_and_an_oversized_one_are_refused(box: Box) -> None:
    with pytest.raises(BadRequest, match="empty email"):
        await box.mailer.send(mail(html=" ", text=""))
    with pytest.raises(PayloadTooLarge, match="at most"):
        await box.mailer.send(mail(html="x" * (MAX_BODY_BYTES // 2), text="y" * (MAX_BODY_BYTES // 2 + 1)))
    with pytest.raises(BadRequest, match="subject"):
        await box.mailer.send(mail(subject="s" * 501))
    await box.mailer.send(mail(html="x" * (MAX_BODY_BYTES // 2), text="y" * (MAX_BODY_BYTES // 2)))
    [got] = box.delivered()
    assert len(got.html) == MAX_BODY_BYTES // 2


# SMTP only: the message on the wire


async def test_smtp_sends_a_multipart_alternative_with_every_header() -> None:
    with smtp_server() as inbox:
        await SMTPMailer("127.0.0.1", inbox.port, tls="none").send(mail(to_name="Ré Ader"))
        [got] = inbox.messages
    assert got.mail_from == "app@example.com" and got.rcpt_tos == ["reader@example.com"]
    msg = got.message
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert str(msg["From"]) == "The App <app@example.com>"
    assert str(msg["To"]) == "Ré Ader <reader@example.com>"
    assert str(msg["Reply-To"]) == "help@example.com"
    assert msg["Date"] is not None and msg["Date"].datetime is not None
    assert str(msg["Message-ID"]).startswith("<") and str(msg["Message-ID"]).endswith("@example.com>")
    assert b"\r\nBcc:" not in got.raw
    for line in got.raw.split(b"\r\n"):
        assert len(line) <= 998


async def test_smtp_text_only_email_is_one_text_part() -> None:
    with smtp_server() as inbox:
        await SMTPMailer("127.0.0.1", inbox.port, tls="none").send(mail(html="", text="just text"))
        [got] = inbox.messages
    assert got.message.get_content_type() == "text/plain"
    assert got.message.get_content().strip() == "just text"


async def test_smtp_auth_with_the_right_password_and_refused_with_a_wrong_one() -> None:
    with smtp_server(auth=True) as inbox:
        await SMTPMailer("127.0.0.1", inbox.port, USER, PASSWORD, tls="none").send(mail())
        with pytest.raises(StoreError, match="unable to send email"):
            await SMTPMailer("127.0.0.1", inbox.port, USER, "wrong", tls="none").send(mail(subject="wrong pw"))
        with pytest.raises(StoreError):
            await SMTPMailer("127.0.0.1", inbox.port, tls="none").send(mail(subject="no auth"))
        await SMTPMailer("127.0.0.1", inbox.port, USER, PASSWORD, tls="none").send(MARKER)
    assert [(m.login, m.message["Subject"]) for m in inbox.messages] == [(USER, "Hello there"), (USER, "marker")]


async def test_auto_never_sends_credentials_where_starttls_is_not_offered() -> None:
    with smtp_server(auth=True) as inbox:
        with pytest.raises(StoreError, match=r"(?i)starttls|tls"):
            await SMTPMailer("127.0.0.1", inbox.port, USER, PASSWORD).send(mail())
        await SMTPMailer("127.0.0.1", inbox.port, USER, PASSWORD, tls="none").send(MARKER)
    assert [m.message["Subject"] for m in inbox.messages] == ["marker"]


@pytest.mark.parametrize("mode", ["starttls", "auto"])
async def test_starttls_with_a_self_signed_certificate_and_auth(mode: str) -> None:
    cert = self_signed()
    with smtp_server(auth=True, starttls=cert) as inbox:
        mailer = SMTPMailer("localhost", inbox.port, USER, PASSWORD, tls=mode, tls_context=cert.client_context())
        await mailer.send(mail())
        # the system's trust does not know this certificate: nothing is sent
        with pytest.raises(StoreError, match=r"(?i)certificate"):
            await SMTPMailer("localhost", inbox.port, USER, PASSWORD, tls=mode).send(mail(subject="untrusted"))
        [got] = inbox.messages
    assert got.tls and got.login == USER and got.message["Subject"] == "Hello there"


async def test_implicit_tls() -> None:
    cert = self_signed()
    with smtp_server(implicit_tls=cert) as inbox:
        await SMTPMailer("localhost", inbox.port, tls="tls", tls_context=cert.client_context()).send(mail())
        [got] = inbox.messages
    assert got.tls and got.message["Subject"] == "Hello there"


async def test_an_unreachable_server_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="unable to send email"):
        await SMTPMailer("127.0.0.1", free_port(), tls="none", timeout=5).send(mail())


# SES only: the message SES receives, and its refusals


async def test_ses_sends_the_same_mime_message_as_smtp(moto_ses: Moto) -> None:
    moto = moto_ses
    since = len(moto.sent_emails())
    await ses_mailer(moto).send(mail(to_name="Ré Ader"))
    [sent] = moto.sent_emails()[since:]
    assert sent["source"] == "app@example.com" and "reader@example.com" in sent["destinations"]
    [msg] = ses_received(moto, since)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert str(msg["From"]) == "The App <app@example.com>"
    assert str(msg["To"]) == "Ré Ader <reader@example.com>"
    assert str(msg["Reply-To"]) == "help@example.com"
    assert msg["Date"] is not None and str(msg["Message-ID"]).endswith("@example.com>")
    raw = sent["raw_data"]
    assert "\r\nBcc:" not in raw and all(len(line) <= 998 for line in raw.split("\r\n"))


async def test_ses_refuses_an_unverified_sender_as_a_store_error(moto_ses: Moto) -> None:
    moto = moto_ses
    since = len(moto.sent_emails())
    with pytest.raises(StoreError, match="unable to send email") as refused:
        await ses_mailer(moto).send(mail(from_email="stranger@elsewhere.example"))
    assert "\n" not in refused.value.message
    assert moto.sent_emails()[since:] == []


async def test_ses_unreachable_is_a_store_error() -> None:
    mailer = SESMailer(REGION, f"http://127.0.0.1:{free_port()}", ACCESS_KEY, SECRET_KEY, timeout=5)
    with pytest.raises(StoreError, match="unable to send email"):
        await mailer.send(mail())


def test_settings_choose_ses_with_its_region_and_endpoint(tmp_path: Any) -> None:
    env = {"MAIL_PROVIDER": "ses", "S3_REGION": "eu-west-3", "FROM_EMAIL": "noreply@app.example"}
    mailer = create_mailer(from_env(env, data_dir=tmp_path))
    assert isinstance(mailer, SESMailer) and (mailer.region, mailer.endpoint) == ("eu-west-3", "")
    assert mailer.default_from == "noreply@app.example"
    env = {**env, "SB_SES_REGION": "us-west-2", "SB_SES_ENDPOINT": "http://127.0.0.1:4566/"}
    mailer = create_mailer(from_env(env, data_dir=tmp_path))
    assert isinstance(mailer, SESMailer) and (mailer.region, mailer.endpoint) == ("us-west-2", "http://127.0.0.1:4566")
    with pytest.raises(SystemExit, match="MAIL_PROVIDER=ses needs a region: set S3_REGION"):
        from_env({"MAIL_PROVIDER": "ses"}, data_dir=tmp_path)
    with pytest.raises(SystemExit, match="invalid SB_SES_ENDPOINT"):
        from_env({**env, "SB_SES_ENDPOINT": "localhost:4566"}, data_dir=tmp_path)
    with pytest.raises(SystemExit, match=r"unsupported MAIL_PROVIDER='sendgrid': use dev \(print mail\), smtp or ses"):
        from_env({"MAIL_PROVIDER": "sendgrid"}, data_dir=tmp_path)


def test_settings_choose_the_mailer_and_its_tls_mode(tmp_path: Any) -> None:
    env = {"MAIL_PROVIDER": "smtp", "SB_SMTP_HOST": "mail.example.com", "SB_SMTP_PORT": "465"}
    mailer = create_mailer(from_env(env, data_dir=tmp_path))
    assert isinstance(mailer, SMTPMailer) and mailer.tls == "auto" and mailer._tls_options() == (True, False)
    mailer = create_mailer(from_env({**env, "SB_SMTP_PORT": "587", "SB_SMTP_TLS": "STARTTLS"}, data_dir=tmp_path))
    assert isinstance(mailer, SMTPMailer) and mailer._tls_options() == (False, True)
    with pytest.raises(SystemExit, match="SB_SMTP_TLS"):
        from_env({**env, "SB_SMTP_TLS": "ssl"}, data_dir=tmp_path)
    assert isinstance(create_mailer(from_env({}, data_dir=tmp_path)), ConsoleMailer)


def test_text_of_strips_tags_and_keeps_lines() -> None:
    assert text_of("<div>a</div><div>b&nbsp;c</div><style>p{}</style>") == "a\nb c"


# the monthly counter, on every store kind


async def test_the_monthly_email_counter_counts_per_app_and_month(
    store: Store,  # noqa: F811
    new_store: Callable[[], Store],  # noqa: F811
) -> None:
    from sbserver.ids import new_id
    from sbserver.types import Tenant

    tenant = Tenant(new_id(), f"{new_id()}@example.com", 1, True, "2026-01-01T00:00:00Z")
    await store.create_tenant(tenant)
    bases = [Base(new_id(), "a" + new_id().replace("-", "")[:11], tenant.id, ("localhost",), True, "t") for _ in "ab"]
    for b in bases:
        await store.create_base(b)
    one, two = bases
    assert await store.emails_sent(one, "2026-03") == 0
    assert [await store.count_email(one, "2026-03") for _ in range(3)] == [1, 2, 3]
    assert await store.count_email(one, "2026-04") == 1
    assert await store.count_email(two, "2026-03") == 1
    assert await store.emails_sent(one, "2026-03") == 3
    # durable: another store on the same file or database reads the same totals
    other = new_store()
    await other.open()
    try:
        assert await other.emails_sent(one, "2026-03") == 3
        assert await other.emails_sent(two, "2026-03") == 1
        assert await other.emails_sent(two, "2026-04") == 0
    finally:
        await other.close()


async def test_an_email_naming_no_sender_gets_the_servers(tmp_path: Any) -> None:
    mailer = create_mailer(from_env({"FROM_EMAIL": "noreply@app.example", "FROM_NAME": "App"}, data_dir=tmp_path))
    assert isinstance(mailer, ConsoleMailer)
    await mailer.send(Email(to="r@example.com", subject="s", html="<p>h</p>"))
    await mailer.send(Email(to="r@example.com", subject="s", html="<p>h</p>", from_name="Kept"))
    assert [(e.from_email, e.from_name) for e in mailer.sent] == [
        ("noreply@app.example", "App"),
        ("noreply@app.example", "Kept"),
    ]
    with pytest.raises(BadRequest, match="missing from"):
        await ConsoleMailer().send(Email(to="r@example.com", subject="s", html="<p>h</p>"))
