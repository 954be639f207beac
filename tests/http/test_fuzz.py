"""Fuzzing driven by the OpenAPI document, against a real server process on every store kind.

Schemathesis draws requests for every documented operation (valid shapes and shapes that break
the schema), each sent with a drawn credential: the right one for the route (the dev app's public
key, a user's session token, the root token), none, a forged token, or another app's key or token.
Then a fixed list of hostile requests goes to every operation: malformed JSON, wrong types, a body
past the limit, unknown operators, hostile field and collection names, forged tokens.

Every answer must be below 500 (501 only where the document says the route is not served), every
4xx a one-line plain-text reason (spec 02 §1.2), and ``/ping`` must answer ``true`` between batches
and at the end. Budget: about 90 s on 2 cores (SQLite and PostgreSQL); ``SB_FUZZ_EXAMPLES`` raises
the number of drawn requests per store for local runs. Draws are derandomized: CI is reproducible.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from sbserver.http.openapi import document
from sbserver.services.identity import DEV_ROOT_ALIAS
from sbserver.services.tenancy import DEV_PK
from tests.conftest import PG_URL, STORE_KINDS

EXAMPLES = int(os.environ.get("SB_FUZZ_EXAMPLES", "0")) or (160 if PG_URL else 320)
BODY_LIMIT = 256 * 1024
PING_EVERY = 100
METHODS = ("get", "post", "put", "delete", "patch", "head")
TEXT_TYPE = "text/plain; charset=utf-8"
FORGED = [
    "a|b|c",
    "00000000-0000-0000-0000-000000000000|00000000-0000-0000-0000-000000000000|x",
    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJ0b2tlbiI6InJvb3QifQ.",
    "eyJhbGciOiJIUzI1NiJ9." + base64.urlsafe_b64encode(b'{"token":"x|y|z"}').decode().rstrip("=") + ".sig",
    "x" * 5000,
    "|||",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Live:
    url: str
    http: httpx.Client
    pk: str
    root: str
    user: str
    other_pk: str
    other_root: str
    other_user: str
    log: Path
    proc: subprocess.Popen[bytes]

    def headers(self, access: str, variant: str) -> dict[str, str]:
        """The credentials of one request: ``variant`` picks right, none, forged or another app's."""
        token = {"root": self.root, "user": self.user, "user-or-root": self.user, "base": "", "none": ""}[access]
        if variant == "valid":
            pairs = {"SB-PUBLIC-KEY": self.pk if access != "none" else "", "Authorization": _bearer(token)}
        elif variant == "root":
            pairs = {"SB-PUBLIC-KEY": self.pk, "Authorization": _bearer(self.root)}
        elif variant == "none":
            pairs = {}
        elif variant.startswith("forged"):
            pairs = {"SB-PUBLIC-KEY": self.pk, "Authorization": "Bearer " + FORGED[int(variant[6:]) % len(FORGED)]}
        elif variant == "other-key":  # our token, another app's key
            pairs = {"SB-PUBLIC-KEY": self.other_pk, "Authorization": _bearer(token or self.user)}
        elif variant == "other-token":  # our key, another app's root token and user token
            pairs = {
                "SB-PUBLIC-KEY": self.pk,
                "Authorization": _bearer(self.other_root if access == "root" else self.other_user),
            }
        else:
            pairs = {"SB-PUBLIC-KEY": "pk-" + variant, "Authorization": "Basic dXNlcjpwdw=="}
        return {k: v for k, v in pairs.items() if v}

    def ping(self) -> None:
        r = self.http.get("/ping")
        assert r.status_code == 200 and r.text == "true", f"/ping: {r.status_code} {r.text!r}"
        assert self.proc.poll() is None, "the server died"

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _bearer(token: str) -> str:
    return f"Bearer {token}" if token else ""


def _start(tmp_path: Path, kind: str, pg_url: str | None) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = _free_port()
    env = dict(os.environ, JWT_SECRET="fuzz-" + uuid.uuid4().hex, APP_ENV="dev", SB_MAX_BODY_BYTES=str(BODY_LIMIT))
    for key in ("DATA_STORE", "DATABASE_URL", "REDIS_URL", "REDIS_HOST"):
        env.pop(key, None)
    if kind == "pg":
        assert pg_url
        env.update(DATA_STORE="pg", DATABASE_URL=pg_url)
    log = tmp_path / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sbserver", "server", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            if httpx.get(url + "/ping", timeout=2).text == "true":
                return proc, url, log
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the server did not start: " + log.read_text(errors="replace")[-3000:])


def _register(http: httpx.Client, pk: str) -> str:
    email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
    r = http.post("/register", json={"email": email, "password": "pw-123456"}, headers={"SB-PUBLIC-KEY": pk})
    assert r.status_code == 200, r.text
    token: str = r.json()
    return token


@pytest.fixture(params=STORE_KINDS)
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    kind = request.param
    pg_url = request.getfixturevalue("pg_url") if kind == "pg" else None
    proc, url, log = _start(tmp_path, kind, pg_url)
    try:
        with httpx.Client(base_url=url, timeout=20) as http:
            other = http.get(
                "/account/init",
                params={"email": f"other-{uuid.uuid4().hex[:10]}@example.com"},
                headers={"Accept": "application/json"},
            )
            assert other.status_code == 200, other.text
            creds = other.json()
            yield Live(
                url=url,
                http=http,
                pk=DEV_PK,
                root=DEV_ROOT_ALIAS,
                user=_register(http, DEV_PK),
                other_pk=creds["pk"],
                other_root=creds["rootToken"],
                other_user=_register(http, creds["pk"]),
                log=log,
                proc=proc,
            )
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for path, item in document()["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is not None and not op.get("x-sb-websocket") and not op.get("x-sb-stream"):
                out.append((path, method, op))
    return out


def check(r: httpx.Response, op: dict[str, Any], what: str, live: Live) -> None:
    """No 5xx (a documented 501 aside); a 4xx says why in one plain-text line."""
    status = r.status_code
    exact = document()["paths"].get(r.request.url.path, {}).get(r.request.method.lower())
    op = exact or op  # a hostile name can land on a literal route (/sudo/index)
    if status >= 500:
        allowed = status == 501 and "501" in op.get("responses", {})
        assert allowed, f"{what} -> {status} {r.text[:300]!r}\nserver log:\n{live.tail()}"
        return
    if status < 400 or r.request.method == "HEAD":
        return
    if r.headers.get("content-type", "").startswith("text/html") and op.get("summary", "").startswith(
        "create a tenant"
    ):
        return  # the sign-up form answers its errors as the page, with the status
    if r.headers.get("content-type", "").startswith("text/html") and op.get("x-sb-html"):
        return  # the admin pages answer their errors as a page, with the status
    assert r.headers.get("content-type") == TEXT_TYPE, f"{what} -> {status} {r.headers} {r.text[:200]!r}"
    body = r.text
    assert body.endswith("\n") and body.count("\n") == 1 and body.strip(), f"{what} -> {status} {body[:300]!r}"


def _send(live: Live, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return live.http.request(method.upper(), url, **kwargs)
    except httpx.HTTPError as exc:
        raise AssertionError(f"{method.upper()} {url}: {exc!r}\nserver log:\n{live.tail()}") from exc


def _loopback_tasks(case: Any) -> None:
    """Scheduled http tasks would fetch the drawn URL: keep every target on this machine."""
    body = case.body
    if case.path.startswith("/task") and isinstance(body, dict) and body.get("type") == "http":
        body["value"] = "http://127.0.0.1:9/fuzz"


VARIANTS = ["valid"] * 6 + ["root", "none", "forged0", "forged1", "forged2", "forged3", "other-key", "other-token", "x"]


def _files(files: Any) -> Any:
    """Multipart parts as httpx sends them: a drawn part that is a number, null or a list (the
    negative generation mode draws them for a file field) goes as its text."""
    if not files:
        return files

    def part(value: Any) -> Any:
        if isinstance(value, tuple):
            return (value[0], part(value[1]), *value[2:])
        return value if isinstance(value, (bytes, str)) else json.dumps(value).encode()

    items = files.items() if isinstance(files, dict) else files
    return [(name, part(value)) for name, value in items]


def test_drawn_requests_never_crash_the_server(live: Live) -> None:
    schema = schemathesis.openapi.from_dict(document())
    ops = {(path, method): op for path, method, op in _operations()}
    strategies = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.path, operation.method.lower()) in ops:
            strategies += [operation.as_strategy(generation_mode=mode) for mode in GenerationMode]
    sent = {"n": 0}

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the budget holds when a draw fails too
    )
    @given(case=st.one_of(strategies), variant=st.sampled_from(VARIANTS))
    def run(case: Any, variant: str) -> None:
        op = ops[(case.operation.path, case.method.lower())]
        _loopback_tasks(case)
        kwargs = case.as_transport_kwargs(base_url=live.url)
        headers = {k: v for k, v in kwargs.get("headers", {}).items() if k.lower() != "x-schemathesis-testcaseid"}
        if variant != "valid" or op["x-sb-access"] != "none":
            headers = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "sb-public-key")}
            headers.update(live.headers(op["x-sb-access"], variant))
        content = kwargs.get("data")
        if "json" in kwargs:
            content = json.dumps(kwargs["json"], default=str).encode("utf-8", "surrogatepass")
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogatepass")
        if isinstance(content, dict):  # form bodies
            content = httpx.QueryParams(content).__str__().encode()
        r = _send(
            live,
            kwargs["method"],
            kwargs["url"],
            params=kwargs.get("params"),
            headers=headers,
            content=content,
            files=_files(kwargs.get("files")),
        )
        check(
            r,
            op,
            f"{kwargs['method']} {kwargs['url']} {variant} params={kwargs.get('params')} body={content!r:.300}",
            live,
        )
        sent["n"] += 1
        if sent["n"] % PING_EVERY == 0:
            live.ping()

    run()
    live.ping()
    assert sent["n"] >= min(EXAMPLES, 100)


def _sample(path: str, values: dict[str, str] | None = None) -> str:
    out = path
    for name, value in (values or {}).items():
        out = out.replace("{" + name + "}", value)
    import re

    return re.sub(r"\{[^}]+\}", "sample", out)


_DEEP = b"[" * 5000 + b"]" * 5000
HOSTILE_BODIES: list[bytes] = [
    b"",
    b"{",
    b"[1, 2",
    b"\xff\xfe\x00{",
    b'{"a": NaN}',
    b'{"a": Infinity}',
    b'{"a": 1e999}',
    b'{"a": 123456789012345678901234567890}',
    b'{"a": -123456789012345678901234567890}',
    b'"a string"',
    b"12",
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"[[]]",
    b'[{"a": 1}, 2, "x"]',
    _DEEP,
    b'{"a": "\\ud800"}',
    b'{"__proto__": {"admin": true}, "constructor": {"prototype": 1}}',
    b'{"a.b.c": 1, "$set": {"role": 100}, "$where": "1", "id": "forged", "accountId": "forged", "sb_owner": "x"}',
    b'{"a\\u0000b": 1, "": 2, "\\u202e": 3}',
    b'{"\'; DROP TABLE sb_users; --": 1, "a\\"b": 2, "`x`": 3}',
    orjson.dumps({"k" * 20000: 1}),
    orjson.dumps({f"f{i}": i for i in range(3000)}),
    b'{"email": 1, "password": [], "field": {}, "range": "1", "col": 5, "keywords": null}',
    b'{"email": "a@b.c", "password": "x", "range": 1.5, "field": "n", "origins": "http://x"}',
    b'{"origins": [1, null, "javascript:alert(1)", "http://" , "*"], "channel": "db-x", "type": "db_created"}',
    b'{"update": [], "clauses": {}}',
    b'{"update": {"a": 1}, "clauses": [["a", "=~", 1]]}',
    b'{"update": {"a": 1}, "clauses": [["a", "LIKE", "%"], ["b"], [1, "==", 2], ["c", "in", 5]]}',
    b'[["a", "=~", 1]]',
    b'[["a", "==", {"$gt": 1}], ["b", "in", [[]]], ["c", "!in", "x"]]',
    b'[["' + b"x" * 5000 + b'", "==", 1]]',
    b'[["a", "==", 1]' + b', ["a", "==", 1]' * 2000 + b"]",
    b'["id1", 2, null, {"a": 1}]',
    b'{"name": "x", "type": "function", "value": "x", "interval": "* * * * * * * *"}',
    b'{"name": "x", "type": "nope", "value": "", "interval": "61 25 * * *"}',
    b'{"name": "", "trigger": "", "code": "function handle() {"}',
    b'{"customRate": -1, "concurrency": 0, "tasks": 99999999999, "bogus": 1}',
    b'{"sid": 5, "type": {"a": 1}, "data": [1], "channel": [], "token": 7}',
]
HOSTILE_NAMES = [
    "..",
    "../../etc/passwd",
    "sb_users",
    "sb_tokens",
    "a;drop table x",
    "x%00y",
    "%2e%2e",
    "\u00e9\u202e",
    "a" * 3000,
    "pub_../x",
    "col'--",
    "_ro_",
    "count",
    "index",
]


def _distinct(ops: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, str, dict[str, Any]]]:
    """One method of each handler: an operation documented for several methods is sent once."""
    seen: set[tuple[str, int]] = set()
    out = []
    for path, method, op in ops:
        if (path, id(op)) not in seen:
            seen.add((path, id(op)))
            out.append((path, method, op))
    return out


def _body_ops() -> list[tuple[str, str, dict[str, Any]]]:
    return _distinct([(p, m, op) for p, m, op in _operations() if m not in ("get", "head")])


def test_hostile_requests_get_a_reason_not_a_crash(live: Live) -> None:
    sent = 0
    for j, (path, method, op) in enumerate(_body_ops()):
        url = _sample(path)
        for i, body in enumerate(HOSTILE_BODIES):
            if len(body) > 2000 and (i + j) % 4:
                continue  # heavy bodies rotate over the operations: each op gets some, the budget holds
            # the route's own credential, and every third body the root token too
            for headers in [live.headers(op["x-sb-access"], "valid")] + (
                [live.headers("root", "root")] if i % 3 == 0 else []
            ):
                r = _send(live, method, url, headers={**headers, "Content-Type": "application/json"}, content=body)
                check(r, op, f"{method.upper()} {url} body={body[:120]!r}", live)
                sent += 1
        live.ping()
    huge = b'{"a": "' + b"x" * (BODY_LIMIT + 10) + b'"}'
    for path, method, op in _body_ops()[::3]:
        url = _sample(path)
        r = _send(live, method, url, headers=live.headers(op["x-sb-access"], "valid"), content=huge)
        check(r, op, f"{method.upper()} {url} huge body", live)
        assert r.status_code in (413, 405, 401, 400, 404, 501) or r.status_code < 300, (url, r.status_code, r.text)
    live.ping()
    names = [n for n in HOSTILE_NAMES]
    for path, method, op in _distinct(_operations()):
        if "{" not in path:
            continue
        for name in names:
            url = _sample(path, {"collection": name, "id": name, "name": name, "form": name})
            for variant in ("valid", "root"):
                headers = live.headers(op["x-sb-access"] if variant == "valid" else "root", variant)
                body = b'{"a": 1}' if method in ("post", "put", "patch") else None
                r = _send(live, method, url, headers=headers, content=body)
                check(r, op, f"{method.upper()} {url!r:.200} {variant}", live)
                sent += 1
    live.ping()
    for path, method, op in _distinct(_operations()):
        url = _sample(path)
        for i in range(len(FORGED)):
            r = _send(live, method, url, headers=live.headers(op["x-sb-access"], f"forged{i}"), content=b"{}")
            check(r, op, f"{method.upper()} {url} forged{i}", live)
            if op["x-sb-access"] in ("user", "root") and not path.startswith("/db/pub_"):
                assert r.status_code >= 400, f"{method.upper()} {url} accepted forged token {i}: {r.text[:200]}"
        for variant in ("other-key", "other-token", "x"):
            r = _send(live, method, url, headers=live.headers(op["x-sb-access"], variant), content=b"{}")
            check(r, op, f"{method.upper()} {url} {variant}", live)
            if variant == "other-token" and op["x-sb-access"] == "root":
                assert r.status_code >= 400, f"{method.upper()} {url}: another app's root token accepted"
    bulk = base64.b64encode(b'[["a", "=~", 1]]').decode()
    for query in (f"bulk=1&x={bulk}", "bulk=1&x=!!!notbase64", "bulk=1&x=" + "A" * 10001, "bulk=1&x=W10"):
        r = _send(live, "DELETE", "/db/fuzzcol?" + query, headers=live.headers("user", "valid"))
        check(r, {"responses": {}}, f"DELETE /db/fuzzcol?{query:.80}", live)
    for query in ("page=-1&size=0", "page=99999999999999999999&size=abc", "sort=%00&desc=1", "size=1000000000"):
        r = _send(live, "GET", "/db/fuzzcol?" + query, headers=live.headers("user", "valid"))
        check(r, {"responses": {}}, f"GET /db/fuzzcol?{query}", live)
    live.ping()
    assert sent > 500
