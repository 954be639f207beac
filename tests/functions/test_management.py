"""Spec 10 items 43-50, 89-91, 93-94: managing functions over HTTP, on every store kind.

Statuses follow decision 3 of spec 00: a missing function is 404, an existing name 409, code
refused at save 400; the texts are StaticBackend's where it has one.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.functions.conftest import InProcess
from tests.functions.support import ECHO_ARGS, JSON_TYPE, RFC3339, ZERO_TIME, FnApi, logged, unique
from tests.http.conftest import DEV_EMAIL, DEV_PASSWORD, DEV_PK

# The shared in-process server lives in the session's event loop (see conftest).
pytestmark = pytest.mark.asyncio(loop_scope="session")

LOG_V = 'function handle(channel, type, data) { log("%s"); }'
FIELDS = {"id", "accountId", "name", "trigger", "code", "version", "lastUpdated", "lastRun", "history"}


def assert_plain_error(r: httpx.Response, status: int, text: str | None = None, startswith: str | None = None) -> str:
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text!r}"
    assert r.text.endswith("\n") and r.text.count("\n") == 1, repr(r.text)
    line: str = r.text[:-1]
    if text is not None:
        assert line == text, repr(r.text)
    if startswith is not None:
        assert line.startswith(startswith), repr(r.text)
    return line


async def test_f43_add_returns_empty_200_and_lists_version_1(fn: FnApi) -> None:
    r = await fn.add("f43", "web", ECHO_ARGS)
    assert r.status_code == 200, r.text
    assert r.content == b""
    listed = await fn.functions()
    assert [f["name"] for f in listed] == ["f43"]
    assert listed[0]["version"] == 1 and listed[0]["trigger"] == "web" and listed[0]["code"] == ECHO_ARGS


async def test_f43_add_with_an_existing_name_is_409(fn: FnApi) -> None:
    await fn.add_ok("f43dup", "web", ECHO_ARGS)
    r = await fn.add("f43dup", "other", LOG_V % "second")
    assert_plain_error(r, 409, "function name already exists")
    info = await fn.info("f43dup")
    assert info["trigger"] == "web" and info["code"] == ECHO_ARGS and info["version"] == 1
    assert len(await fn.functions()) == 1


async def test_f43_syntax_error_at_save_is_400_with_the_line(fn: FnApi) -> None:
    code = "function handle(body) {\n  var x = ;\n}\n"
    r = await fn.add("f43syntax", "web", code)
    line = assert_plain_error(r, 400, startswith="invalid function code: SyntaxError: ")
    assert re.search(r"\(line 2\)$", line), line
    assert await fn.functions() == []
    assert (await fn.info_response("f43syntax")).status_code == 404


async def test_f43_code_without_handle_at_save_is_400(fn: FnApi) -> None:
    r = await fn.add("f43nohandle", "web", "function main(body) { log(body); }")
    line = assert_plain_error(r, 400, startswith="invalid function code: ")
    assert 'unable to find function "handle"' in line, line
    assert await fn.functions() == []


async def test_f44_add_with_a_user_session_token_is_400(fn: FnApi) -> None:
    user = await fn.register()
    r = await fn.request("POST", "/fn/add", user.jwt, json={"name": "f44", "trigger": "web", "code": ECHO_ARGS})
    assert_plain_error(r, 400)
    assert await fn.functions() == []


async def test_f45_info_has_every_field(fn: FnApi) -> None:
    await fn.add_ok("f45", "chan45", LOG_V % "x")
    info = await fn.info("f45")
    assert set(info) >= FIELDS, info
    assert info["name"] == "f45" and info["trigger"] == "chan45" and info["code"] == LOG_V % "x"
    assert info["version"] == 1
    assert re.match(RFC3339, info["lastUpdated"]), info
    assert info["lastRun"] == ZERO_TIME
    assert info["history"] == []
    assert "secrets" not in info or info["secrets"] == ""


async def test_f46_update_changes_code_and_trigger_and_bumps_version(fn: FnApi) -> None:
    before = await fn.add_ok("f46", "chan46", LOG_V % "v1")
    r = await fn.update({"id": before["id"], "trigger": "other46", "code": LOG_V % "v2"})
    assert r.status_code == 200, r.text
    assert r.content == b""
    after = await fn.info("f46")
    assert after["trigger"] == "other46" and after["code"] == LOG_V % "v2"
    assert after["version"] == 2
    assert after["lastUpdated"] >= before["lastUpdated"]
    r = await fn.update({"id": before["id"], "name": "f46", "trigger": "other46", "code": LOG_V % "v3"})
    assert r.status_code == 200, r.text
    assert (await fn.info("f46"))["version"] == 3


async def test_f46_update_of_an_unknown_id_is_refused(fn: FnApi) -> None:
    r = await fn.update({"id": "no-such-id", "trigger": "x", "code": LOG_V % "v"})
    assert r.status_code == 404, r.text


@pytest.mark.parametrize("route", ["del", "delete"])
async def test_f47_delete_by_both_routes_then_info_is_404_and_delete_again_is_200(fn: FnApi, route: str) -> None:
    await fn.add_ok("f47", "web", ECHO_ARGS)
    user = await fn.register()
    await fn.exec_ok("f47", user.jwt, {"a": 1})
    r = await fn.request("GET", f"/fn/{route}/f47", fn.root)
    assert r.status_code == 200, r.text
    assert r.content == b""
    r = await fn.info_response("f47")
    assert_plain_error(r, 404)
    assert await fn.functions() == []
    r = await fn.request("GET", f"/fn/{route}/f47", fn.root)
    assert r.status_code == 200, r.text
    # the name is free again, and the new function has no history of the old one
    info = await fn.add_ok("f47", "web", ECHO_ARGS)
    assert info["history"] == [] and info["version"] == 1


async def test_f48_function_added_after_a_message_on_its_channel_runs_on_the_next(fn: FnApi) -> None:
    user = await fn.register()
    channel = unique("c48")
    await fn.add_ok("sentinel", channel + "-s", LOG_V % "s")
    # a message on the channel with no function yet (upstream cached that lookup for 12 h)
    await fn.publish(user.jwt, channel, "chan_out", "first")
    await fn.publish(user.jwt, channel + "-s", "chan_out", "s")
    await fn.runs("sentinel", 1)
    await fn.add_ok("f48", channel, ECHO_ARGS)
    await fn.publish(user.jwt, channel, "chan_out", "second")
    runs = await fn.settled("f48", 1)
    assert runs[0]["success"], runs
    assert logged(runs[0]) == [{"n": 3, "a": channel, "b": "chan_out", "c": "second"}], runs


async def test_f48_db_trigger_added_after_a_write_runs_on_the_next_write(fn: FnApi) -> None:
    user = await fn.register()
    col = unique("col48")
    await fn.create(user.jwt, col, {"n": 1})
    await fn.add_ok("f48db", f"db-{col}", ECHO_ARGS)
    doc = await fn.create(user.jwt, col, {"n": 2})
    runs = await fn.settled("f48db", 1)
    [seen] = logged(runs[0])
    assert (seen["a"], seen["b"], seen["c"]["id"]) == (f"db-{col}", "db_created", doc["id"]), runs


async def test_f49_updated_code_runs_on_the_very_next_event(fn: FnApi) -> None:
    user = await fn.register()
    channel = unique("c49")
    first = await fn.add_ok("f49", channel, LOG_V % "v1")
    await fn.publish(user.jwt, channel, "chan_out", "1")
    runs = await fn.runs("f49", 1)
    assert runs[0]["output"][1] == "v1" and runs[0]["version"] == 1
    r = await fn.update({"id": first["id"], "trigger": channel, "code": LOG_V % "v2"})
    assert r.status_code == 200, r.text
    await fn.publish(user.jwt, channel, "chan_out", "2")
    runs = await fn.settled("f49", 2)
    assert runs[-1]["output"][1] == "v2" and runs[-1]["version"] == 2, runs
    # and a changed trigger takes effect at once too
    r = await fn.update({"id": first["id"], "trigger": channel + "b", "code": LOG_V % "v3"})
    assert r.status_code == 200, r.text
    await fn.publish(user.jwt, channel, "chan_out", "3")
    await fn.publish(user.jwt, channel + "b", "chan_out", "4")
    runs = await fn.settled("f49", 3)
    assert runs[-1]["output"][1] == "v3" and runs[-1]["version"] == 3, runs


async def test_f49_edited_db_trigger_code_runs_on_the_next_write(fn: FnApi) -> None:
    user = await fn.register()
    col = unique("col49")
    first = await fn.add_ok("f49db", f"db-{col}", LOG_V % "v1")
    await fn.create(user.jwt, col, {"n": 1})
    await fn.runs("f49db", 1)
    r = await fn.update({"id": first["id"], "trigger": f"db-{col}", "code": LOG_V % "v2"})
    assert r.status_code == 200, r.text
    await fn.create(user.jwt, col, {"n": 2})
    runs = await fn.settled("f49db", 2)
    assert [run["output"][1] for run in runs] == ["v1", "v2"], runs


async def test_f50_list_of_an_app_without_functions_is_empty_array(fn: FnApi) -> None:
    r = await fn.request("GET", "/fn", fn.root)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == JSON_TYPE
    assert r.text == "[]"


async def test_f89_json_answers_have_exactly_application_json(fn: FnApi) -> None:
    await fn.add_ok("f89", "web", ECHO_ARGS)
    user = await fn.register()
    for r in (
        await fn.request("GET", "/fn", fn.root),
        await fn.request("GET", "/fn/info/f89", fn.root),
        await fn.request("GET", "/sudolistall", fn.root),
        await fn.request("POST", "/login", json={"email": user.email, "password": "fn-pw-123456"}),
        await fn.request("POST", "/publish", user.jwt, json={"channel": "c89", "type": "t", "data": "x"}),
        await fn.request("POST", "/db/count/f89col", fn.root, json=None),
    ):
        assert r.status_code == 200, f"{r.request.url}: {r.status_code} {r.text}"
        assert r.headers["content-type"] == JSON_TYPE, f"{r.request.url}: {r.headers}"


async def test_f90_sudolistall_accepts_the_dev_root_token_alias(env: InProcess) -> None:
    """The calls ``backend login --dev`` makes (the real CLI runs them in test_tutorial)."""
    r = await env.server.client.get(
        "/sudolistall",
        headers={"SB-PUBLIC-KEY": DEV_PK, "Authorization": "Bearer safe-to-use-in-dev-root-token"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == JSON_TYPE
    assert isinstance(r.json(), list)


async def test_f91_dev_admin_login_returns_a_jwt(env: InProcess) -> None:
    r = await env.server.client.post(
        "/login", json={"email": DEV_EMAIL, "password": DEV_PASSWORD}, headers={"SB-PUBLIC-KEY": DEV_PK}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == JSON_TYPE
    token = r.json()
    assert isinstance(token, str) and token.count(".") == 2, token


async def test_f93_db_count_with_a_root_token(fn: FnApi) -> None:
    user = await fn.register()
    for i in range(3):
        await fn.create(user.jwt, "tasks", {"i": i})
    r = await fn.request("POST", "/db/count/tasks", fn.root, content=b"null", headers={"Content-Type": JSON_TYPE})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == JSON_TYPE
    assert r.json() == {"count": 3}
    r = await fn.request("POST", "/db/count/tasks", fn.root, json=[["i", ">=", 1]])
    assert r.status_code == 200, r.text
    assert r.json() == {"count": 2}


async def test_f94_secrets_are_stored_usable_and_never_shown(fn: FnApi) -> None:
    code = "function handle(body) { log(JSON.stringify({k: secrets.API_KEY, b: secrets.B})); }"
    r = await fn.add("f94", "web", code, secrets="API_KEY=x%20y&B=2")
    assert r.status_code == 200, r.text
    for shown in (await fn.info("f94"), (await fn.functions())[0]):
        assert shown.get("secrets", "") == "", shown
        assert "x y" not in str(shown) and "API_KEY=" not in str(shown)
    user = await fn.register()
    run = await fn.exec_ok("f94", user.jwt, {})
    assert run["output"][1] == '{"k":"x y","b":"2"}', run
    info = await fn.info("f94")
    r = await fn.update({"id": info["id"], "trigger": "web", "code": code, "secrets": "API_KEY=new"})
    assert r.status_code == 200, r.text
    run = await fn.exec_ok("f94", user.jwt, {})
    assert run["output"][1] == '{"k":"new"}', run
    assert (await fn.info("f94")).get("secrets", "") == ""


async def test_secrets_are_read_only_in_handle(fn: FnApi) -> None:
    code = """function handle() {
  secrets.API_KEY = "changed"; secrets.added = 1; delete secrets.API_KEY;
  log(JSON.stringify([secrets.API_KEY, secrets.added, Object.isFrozen(secrets)]));
}"""
    r = await fn.add("frozen", "web", code, secrets="API_KEY=kept")
    assert r.status_code == 200, r.text
    run = await fn.exec_ok("frozen", (await fn.register()).jwt, {})
    assert run["output"][1] == '["kept",null,true]', run


GOOD = "function handle() {}"
BAD_ADDS = [
    # (what is wrong, raw body or JSON value, status, the answer's first words)
    ("malformed JSON", b'{"name": "x", "trigger": ', 400, "invalid JSON body: "),
    ("an empty body", b"", 400, "invalid JSON body: EOF"),
    ("not an object", [1, 2], 400, "invalid JSON body: expected an object"),
    ("a name that is a number", {"name": 7, "trigger": "web", "code": GOOD}, 400, 'invalid field "name"'),
    ("code that is an object", {"name": "x", "trigger": "web", "code": {"a": 1}}, 400, 'invalid field "code"'),
    ("a trigger that is a list", {"name": "x", "trigger": ["web"], "code": GOOD}, 400, 'invalid field "trigger"'),
    (
        "secrets that are a number",
        {"name": "x", "trigger": "web", "code": GOOD, "secrets": 5},
        400,
        'invalid field "secrets"',
    ),
    ("no name", {"trigger": "web", "code": GOOD}, 400, "invalid function name"),
    ("a name with a slash", {"name": "../etc", "trigger": "web", "code": GOOD}, 400, "invalid function name"),
    ("a name with a space", {"name": "a b", "trigger": "web", "code": GOOD}, 400, "invalid function name"),
    ("a name of 101 characters", {"name": "n" * 101, "trigger": "web", "code": GOOD}, 400, "invalid function name"),
    ("a blank trigger", {"name": "x", "trigger": "  ", "code": GOOD}, 400, "invalid trigger: it must not be empty"),
    (
        "a trigger of 257 characters",
        {"name": "x", "trigger": "t" * 257, "code": GOOD},
        400,
        "invalid trigger: use at most 256",
    ),
    (
        "a trigger with a newline",
        {"name": "x", "trigger": "lob\nby", "code": GOOD},
        400,
        "invalid trigger: use at most 256",
    ),
    ("no code", {"name": "x", "trigger": "web"}, 400, "invalid function code: "),
    (
        "code over 1 MiB",
        {"name": "x", "trigger": "web", "code": GOOD + " " * (1 << 20)},
        400,
        "invalid function code: 1048596 bytes, at most 1048576",
    ),
    (
        "secrets over 64 KiB",
        {"name": "x", "trigger": "web", "code": GOOD, "secrets": "k=" + "v" * 65536},
        400,
        "invalid secrets: at most 65536 bytes",
    ),
]


@pytest.mark.parametrize(("wrong", "body", "status", "answer"), BAD_ADDS, ids=[b[0] for b in BAD_ADDS])
async def test_add_refuses_bad_input_with_the_reason_and_stores_nothing(
    fn: FnApi, wrong: str, body: object, status: int, answer: str
) -> None:
    if isinstance(body, bytes):
        r = await fn.request("POST", "/fn/add", fn.root, content=body)
    else:
        r = await fn.request("POST", "/fn/add", fn.root, json=body)
    assert_plain_error(r, status, startswith=answer)
    assert await fn.functions() == []
    assert (await fn.request("GET", "/ping")).status_code == 200


BAD_UPDATES = [
    ("no id", {"trigger": "web", "code": GOOD}, "missing function id"),
    ("an unknown id", {"id": "nope", "trigger": "web", "code": GOOD}, "function not found"),
    ("a blank trigger", {"trigger": "", "code": GOOD}, "invalid trigger: it must not be empty"),
    ("a trigger of 257 characters", {"trigger": "t" * 257, "code": GOOD}, "invalid trigger: use at most 256"),
    (
        "code that does not compile",
        {"trigger": "web", "code": "function handle( {"},
        "invalid function code: SyntaxError",
    ),
    ("code over 1 MiB", {"trigger": "web", "code": GOOD + " " * (1 << 20)}, "invalid function code: 1048596 bytes"),
    (
        "secrets over 64 KiB",
        {"trigger": "web", "code": GOOD, "secrets": "v" * 65537},
        "invalid secrets: at most 65536 bytes",
    ),
]


@pytest.mark.parametrize(("wrong", "body", "answer"), BAD_UPDATES, ids=[b[0] for b in BAD_UPDATES])
async def test_update_refuses_bad_input_and_leaves_the_function_as_it_was(
    fn: FnApi, wrong: str, body: dict, answer: str
) -> None:
    before = await fn.add_ok("fupd", "lobby", GOOD)
    fields = {"id": before["id"], **body} if wrong not in ("no id", "an unknown id") else body
    r = await fn.update(fields)
    status = 404 if wrong == "an unknown id" else 400
    assert_plain_error(r, status, startswith=answer)
    after = await fn.info("fupd")
    assert (after["trigger"], after["code"], after["version"]) == ("lobby", GOOD, 1)


@pytest.mark.parametrize(
    ("who", "status", "answer"),
    [
        ("a forged root token", 400, "invalid root token"),
        ("another app's public key", 404, "error finding database"),
    ],
)
async def test_add_with_a_forged_token_or_another_apps_key_stores_nothing(
    fn: FnApi, who: str, status: int, answer: str
) -> None:
    if who == "a forged root token":
        headers = {"SB-PUBLIC-KEY": fn.pk, "Authorization": f"Bearer {fn.root.split('|')[0]}|forged|token"}
    else:
        headers = {"SB-PUBLIC-KEY": "no-such-app", "Authorization": f"Bearer {fn.root}"}
    r = await fn.http.post(fn.url + "/fn/add", headers=headers, json={"name": "x", "trigger": "web", "code": GOOD})
    assert_plain_error(r, status, startswith=answer)
    assert await fn.functions() == []
