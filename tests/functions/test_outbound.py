"""The outbound guard (sbserver/outbound.py) seen through a real function ``fetch`` and a real http task.

Any visitor can create an app (``/account/init``), so a function's ``fetch`` and an http task's
URL are an attacker's choice. These tests aim both at every kind of non-public destination and
check that nothing arrives: recording servers listen on 127.0.0.1, 127.0.0.2 and [::1], and each
test ends by sending a marker request of its own to them, so "nothing arrived" is read after a
request that did. Redirects, the allow list (``fetch_allow`` = ``SB_FETCH_ALLOW``), the size and
time limits and cookie isolation between tenants are covered the same way.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sbserver.outbound import AllowList, Outbound, OutboundError, Refused
from tests.functions.conftest import InProcess, MakeFn
from tests.functions.support import FnApi, logged, unique
from tests.scheduler.support import TaskApi

pytestmark = pytest.mark.asyncio(loop_scope="session")

REFUSED = "destination refused"
# A self-signed certificate naming localhost only.
OPENSSL_SELF_SIGNED = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
OPENSSL_SELF_SIGNED += ["-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"]
FETCH_ALL = """function handle(body) {
  for (var i = 0; i < body.urls.length; i++) { log(JSON.stringify(fetch(body.urls[i], body.options || {}))); }
}"""


class Recorder:
    """An HTTP server on one loopback address, recording each request's path and headers.

    ``/redirect?to=U`` answers 302 to U, ``/loop`` redirects to itself; ``/set-cookie?v=X`` sets cookie ``sid=X``; ``/endless``
    streams without a length until the client hangs up; ``/declared`` announces 5,000 bytes;
    ``/drip`` sends one byte every 0.1 s for 10 s; ``/hang`` answers nothing until released.
    Anything else answers 200 ``hello <path>``.
    """

    def __init__(self, host: str) -> None:
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                recorder.requests.append({"path": url.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
                try:
                    self._answer(url.path, query)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: what the size and time limits do

            do_POST = do_PUT = do_GET

            def _answer(self, path: str, query: dict[str, str]) -> None:
                if path in ("/redirect", "/loop"):
                    self.send_response(302)
                    self.send_header("Location", query.get("to", "/loop"))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif path == "/endless":
                    self.send_response(200)
                    self.end_headers()  # HTTP/1.0 without a length: the body ends when the server closes
                    chunk = b"x" * 16384
                    for _ in range(4096):  # 64 MiB at most
                        self.wfile.write(chunk)
                elif path == "/declared":
                    self.send_response(200)
                    self.send_header("Content-Length", "5000")
                    self.end_headers()
                    self.wfile.write(b"y" * 5000)
                elif path == "/drip":
                    self.send_response(200)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    for _ in range(100):
                        self.wfile.write(b"z")
                        self.wfile.flush()
                        if recorder.release.wait(0.1):
                            return
                elif path == "/hang":
                    recorder.release.wait(10)
                else:
                    answer = f"hello {path}".encode()
                    self.send_response(200)
                    if path == "/set-cookie":
                        self.send_header("Set-Cookie", f"sid={query['v']}; Path=/")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("Server", (ThreadingHTTPServer,), {"address_family": family})
        self.server = server_class((host, 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Servers:
    def __init__(self) -> None:
        self.v4 = Recorder("127.0.0.1")
        self.other = Recorder("127.0.0.2")  # loopback too, but outside the tests' 127.0.0.1/32
        self.v6 = Recorder("::1")
        self.all = (self.v4, self.other, self.v6)

    def since(self) -> list[int]:
        return [len(s.requests) for s in self.all]

    async def nothing_arrived_since(self, marks: list[int], skip: Recorder | None = None) -> None:
        """Send a marker to each server (but ``skip``); it must be the only request each got since ``marks``."""
        marker = "/marker-" + unique()
        watched = [(server, mark) for server, mark in zip(self.all, marks, strict=True) if server is not skip]
        async with httpx.AsyncClient(timeout=10) as http:
            for server, _ in watched:
                assert (await http.get(server.url + marker)).status_code == 200
        for server, mark in watched:
            assert server.paths()[mark:] == [marker], f"{server.url} was reached: {server.requests[mark:]}"


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    opened = Servers()
    yield opened
    for server in opened.all:
        server.close()


def attack_urls(s: Servers) -> list[str]:
    """One URL per kind of non-public destination; those with a port reach a recorder if let through."""
    p4, p6 = s.v4.port, s.v6.port
    return [
        f"http://127.0.0.1:{p4}/loopback",
        f"http://0.0.0.0:{p4}/unspecified",
        f"http://[::]:{p6}/unspecified6",
        "http://10.1.2.3:9/private10",
        "http://172.16.0.1:9/private172",
        "http://192.168.1.1:9/private192",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1:9/cgnat",
        f"http://[::1]:{p6}/loopback6",
        "http://[fe80::1]:9/linklocal6",
        "http://[fc00::1]:9/uniquelocal6",
        f"http://[::ffff:127.0.0.1]:{p4}/mapped",
        "http://[64:ff9b::a9fe:a9fe]:9/nat64-metadata",
        "http://[2002:a00:1::]:9/6to4-private",
        "http://224.0.0.1:9/multicast",
        "http://255.255.255.255:9/broadcast",
        f"http://2130706433:{p4}/decimal",
        f"http://0x7f000001:{p4}/hex",
        f"http://127.1:{p4}/short",
        f"http://localhost:{p4}/name",
        f"https://localhost:{p4}/tls",
    ]


async def run_fetches(fn: FnApi, urls: list[str], options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    name = unique("fetch")
    await fn.add_ok(name, "web", FETCH_ALL)
    user = await fn.register()
    run = await fn.exec_ok(name, user.jwt, {"urls": urls, "options": options or {}})
    assert run["success"], run
    results: list[dict[str, Any]] = logged(run)
    assert len(results) == len(urls), run
    return results


def tasks_of(fn: FnApi, env: InProcess) -> TaskApi:
    return TaskApi(env.server.client, fn.pk, fn.root)


async def run_task(api: TaskApi, url: str, meta: Any = "") -> dict[str, Any]:
    """Create an hourly http task to ``url`` (a GET) and run it now; its recorded run."""
    meta = meta or {"method": "GET"}
    task = await api.add_task(unique("h"), "http", url, "@every 1h", json.dumps(meta))
    run: dict[str, Any] = await api.ok("POST", f"/task/{task['id']}/run")
    return run


async def test_fetch_and_http_tasks_refuse_every_non_public_destination(make_fn: MakeFn, servers: Servers) -> None:
    urls = attack_urls(servers)
    marks = servers.since()
    async with make_fn(fetch_allow=()) as env:
        for url, result in zip(urls, await run_fetches(env.api, urls), strict=True):
            assert result["ok"] is False, (url, result)
            assert result["content"].startswith(f"error calling fetch(): {REFUSED}: "), (url, result)
        api = tasks_of(env.api, env)
        for url in urls:
            run = await run_task(api, url)
            assert run["outcome"] == "failed" and run["error"].startswith(f"request failed: {REFUSED}: "), (url, run)
    await servers.nothing_arrived_since(marks)


async def test_refusals_say_what_the_destination_is(make_fn: MakeFn, servers: Servers) -> None:
    cases = {
        "http://169.254.169.254/latest/meta-data/": "169.254.169.254 is not a public address (link-local)",
        "http://100.64.0.1/": "(shared (carrier-grade NAT))",
        f"http://localhost:{servers.v4.port}/": "localhost resolves to 127.0.0.1, which is not a public address (loopback)",
        "http://2130706433/": "2130706433 resolves to 127.0.0.1",
        "http://[::ffff:10.0.0.1]/": "(private, as 10.0.0.1)",
        "http://[fc00::1]/": "(unique-local)",
        "http://224.0.0.1/": "(multicast)",
        "file:///etc/passwd": "unsupported URL scheme 'file': only http and https URLs can be requested",
    }
    async with make_fn(fetch_allow=()) as env:
        results = await run_fetches(env.api, list(cases))
    for (url, expected), result in zip(cases.items(), results, strict=True):
        assert result["ok"] is False and expected in result["content"], (url, result)
        if url.startswith("http"):
            assert result["content"].endswith("(SB_FETCH_ALLOW opens chosen hosts and networks)"), result


async def test_the_allow_list_opens_a_host_name_or_a_network(make_fn: MakeFn, servers: Servers) -> None:
    # By name: localhost is opened, the same address spelled as a number is not.
    async with make_fn(fetch_allow=("localhost",)) as env:
        by_name, by_address = await run_fetches(
            env.api, [f"http://localhost:{servers.v4.port}/by-name", f"http://127.0.0.1:{servers.v4.port}/by-address"]
        )
        assert by_name == {"ok": True, "content": {"status": 200, "body": "hello /by-name"}}, by_name
        assert by_address["ok"] is False and REFUSED in by_address["content"], by_address
        assert servers.v4.requests[-1]["headers"]["host"] == f"localhost:{servers.v4.port}"
    # By network: ::1/128 opens [::1] and nothing else on the loopback.
    async with make_fn(fetch_allow=("::1/128",)) as env:
        api = tasks_of(env.api, env)
        opened = await run_task(api, servers.v6.url + "/v6-task")
        closed = await run_task(api, servers.other.url + "/other-task")
    assert opened["outcome"] == "success" and opened["output"] == ["HTTP 200"], opened
    assert closed["outcome"] == "failed" and REFUSED in closed["error"], closed
    assert "/v6-task" in servers.v6.paths() and "/other-task" not in servers.other.paths()


async def test_redirects_to_private_addresses_are_refused(env: InProcess, servers: Servers) -> None:
    """The tests' servers allow 127.0.0.1/32 only: a redirect from it to elsewhere is checked again."""
    fn = env.api
    api = tasks_of(fn, env)
    base = servers.v4.url + "/redirect?to="
    private = [
        servers.other.url + "/secret",
        servers.v6.url + "/secret",
        "http://169.254.169.254/latest/meta-data/",
        f"http://2130706434:{servers.other.port}/secret",  # 127.0.0.2 spelled as a number
    ]
    marks = servers.since()
    # fetch does not follow redirects (spec): the 302 is the answer, its target is never asked.
    for result in await run_fetches(fn, [base + target for target in private]):
        assert result["ok"] is True and result["content"]["status"] == 302, result
    # http tasks follow them, each hop checked.
    for target in private:
        run = await run_task(api, base + target)
        assert run["outcome"] == "failed" and run["error"].startswith(f"request failed: {REFUSED}: "), run
    await servers.nothing_arrived_since(marks, skip=servers.v4)  # v4 answered the redirects
    # A redirect to an allowed address is followed.
    run = await run_task(api, base + servers.v4.url + "/landing")
    assert run["outcome"] == "success" and run["output"] == ["HTTP 200"], run
    assert servers.v4.paths()[-2:] == ["/redirect", "/landing"]
    # A redirect loop ends.
    run = await run_task(api, servers.v4.url + "/loop")
    assert run == {**run, "outcome": "failed", "error": "request failed: too many redirects (more than 5)"}, run


async def test_no_cookie_travels_from_one_tenant_to_another(env: InProcess, servers: Servers) -> None:
    first = env.api
    second = await first.new_app()
    secret = unique("sid")
    [set_cookie] = await run_fetches(first, [f"{servers.v4.url}/set-cookie?v={secret}"])
    assert set_cookie["ok"] is True, set_cookie
    await run_fetches(second, [servers.v4.url + "/other-tenant"])
    await run_fetches(first, [servers.v4.url + "/same-tenant-later"])
    await run_task(tasks_of(second, env), servers.v4.url + "/other-tenant-task")
    seen = {r["path"]: r["headers"] for r in servers.v4.requests}
    for path in ("/other-tenant", "/same-tenant-later", "/other-tenant-task"):
        assert "cookie" not in seen[path], (path, seen[path])


async def test_size_and_time_limits(make_fn: MakeFn, servers: Servers) -> None:
    async with make_fn(fetch_allow=("127.0.0.1",), fetch_max_bytes=1000, fetch_timeout=0.5) as env:
        url = servers.v4.url
        start = time.monotonic()
        endless, declared, small, drip, hang = await run_fetches(
            env.api, [url + "/endless", url + "/declared", url + "/small", url + "/drip", url + "/hang"]
        )
        took = time.monotonic() - start
        api = tasks_of(env.api, env)
        task_big = await run_task(api, url + "/endless")
        task_slow = await run_task(api, url + "/drip")
    too_large = "error calling fetch(): the response is larger than the 1000-byte limit"
    assert endless["ok"] is False and endless["content"] == too_large, endless
    assert declared["ok"] is False and declared["content"] == too_large + " (5000 bytes)", declared
    assert small == {"ok": True, "content": {"status": 200, "body": "hello /small"}}, small
    for result in (drip, hang):
        assert result == {"ok": False, "content": "error calling fetch(): timed out: no complete response within 0.5 s"}
    # Two 0.5 s limits plus the rest; without the limits the endless body alone takes far longer.
    assert took < 5, took
    assert task_big["outcome"] == "failed" and task_big["error"] == "request failed: " + too_large.split(": ", 1)[1]
    assert task_slow["outcome"] == "failed" and "timed out" in task_slow["error"], task_slow


@pytest.fixture(scope="module")
def tls_localhost(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, list[str]]]:
    """An HTTPS server on 127.0.0.1 whose certificate names only ``localhost``; its port, the
    certificate and the server names (SNI) clients sent."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [*OPENSSL_SELF_SIGNED, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    names: list[str] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: names.append(name or "")  # type: ignore[assignment]
    recorder = Recorder("127.0.0.1")
    recorder.server.socket = context.wrap_socket(recorder.server.socket, server_side=True)
    yield recorder.port, cert, names
    recorder.close()


async def test_tls_keeps_the_name_while_connecting_to_the_checked_address(
    tls_localhost: tuple[int, Path, list[str]],
) -> None:
    """The connection goes to the address checked for ``localhost``; SNI and the certificate check use the name."""
    port, cert, names = tls_localhost
    trusted = ssl.create_default_context(cafile=str(cert))
    client = Outbound(AllowList.parse(["127.0.0.1"]), ssl_context=trusted)
    reply = await client.request("GET", f"https://localhost:{port}/secure")
    assert (reply.status, reply.text, names[-1]) == (200, "hello /secure", "localhost")
    # The certificate does not name 127.0.0.1: asked by address, the check fails (it is not skipped).
    with pytest.raises(OutboundError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        await client.request("GET", f"https://127.0.0.1:{port}/by-address")
    # Not opened, the same server is refused before any connection.
    before = len(names)
    with pytest.raises(Refused, match=r"localhost resolves to 127\.0\.0\.1"):
        await Outbound(ssl_context=trusted).request("GET", f"https://localhost:{port}/closed")
    assert len(names) == before
