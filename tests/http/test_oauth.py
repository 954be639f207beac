"""OAuth sign-in (spec 02 §9, items 112-113) against a real authorization server on a local port.

The server under test runs in process (every store kind); the provider (tests/oauth_provider.py)
is a real HTTP server in a thread: its consent form is submitted over HTTP as a browser would,
and the server reaches its token and user endpoints through the outbound guard (127.0.0.1 is
opened with ``fetch_allow``). Every refused callback is checked to have created nothing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio

from sbserver.app import create_app
from sbserver.crypto import SecretBox, SecretsUnreadable
from sbserver.services.oauth import OAUTH_SECRETS
from sbserver.services.tenancy import DEV_PK
from tests.conftest import STORE_KINDS
from tests.http.conftest import Server, make_settings
from tests.oauth_provider import OAuthProvider

CALLBACK = "http://testserver/oauth/callback"
PROVIDERS = ["google", "github", "facebook", "twitter", "oidc"]


@pytest.fixture(scope="module")
def provider() -> Iterator[OAuthProvider]:
    with OAuthProvider().running() as running:
        yield running


async def _server(request: pytest.FixtureRequest, tmp_path: Path, **overrides: Any) -> AsyncIterator[Server]:
    kind = request.param
    pg_url = request.getfixturevalue("pg_url") if kind == "pg" else None
    app = create_app(make_settings(kind, tmp_path, pg_url, **overrides))
    app.state.services.tenancy.announce = lambda text: None
    async with app.router.lifespan_context(app):
        dev = await app.state.services.tenancy.dev_app()
        store = app.state.services.store
        for config in await store.oauth_providers(dev.base):  # PostgreSQL keeps the dev app between tests
            await store.delete_oauth_provider(dev.base, config.provider)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"SB-PUBLIC-KEY": DEV_PK}
        ) as client:
            yield Server(app, client, dev, kind)


@pytest_asyncio.fixture(params=STORE_KINDS)
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    async for s in _server(request, tmp_path, fetch_allow=("127.0.0.1",)):
        yield s


@pytest_asyncio.fixture(params=STORE_KINDS)
async def guarded(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    """A server whose outbound guard keeps its default: 127.0.0.1 is refused."""
    async for s in _server(request, tmp_path):
        yield s


def reqid() -> str:
    return "R" + str(uuid.uuid4())


def root(server: Server, token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or server.dev.root_token}"}


async def configure(server: Server, provider: OAuthProvider, kind: str = "google", **extra: str) -> tuple[str, str]:
    client_id, secret = provider.add_client(CALLBACK)
    body: dict[str, str] = {"clientId": client_id, "clientSecret": secret, **provider.endpoints(kind)}
    if kind == "oidc":  # discovery from the issuer alone
        body = {"clientId": client_id, "clientSecret": secret, "issuer": provider.url}
    body.update(extra)
    r = await server.client.put(f"/account/oauth/{kind}", json=body, headers=root(server))
    assert r.status_code == 200, r.text
    return client_id, secret


async def start(server: Server, kind: str, rid: str, pk: str = DEV_PK) -> str:
    """``/oauth/login``: the provider URL it redirects to."""
    r = await server.client.get(
        "/oauth/login", params={"provider": kind, "reqid": rid, "sbpk": pk}, headers={"SB-PUBLIC-KEY": ""}
    )
    assert r.status_code == 307, r.text
    return r.headers["location"]


async def consent(url: str, login: str | None) -> str:
    """Open the provider's page and click allow (as ``login``) or deny: the callback URL it sends back."""
    async with httpx.AsyncClient() as web:
        page = await web.get(url)
        assert page.status_code == 200, page.text
        txn = re.search(r'name="txn" value="([^"]+)"', page.text)
        assert txn, page.text
        form = {"txn": txn.group(1), **({"user": login} if login else {"deny": "1"})}
        back = await web.post(url.split("?", 1)[0], data=form)
    assert back.status_code == 302, back.text
    location = back.headers["location"]
    assert location.startswith(CALLBACK + "?"), location
    return location


async def callback(server: Server, location: str) -> httpx.Response:
    parts = urlsplit(location)
    return await server.client.get(parts.path + "?" + parts.query, headers={"SB-PUBLIC-KEY": ""})


async def sign_in(server: Server, kind: str, login: str, pk: str = DEV_PK) -> tuple[str, httpx.Response]:
    rid = reqid()
    location = await consent(await start(server, kind, rid, pk), login)
    return rid, await callback(server, location)


async def get_user(server: Server, rid: str, pk: str = DEV_PK) -> Any:
    r = await server.client.get("/oauth/get-user", params={"reqid": rid}, headers={"SB-PUBLIC-KEY": pk})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()


async def assert_no_user(server: Server, email: str) -> None:
    base = await server.services.tenancy.base(DEV_PK)
    assert await server.services.store.user_by_email(base, email) is None


def email() -> str:
    return f"oauth-{uuid.uuid4().hex[:10]}@example.com"


# --- spec 09 items ----------------------------------------------------------------------------


async def test_112_get_user_of_an_unknown_reqid_is_false(server: Server) -> None:
    r = await server.client.get("/oauth/get-user?reqid=unknown123")
    assert (r.status_code, r.text, r.headers["content-type"]) == (200, "false", "application/json")


async def test_113_login_with_a_short_reqid_is_refused(server: Server) -> None:
    r = await server.client.get("/oauth/login?provider=google&reqid=abc")
    assert (r.status_code, r.text) == (400, "reqid parameters is required to be > 5\n")


# --- sign-in -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", PROVIDERS)
async def test_new_user_is_created_then_matched_by_email(server: Server, provider: OAuthProvider, kind: str) -> None:
    address = email()
    provider.add_user(f"u-{kind}-{address}", address, name="Jane Q Roe", given="", family="")
    await configure(server, provider, kind)
    login_url = await start(server, kind, reqid())
    q = parse_qs(urlsplit(login_url).query)
    assert q["code_challenge_method"] == ["S256"] and q["redirect_uri"] == [CALLBACK], q
    assert q["state"][0].startswith(f"{kind}_R") and q["state"][0].endswith(f"_{DEV_PK}"), q

    rid, r = await sign_in(server, kind, f"u-{kind}-{address}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert "window.close()" in r.text and address not in r.text
    assert "script-src 'sha256-" in r.headers["content-security-policy"]

    found = await get_user(server, rid)
    assert found["email"] == address and found["name"] == "Jane Q Roe", found
    assert (found["first"], found["last"]) == ("Jane", "Q Roe"), found
    assert found["avatarUrl"] == "https://pics.example.com/jane.png", found
    assert set(found) == {"token", "email", "name", "first", "last", "avatarUrl"}
    assert await get_user(server, rid) == found  # readable until it expires, as the client polls
    me = await server.client.get("/me", headers={"Authorization": f"Bearer {found['token']}"})
    assert me.status_code == 200, me.text
    first_id = me.json()["id"]
    assert (me.json()["email"], me.json()["role"]) == (address, 0), me.json()

    rid2, r2 = await sign_in(server, kind, f"u-{kind}-{address}")
    assert r2.status_code == 200, r2.text
    again = await get_user(server, rid2)
    me2 = await server.client.get("/me", headers={"Authorization": f"Bearer {again['token']}"})
    assert me2.json()["id"] == first_id, me2.json()


async def test_existing_user_is_matched_by_verified_email(server: Server, provider: OAuthProvider) -> None:
    address = email()
    r = await server.client.post("/register", json={"email": address.upper(), "password": "pw-123456789"})
    assert r.status_code == 200, r.text
    mine = (await server.client.get("/me", headers={"Authorization": f"Bearer {r.json()}"})).json()
    provider.add_user("existing-" + address, address)
    await configure(server, provider, "github")
    rid, done = await sign_in(server, "github", "existing-" + address)
    assert done.status_code == 200, done.text
    token = (await get_user(server, rid))["token"]
    me = await server.client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["id"] == mine["id"] and me.json()["role"] == mine["role"]


@pytest.mark.parametrize("kind", ["google", "github", "facebook", "twitter"])
async def test_unverified_email_is_refused_and_nothing_created(
    server: Server, provider: OAuthProvider, kind: str
) -> None:
    address = email()
    provider.add_user("unverified-" + address, address, verified=False)
    await configure(server, provider, kind)
    rid, r = await sign_in(server, kind, "unverified-" + address)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "text/plain; charset=utf-8" and r.text.count("\n") == 1
    assert "verified" in r.text or "confirmed" in r.text, r.text
    assert await get_user(server, rid) is False
    await assert_no_user(server, address)


async def test_consent_denied_is_a_400_and_nothing_created(server: Server, provider: OAuthProvider) -> None:
    await configure(server, provider)
    rid = reqid()
    location = await consent(await start(server, "google", rid), None)
    assert "error=access_denied" in location
    r = await callback(server, location)
    assert (r.status_code, r.text) == (400, "the sign-in was not completed at google: access_denied\n")
    assert await get_user(server, rid) is False


async def test_replayed_callback_and_replayed_code_are_refused(server: Server, provider: OAuthProvider) -> None:
    address = email()
    provider.add_user("replay-" + address, address)
    await configure(server, provider)
    rid = reqid()
    location = await consent(await start(server, "google", rid), "replay-" + address)
    assert (await callback(server, location)).status_code == 200
    again = await callback(server, location)
    assert (again.status_code, again.text) == (400, "unknown or expired sign-in request: start again from the app\n")

    # the old code under a new flow's state: the provider refuses it (single use)
    rid2 = reqid()
    await start(server, "google", rid2)
    code = parse_qs(urlsplit(location).query)["code"][0]
    r = await server.client.get("/oauth/callback", params={"state": f"google_{rid2}_{DEV_PK}", "code": code})
    assert r.status_code == 400 and "google refused the code: invalid_grant" in r.text, r.text
    assert provider.token_requests[-1]["outcome"] == "invalid_grant"
    assert await get_user(server, rid2) is False


async def test_missing_code_and_bad_states(server: Server, provider: OAuthProvider) -> None:
    await configure(server, provider)
    rid = reqid()
    await start(server, "google", rid)
    cases = [
        ({"code": "x"}, "invalid state: expected <provider>_<reqid>_<public key>"),
        ({"state": "google", "code": "x"}, "invalid state: expected <provider>_<reqid>_<public key>"),
        ({"state": f"nope_{rid}_{DEV_PK}", "code": "x"}, "invalid auth provider: 'nope'"),
        ({"state": f"github_{rid}_{DEV_PK}", "code": "x"}, "invalid request"),  # not this flow's provider
        ({"state": f"google_{rid}_otherapp", "code": "x"}, "invalid request"),  # another app
        ({"state": f"google_{reqid()}_{DEV_PK}", "code": "x"}, "unknown or expired sign-in request"),
        ({"state": f"google_a_b_{DEV_PK}", "code": "x"}, "reqid parameters is required to be > 5"),
    ]
    for params, text in cases:
        r = await server.client.get("/oauth/callback", params=params)
        assert r.status_code == 400 and r.text.startswith(text), (params, r.text)
    # forged states consumed nothing: the flow still ends, without a code
    r = await server.client.get("/oauth/callback", params={"state": f"google_{rid}_{DEV_PK}"})
    assert (r.status_code, r.text) == (400, "missing code: google sent no authorization code\n")
    assert await get_user(server, rid) is False
    assert not [t for t in provider.token_requests if t.get("code") == "x"]


async def test_post_callback_reads_the_form(server: Server, provider: OAuthProvider) -> None:
    address = email()
    provider.add_user("post-" + address, address)
    await configure(server, provider, "facebook")
    rid = reqid()
    location = await consent(await start(server, "facebook", rid), "post-" + address)
    form = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    r = await server.client.post("/oauth/callback", data=form)
    assert r.status_code == 200, r.text
    assert (await get_user(server, rid))["email"] == address


async def test_wrong_client_secret_is_refused_by_the_provider(server: Server, provider: OAuthProvider) -> None:
    address = email()
    provider.add_user("secret-" + address, address)
    await configure(server, provider, "google", clientSecret="not-the-secret")
    _, r = await sign_in(server, "google", "secret-" + address)
    assert r.status_code == 400 and "google refused the code: invalid_client" in r.text, r.text
    await assert_no_user(server, address)


async def test_provider_requests_pass_the_outbound_guard(guarded: Server, provider: OAuthProvider) -> None:
    address = email()
    provider.add_user("guard-" + address, address)
    await configure(guarded, provider)
    _, r = await sign_in(guarded, "google", "guard-" + address)
    assert r.status_code == 400, r.text
    assert r.text.startswith("google could not be reached: destination refused: 127.0.0.1 is not a public address")
    await assert_no_user(guarded, address)


# --- bad input at /oauth/login and /oauth/get-user ---------------------------------------------


async def test_login_bad_input(server: Server, provider: OAuthProvider) -> None:
    c = server.client
    cases = [
        ({"provider": "myspace", "reqid": reqid()}, 400, "invalid auth provider: 'myspace' (known: google, github"),
        ({"provider": "google", "reqid": reqid()}, 404, "missing configuration for provider: google\n"),
        ({"provider": "google", "reqid": "R" * 129}, 400, "invalid reqid: use 6 to 128 letters, digits or -"),
        ({"provider": "google", "reqid": "R_123456"}, 400, "invalid reqid"),
        ({"provider": "google", "reqid": "<script>"}, 400, "invalid reqid"),
        ({"provider": "google"}, 400, "reqid parameters is required to be > 5"),
    ]
    for params, status, text in cases:
        r = await c.get("/oauth/login", params=params)
        assert r.status_code == status and r.text.startswith(text), (params, r.status_code, r.text)
    r = await c.get("/oauth/login", params={"provider": "google", "reqid": reqid()}, headers={"SB-PUBLIC-KEY": ""})
    assert r.status_code == 401, r.text

    await configure(server, provider)
    rid = reqid()
    await start(server, "google", rid)
    r = await c.get("/oauth/login", params={"provider": "google", "reqid": rid})
    assert (r.status_code, r.text) == (409, "reqid already used: start each sign-in with a new one\n")

    for bad in ("abc", "R" * 129, "a_b_c_d_e"):
        r = await c.get("/oauth/get-user", params={"reqid": bad})
        assert r.status_code == 400, (bad, r.text)
    assert (await c.get("/oauth/get-user", params={"reqid": reqid()}, headers={"SB-PUBLIC-KEY": ""})).status_code == 401


# --- provider keys -----------------------------------------------------------------------------


async def test_keys_are_sealed_never_shown_and_isolated_per_app(server: Server, provider: OAuthProvider) -> None:
    c, svc = server.client, server.services
    client_id, secret = await configure(server, provider)
    listed = (await c.get("/account/oauth", headers=root(server))).json()
    assert [p["provider"] for p in listed] == ["google"] and listed[0]["clientId"] == client_id
    assert listed[0]["hasSecret"] is True and listed[0]["tokenUrl"] == provider.url + "/token"
    one = await c.get("/account/oauth/google", headers=root(server))
    assert one.json() == listed[0]
    for r in (one,):
        assert secret not in r.text
    base = await svc.tenancy.base(DEV_PK)
    row = await svc.store.oauth_provider(base, "google")
    assert row is not None and row.client_secret.startswith("enc:v1:") and secret not in row.client_secret

    # an empty secret keeps the stored one; a new client id replaces the old
    r = await c.put("/account/oauth/google", json={"clientId": client_id, **provider.endpoints()}, headers=root(server))
    assert r.status_code == 200 and secret not in r.text
    assert (await svc.store.oauth_provider(base, "google")).client_secret == row.client_secret  # type: ignore[union-attr]

    # another app sees none of it, and the sealed value does not open as its own
    other = await svc.tenancy.init_account(email(), memory_mode=False, from_cli=False, bypass=True)
    assert (
        await c.get("/account/oauth", headers={"SB-PUBLIC-KEY": other.base.id, **root(server, other.root_token)})
    ).json() == []
    r = await c.get(
        "/oauth/login",
        params={"provider": "google", "reqid": reqid(), "sbpk": other.base.id},
        headers={"SB-PUBLIC-KEY": ""},
    )
    assert (r.status_code, r.text) == (404, "missing configuration for provider: google\n")
    box = SecretBox(svc.settings.app_secret, OAUTH_SECRETS)
    assert box.open(row.client_secret, f"{base.name}:google") == secret
    with pytest.raises(SecretsUnreadable):
        box.open(row.client_secret, f"{other.base.name}:google")

    # a sign-in of one app is not readable with another app's key
    address = email()
    provider.add_user("iso-" + address, address)
    rid, done = await sign_in(server, "google", "iso-" + address)
    assert done.status_code == 200, done.text
    assert await get_user(server, rid, pk=other.base.id) is False
    assert (await get_user(server, rid))["email"] == address

    # root only; delete
    assert (await c.get("/account/oauth")).status_code == 401
    assert (
        await c.delete(
            "/account/oauth/google", headers={"Authorization": f"Bearer {(await get_user(server, rid))['token']}"}
        )
    ).status_code in (400, 403)
    assert (await c.delete("/account/oauth/google", headers=root(server))).text == "true"
    assert (await c.delete("/account/oauth/google", headers=root(server))).status_code == 404
    assert (await c.get("/account/oauth/google", headers=root(server))).status_code == 404


async def test_config_bad_input(server: Server) -> None:
    c = server.client
    cases = [
        ("myspace", {"clientId": "a", "clientSecret": "b"}, "invalid auth provider"),
        ("google", {"clientSecret": "b"}, "missing clientId"),
        ("google", {"clientId": "a"}, "missing clientSecret"),
        ("google", {"clientId": "a", "clientSecret": "b", "colour": "red"}, "unknown field 'colour'"),
        ("google", {"clientId": 1, "clientSecret": "b"}, 'invalid field "clientId": expected a string'),
        (
            "google",
            {"clientId": "a", "clientSecret": "b", "tokenUrl": "file:///etc/passwd"},
            'invalid field "tokenUrl"',
        ),
        ("google", {"clientId": "a\nb", "clientSecret": "b"}, 'invalid field "clientId"'),
        ("google", {"clientId": "a", "clientSecret": "b" * 600}, 'invalid field "clientSecret"'),
        ("oidc", {"clientId": "a", "clientSecret": "b"}, "missing issuer"),
        ("google", [1], "invalid JSON body: expected an object"),
    ]
    for name, body, text in cases:
        r = await c.put(f"/account/oauth/{name}", json=body, headers=root(server))
        assert r.status_code == 400 and r.text.startswith(text), (name, body, r.text)
    r = await c.put("/account/oauth/google", content=b"{", headers=root(server))
    assert r.status_code == 400
    assert (await c.get("/account/oauth", headers=root(server))).json() == []
