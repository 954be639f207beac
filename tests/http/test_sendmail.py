"""``POST /sudo/sendmail`` (spec 02 §7.1, item 108) and the functions' ``sendMail`` (spec 05), on
every store kind: through the dev mailer (its ``sent`` list), and through a real SMTP server
(aiosmtpd, tests/backends/smtp_inbox.py) with ``MAIL_PROVIDER=smtp``. The app's monthly email
counter is read from the store.
"""

from __future__ import annotations

from typing import Any

import httpx

from sbserver.backends.mail import Email
from sbserver.backends.mail.console import ConsoleMailer
from sbserver.services.mail import this_month
from sbserver.types import Base
from tests.backends.smtp_inbox import smtp_server
from tests.functions.support import FnApi, logged
from tests.http.conftest import DEV_PK, Server
from tests.http.helpers import (
    ServerFactory,
    assert_error,
    assert_json,
    auth,
    dev_base,
    make_server,  # noqa: F401  (fixture)
    register,
    unique_email,
)

# The function runner polls quickly; the smtp mailer sends in clear to the local test server.
FAST = {"function_workers": 1, "function_poll_seconds": 0.5}


def sent(server: Server) -> list[Email]:
    mailer = server.services.mailer
    assert isinstance(mailer, ConsoleMailer)
    return mailer.sent


async def count(server: Server, base: Base | None = None) -> int:
    return int(await server.services.store.emails_sent(base or await dev_base(server), this_month()))


async def sendmail(server: Server, body: Any, token: str | None = None, path: str = "/sudo/sendmail") -> httpx.Response:
    return await server.client.post(path, headers=auth(token or server.dev.root_token), json=body)


async def test_108_sudo_sendmail_with_root_returns_true(server: Server) -> None:
    before = await count(server)
    r = await sendmail(server, {"to": "Reader108@Example.com", "subject": "Hi 108", "body": "<p>Hello <b>108</b></p>"})
    assert assert_json(r) is True
    [email] = sent(server)[-1:]
    assert (email.to, email.subject) == ("Reader108@Example.com", "Hi 108")
    assert (email.html, email.text) == ("<p>Hello <b>108</b></p>", "Hello 108")
    settings = server.services.settings
    assert (email.from_email, email.from_name) == (settings.from_email, settings.from_name)
    assert await count(server) == before + 1


async def test_108_body_rules_and_sender_fields(server: Server) -> None:
    body = {
        "from": "app@example.com",
        "fromName": "The App",
        "to": "r@example.com",
        "toName": "Reader",
        "replyTo": "help@example.com",
        "subject": "html only",
        "htmlBody": "<h1>Title</h1><p>a &amp; b</p>",
    }
    assert assert_json(await sendmail(server, body)) is True
    assert assert_json(await sendmail(server, {"to": "r@example.com", "textBody": "1 < 2\nnext"})) is True
    # field names match case-insensitively, as upstream's decoder does
    assert assert_json(await sendmail(server, {"TO": "r@example.com", "Body": "<i>x</i>", "HTMLBODY": "<b>y</b>"}))
    html_only, text_only, both = sent(server)[-3:]
    assert (html_only.from_email, html_only.from_name, html_only.to_name) == ("app@example.com", "The App", "Reader")
    assert html_only.reply_to == "help@example.com"
    assert html_only.text == "Title\na & b"
    assert (text_only.html, text_only.text) == ("<p>1 &lt; 2<br>\nnext</p>", "1 < 2\nnext")
    assert (both.html, both.text) == ("<i>x</i>", "x")


async def test_108_refusals_say_why_and_send_nothing(server: Server) -> None:
    base = await dev_base(server)
    before, outbox = await count(server, base), len(sent(server))
    cases: list[tuple[Any, int, str]] = [
        ({"to": "r@example.com", "subject": "x\r\nBcc: victim@example.com", "body": "b"}, 400, "invalid subject"),
        ({"to": "r@example.com\nBcc: v@example.com", "body": "b"}, 400, "invalid to"),
        ({"to": "r@example.com", "fromName": "A\rB", "body": "b"}, 400, "invalid fromName"),
        ({"to": "r@example.com", "replyTo": "x@example.com\n", "body": "b"}, 400, "invalid replyTo"),
        ({"to": "not-an-address", "body": "b"}, 400, "invalid to"),
        ({"subject": "no recipient", "body": "b"}, 400, "missing to"),
        ({"to": "r@example.com", "subject": "empty"}, 400, "empty email"),
        ({"to": "r@example.com", "body": 3}, 400, 'invalid field "body"'),
        ({"to": "r@example.com", "body": "x" * (1024 * 1024 + 1)}, 413, "email body is"),
        ([1], 400, "invalid JSON body"),
    ]
    for body, status, reason in cases:
        line = assert_error(await sendmail(server, body), status)
        assert line.startswith(reason), (body if not isinstance(body, dict) else body.keys(), line)
    r = await server.client.post("/sudo/sendmail", headers=auth(server.dev.root_token), content=b"")
    assert_error(r, 400)
    # the marker: a valid send after them is the only one delivered and counted
    assert assert_json(await sendmail(server, {"to": "r@example.com", "subject": "marker", "body": "m"})) is True
    assert [e.subject for e in sent(server)[outbox:]] == ["marker"]
    assert await count(server, base) == before + 1


async def test_108_root_only_and_never_a_collection(server: Server) -> None:
    outbox = len(sent(server))
    body = {"to": "r@example.com", "body": "b"}
    assert_error(await server.client.post("/sudo/sendmail", json=body), 401)
    user = await register(server.client)
    assert_error(await sendmail(server, body, token=user), 400, "invalid root token")
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        for headers in (auth(server.dev.root_token), {}):
            r = await server.client.request(method, "/sudo/sendmail", headers=headers, json=body)
            assert_error(r, 501, startswith="method not implemented")
    assert assert_json(await sendmail(server, {**body, "subject": "slash"}, path="/sudo/sendmail/")) is True
    assert [e.subject for e in sent(server)[outbox:]] == ["slash"]
    names = assert_json(await server.client.get("/sudolistall", headers=auth(server.dev.root_token)))
    assert "sendmail" not in names


async def test_sends_are_limited_per_app(make_server: ServerFactory) -> None:  # noqa: F811
    async with make_server(mail_per_app=2) as server:
        body = {"to": "r@example.com", "body": "b"}
        before = await count(server)  # PostgreSQL: the dev app lives for the session
        assert assert_json(await sendmail(server, body)) is True
        # a refused email does not take a place in the limit
        assert_error(await sendmail(server, {"to": "bad", "body": "b"}), 400)
        assert assert_json(await sendmail(server, body)) is True
        assert_error(await sendmail(server, body), 429, startswith="too many emails sent by this app")
        assert await count(server) == before + 2
        # another app has its own allowance
        other = await server.services.tenancy.init_account(unique_email("mail"), False, False, True)
        r = await server.client.post(
            "/sudo/sendmail", headers={**auth(other.root_token), "SB-PUBLIC-KEY": other.base.id}, json=body
        )
        assert assert_json(r) is True
        assert await count(server, other.base) == 1


def smtp_settings(port: int) -> dict[str, object]:
    return {"mail_provider": "smtp", "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_tls": "none", **FAST}


async def test_108_sendmail_reaches_the_smtp_server(make_server: ServerFactory) -> None:  # noqa: F811
    with smtp_server() as inbox:
        async with make_server(**smtp_settings(inbox.port)) as server:
            before = await count(server)  # PostgreSQL: the dev app lives for the session
            body = {
                "from": "app@example.com",
                "fromName": "The App",
                "to": "reader@example.com",
                "replyTo": "help@example.com",
                "subject": "Over SMTP",
                "body": "<p>Hello <b>there</b></p>",
            }
            assert assert_json(await sendmail(server, body)) is True
            injected = {**body, "subject": "x\r\nBcc: victim@example.com"}
            assert_error(await sendmail(server, injected), 400, startswith="invalid subject")
            assert assert_json(await sendmail(server, {**body, "subject": "marker"})) is True
            assert await count(server) == before + 2
    first, marker = inbox.messages
    assert marker.message["Subject"] == "marker"
    assert first.rcpt_tos == ["reader@example.com"] and first.mail_from == "app@example.com"
    msg = first.message
    assert (str(msg["From"]), str(msg["Reply-To"]), str(msg["Subject"])) == (
        "The App <app@example.com>",
        "help@example.com",
        "Over SMTP",
    )
    assert msg.get_body(preferencelist=("html",)).get_content().strip() == "<p>Hello <b>there</b></p>"
    assert msg.get_body(preferencelist=("plain",)).get_content().strip() == "Hello there"


async def test_a_function_send_mail_reaches_the_smtp_server_and_is_counted(
    make_server: ServerFactory,  # noqa: F811
) -> None:
    with smtp_server() as inbox:
        async with make_server(**smtp_settings(inbox.port)) as server:
            before = await count(server)  # PostgreSQL: the dev app lives for the session
            fn = FnApi(server.client, DEV_PK, server.dev.root_token)
            code = """function handle() {
              log(JSON.stringify(sendMail({from: "fn@example.com", to: "reader@example.com", subject: "From fn",
                                           htmlBody: "<p>fn <b>html</b></p>", textBody: "fn text"})));
              log(JSON.stringify(sendMail({to: "reader@example.com", subject: "bad\\r\\nBcc: v@example.com",
                                           textBody: "x"})));
              log(JSON.stringify(sendMail({from: "fn@example.com", to: "reader@example.com", subject: "marker",
                                           textBody: "m"})));
            }"""
            await fn.add_ok("mailer", "web", code)
            user = await register(server.client)
            run = await fn.exec_ok("mailer", user, {})
            assert run["success"], run
            good, bad, marker = logged(run)
            assert good == {"ok": True} and marker == {"ok": True}, run
            assert bad["ok"] is False and bad["content"].startswith("send mail error: invalid subject"), bad
            assert await count(server) == before + 2
    first, last = inbox.messages
    assert last.message["Subject"] == "marker"
    msg = first.message
    # spec 05: no from-name, and the reply-to is the sender
    assert (str(msg["From"]), str(msg["Reply-To"]), str(msg["Subject"])) == (
        "fn@example.com",
        "fn@example.com",
        "From fn",
    )
    assert msg.get_body(preferencelist=("html",)).get_content().strip() == "<p>fn <b>html</b></p>"
    assert msg.get_body(preferencelist=("plain",)).get_content().strip() == "fn text"


async def test_password_reset_mail_goes_through_the_same_checked_mailer(
    make_server: ServerFactory,  # noqa: F811
) -> None:
    with smtp_server() as inbox:
        async with make_server(**smtp_settings(inbox.port)) as server:
            before = await count(server)  # PostgreSQL: the dev app lives for the session
            email = unique_email("reset")
            await register(server.client, email)
            r = await server.client.post("/password/send", json={"email": email})
            assert r.status_code == 200, r.text
            # not an app's email: it is neither limited nor counted as one
            assert await count(server) == before
    [got] = inbox.messages
    assert got.rcpt_tos == [email] and got.message["Subject"] == "Your password reset code"
    assert got.message.get_content_type() == "multipart/alternative"
