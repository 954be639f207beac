"""Spec 10 items 51-66 and 68-70: running functions through /fn/exec and the helpers they call.

A function reports what it saw with ``log(JSON.stringify(...))``; the test reads the line back
from the recorded run. /fn/exec failures are 500 with StaticBackend's texts (spec 05 §2).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import pytest

from tests.functions.conftest import InProcess, MakeFn
from tests.functions.local_http import LocalHTTP
from tests.functions.support import RFC3339, ZERO_TIME, FnApi, logged, unique

# The shared in-process server lives in the session's event loop (see conftest).
pytestmark = pytest.mark.asyncio(loop_scope="session")

REPORT_ARGS = """function handle(body, qs, headers) {
  log(JSON.stringify({n: arguments.length, body: body, qs: qs,
                      ct: headers["Content-Type"], pk: headers["Sb-Public-Key"]}));
}"""


async def report(fn: FnApi, code: str, body: Any = None, name: str = "", **kw: Any) -> list[Any]:
    """Add ``code`` as a web function, run it as a new user, return the JSON values it logged."""
    name = name or unique("f")
    await fn.add_ok(name, "web", code)
    user = await fn.register()
    run = await fn.exec_ok(name, user.jwt, body, **kw)
    assert run["success"], run
    return logged(run)


async def test_f51_exec_passes_the_json_body_and_answers_empty_200(fn: FnApi) -> None:
    [seen] = await report(fn, REPORT_ARGS, {"a": 1})
    assert seen["n"] == 3 and seen["body"] == {"a": 1}, seen
    assert seen["pk"] == [fn.pk], seen


async def test_f52_query_values_and_headers_are_arrays(fn: FnApi) -> None:
    [seen] = await report(fn, REPORT_ARGS, {"a": 1}, params=[("x", "1"), ("x", "2")])
    assert seen["qs"] == {"x": ["1", "2"]}, seen
    assert seen["ct"] == ["application/json"], seen


async def test_f53_json_with_a_charset_parameter_is_parsed(fn: FnApi) -> None:
    [seen] = await report(
        fn, REPORT_ARGS, content=b'{"a":2}', headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert seen["body"] == {"a": 2}, seen
    assert seen["ct"] == ["application/json; charset=utf-8"], seen


async def test_f54_form_fields_are_joined_with_comma_space(fn: FnApi) -> None:
    [seen] = await report(
        fn, REPORT_ARGS, content=b"a=1&a=2&b=z", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert seen["body"] == {"a": "1, 2", "b": "z"}, seen
    assert seen["n"] == 3


async def test_f51_other_bodies_are_a_string_and_empty_json_is_null(fn: FnApi) -> None:
    name = unique("f")
    await fn.add_ok(name, "web", REPORT_ARGS)
    user = await fn.register()
    run = await fn.exec_ok(name, user.jwt, content=b"plain words", headers={"Content-Type": "text/plain"})
    assert logged(run)[0]["body"] == "plain words" and logged(run)[0]["n"] == 3, run
    run = await fn.exec_ok(name, user.jwt, content=b"", headers={"Content-Type": "application/json"})
    assert logged(run)[0]["body"] is None, run


async def test_f51_a_malformed_json_body_is_refused_before_the_run(fn: FnApi) -> None:
    """Spec 05 §2 says 500 ``error preparing argument: ...``; decision 3 makes bad input 400."""
    name = unique("f")
    await fn.add_ok(name, "web", REPORT_ARGS)
    user = await fn.register()
    r = await fn.exec(name, user.jwt, content=b'{"a":', headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.text.startswith("error preparing argument: ") and r.text.count("\n") == 1, r.text


async def test_f55_exec_of_a_missing_function_is_refused(fn: FnApi) -> None:
    """Spec 10 says 500; decision 3 of spec 00 makes a missing function 404 (as /fn/info)."""
    user = await fn.register()
    r = await fn.exec("nosuchfn", user.jwt, {})
    assert r.status_code == 404, r.text
    assert "not found" in r.text


async def test_f55_exec_of_code_without_handle_is_500(env: InProcess) -> None:
    """The save-time check refuses such code, so it is stored directly (code saved by an older version)."""
    from sbserver.types import FunctionDef

    fn = env.api
    await env.store.create_function(
        await env.base(), FunctionDef("id-f55", "f55", "web", "function main() {}", 1, "2024-01-01T00:00:00Z")
    )
    user = await fn.register()
    r = await fn.exec("f55", user.jwt, {})
    assert r.status_code == 500, r.text
    assert r.text == 'unable to find function "handle"\n'
    runs = await fn.runs("f55", 1)
    assert runs[0]["success"] is False
    assert runs[0]["output"] == ["Function started", 'unable to find function "handle"'], runs


async def test_f55_exec_of_throwing_code_is_500(fn: FnApi) -> None:
    await fn.add_ok("f55throw", "web", 'function handle() { throw new Error("boom55"); }')
    user = await fn.register()
    r = await fn.exec("f55throw", user.jwt, {})
    assert r.status_code == 500, r.text
    assert r.text.startswith("error executing your function:"), r.text
    assert "boom55" in r.text and r.text.endswith("\n") and r.text.count("\n") == 1


async def test_f56_a_successful_run_is_recorded(fn: FnApi) -> None:
    await fn.add_ok("f56", "web", 'function handle() { log("middle"); }')
    assert (await fn.info("f56"))["lastRun"] == ZERO_TIME
    user = await fn.register()
    run = await fn.exec_ok("f56", user.jwt, {})
    assert run["success"] is True
    assert run["output"] == ["Function started", "middle", "Function completed"]
    assert run["version"] == 1 and run["functionId"] == (await fn.info("f56"))["id"]
    assert re.match(RFC3339, run["started"]) and re.match(RFC3339, run["completed"]), run
    assert run["started"] <= run["completed"]
    info = await fn.info("f56")
    assert info["lastRun"] != ZERO_TIME and re.match(RFC3339, info["lastRun"]), info
    # a second run lands last (history is oldest first)
    second = await fn.exec_ok("f56", user.jwt, {})
    history = (await fn.info("f56"))["history"]
    assert [h["id"] for h in history] == [run["id"], second["id"]]


async def test_f57_a_thrown_error_is_the_last_output_line(fn: FnApi) -> None:
    await fn.add_ok("f57", "web", 'function handle() { log("before"); null.x; }')
    user = await fn.register()
    r = await fn.exec("f57", user.jwt, {})
    assert r.status_code == 500, r.text
    [run] = await fn.runs("f57", 1)
    assert run["success"] is False
    assert run["output"][:2] == ["Function started", "before"], run
    assert "TypeError" in run["output"][-1], run
    assert r.text.rstrip("\n").endswith(run["output"][-1]), (r.text, run)


async def test_f58_log_joins_like_go_sprint(fn: FnApi) -> None:
    await fn.add_ok("f58", "web", 'function handle() { log("a", "b"); log(1, 2); log(); log("x", 1); }')
    user = await fn.register()
    run = await fn.exec_ok("f58", user.jwt, {})
    assert run["output"] == ["Function started", "ab", "1 2", "x1", "Function completed"], run


async def test_f59_create_and_its_argument_check(fn: FnApi) -> None:
    code = 'function handle() { log(JSON.stringify(create("col59", {x: 1}))); log(JSON.stringify(create("col59"))); }'
    created, refused = await report(fn, code, {})
    assert created["ok"] is True, created
    assert created["content"]["x"] == 1 and created["content"]["id"] and created["content"]["accountId"], created
    assert refused["ok"] is False and refused["content"].startswith("argument missmatch"), refused


DB_TOUR = """function handle(body) {
  var col = body.col;
  var c = create(col, {x: 1, tag: "t"});
  var id = c.content.id;
  log(JSON.stringify(getById(col, id)));
  log(JSON.stringify(update(col, id, {x: 2})));
  log(JSON.stringify(query(col, [["x", "==", 2]])));
  log(JSON.stringify(list(col)));
  log(JSON.stringify(del(col, id)));
  log(JSON.stringify(getById(col, id)));
}"""


async def test_f60_database_helpers_answer_ok_with_documented_shapes(fn: FnApi) -> None:
    got, updated, queried, listed, deleted, gone = await report(fn, DB_TOUR, {"col": "col60"})
    assert got["ok"] and got["content"]["x"] == 1 and got["content"]["tag"] == "t", got
    doc_id = got["content"]["id"]
    assert updated["ok"] and updated["content"]["x"] == 2 and updated["content"]["id"] == doc_id, updated
    for page in (queried, listed):
        assert page["ok"], page
        assert {"page", "size", "total", "results"} <= set(page["content"]), page
        assert page["content"]["total"] == 1 and page["content"]["results"][0]["id"] == doc_id, page
    assert deleted == {"ok": True, "content": 1}, deleted
    assert gone["ok"] is False and gone["content"].startswith("error calling get(): "), gone


async def test_f60_list_without_params_returns_25(fn: FnApi) -> None:
    user = await fn.register()
    await fn.create_bulk(user.jwt, "col60b", [{"i": i} for i in range(30)])
    await fn.add_ok("f60", "web", 'function handle() { log(JSON.stringify(list("col60b"))); }')
    run = await fn.exec_ok("f60", user.jwt, {})
    [page] = logged(run)
    assert page["ok"], page
    assert page["content"]["page"] == 1 and page["content"]["size"] == 25 and page["content"]["total"] == 30
    assert [d["i"] for d in page["content"]["results"]] == list(range(25)), page


async def test_f61_list_honours_its_paging_parameters(fn: FnApi) -> None:
    user = await fn.register()
    await fn.create_bulk(user.jwt, "col61", [{"i": i} for i in range(5)])
    code = """function handle() {
      log(JSON.stringify(list("col61", {size: 2})));
      log(JSON.stringify(list("col61", {size: 2, page: 2})));
      log(JSON.stringify(query("col61", [["i", ">=", 0]], {size: 2, sortBy: "i", sortDescending: true})));
    }"""
    await fn.add_ok("f61", "web", code)
    run = await fn.exec_ok("f61", user.jwt, {})
    first, second, desc = logged(run)
    assert [d["i"] for d in first["content"]["results"]] == [0, 1], first
    assert [d["i"] for d in second["content"]["results"]] == [2, 3], second
    assert [d["i"] for d in desc["content"]["results"]] == [4, 3], desc


async def test_f62_exec_creates_with_the_callers_account(fn: FnApi) -> None:
    await fn.add_ok("f62", "web", 'function handle() { log(JSON.stringify(create("items62", {v: 1}))); }')
    user = await fn.register()
    run = await fn.exec_ok("f62", user.jwt, {})
    [created] = logged(run)
    assert created["content"]["accountId"] == user.account_id, created
    r = await fn.request("GET", f"/db/items62/{created['content']['id']}", user.jwt)
    assert r.status_code == 200 and r.json()["accountId"] == user.account_id, r.text
    other = await fn.register()
    r = await fn.request("GET", f"/db/items62/{created['content']['id']}", other.jwt)
    assert r.status_code >= 400, f"another account read the doc: {r.status_code} {r.text}"


async def test_f63_fetch_honours_method_headers_and_body(fn: FnApi, local_http: LocalHTTP) -> None:
    code = """function handle(body) {
      log(JSON.stringify(fetch(body.url, {method: "POST", headers: {"X-A": "1"}, body: "z"})));
      log(JSON.stringify(fetch(body.url + "?second=1", {method: "PUT", body: {k: "v"}})));
      log(JSON.stringify(fetch(body.url + "?third=1")));
    }"""
    posted, put, got = await report(fn, code, {"url": local_http.url + "/hook"})
    assert posted == {"ok": True, "content": {"status": 201, "body": "answer to POST"}}, posted
    assert put["content"]["status"] == 201 and got["content"]["body"] == "answer to GET", (put, got)
    first, second, third = local_http.requests[-3:]
    assert first["method"] == "POST" and first["path"] == "/hook" and first["body"] == "z", first
    assert first["headers"].get("x-a") == "1", first
    assert second["method"] == "PUT" and json.loads(second["body"]) == {"k": "v"}, second
    assert second["headers"].get("content-type") == "application/json", second
    assert third["method"] == "GET" and third["body"] == "", third


async def test_f64_fetch_without_url(fn: FnApi) -> None:
    await fn.add_ok("f64", "web", 'function handle() { log(JSON.stringify(fetch(""))); log(typeof fetch()); }')
    user = await fn.register()
    run = await fn.exec_ok("f64", user.jwt, {})
    assert json.loads(run["output"][1]) == {"ok": False, "content": "the url should not be blank"}, run
    assert run["output"][2] == "undefined", run


async def test_f65_cache_survives_between_runs(fn: FnApi) -> None:
    await fn.add_ok("f65set", "web", 'function handle() { log(JSON.stringify(cacheSet("k65", "v"))); }')
    code = 'function handle() { log(JSON.stringify(cacheGet("k65"))); log(JSON.stringify(cacheGet("missing65"))); }'
    await fn.add_ok("f65get", "web", code)
    user = await fn.register()
    [stored] = logged(await fn.exec_ok("f65set", user.jwt, {}))
    assert stored["ok"] is True, stored
    got, missing = logged(await fn.exec_ok("f65get", user.jwt, {}))
    assert got == {"ok": True, "content": "v"}, got
    assert missing == {"ok": True, "content": ""}, missing


async def test_f65_cache_keys_are_per_app(fn: FnApi) -> None:
    other = await fn.new_app()
    await fn.add_ok("f65a", "web", 'function handle() { cacheSet("shared65", "mine"); }')
    await other.add_ok("f65b", "web", 'function handle() { log(JSON.stringify(cacheGet("shared65"))); }')
    await fn.exec_ok("f65a", (await fn.register()).jwt, {})
    run = await other.exec_ok("f65b", (await other.register()).jwt, {})
    assert logged(run) == [{"ok": True, "content": ""}], run


async def test_f66_inc_and_dec(fn: FnApi) -> None:
    code = 'function handle() { log(JSON.stringify(inc("n66", 5))); log(JSON.stringify(dec("n66", 2))); }'
    up, down = await report(fn, code, {})
    assert up == {"ok": True, "content": 5}, up
    assert down == {"ok": True, "content": 3}, down


async def test_f68_send_mail_with_the_dev_provider_prints_it(fn: FnApi, capsys: pytest.CaptureFixture[str]) -> None:
    code = """function handle() {
      log(JSON.stringify(sendMail({from: "a@example.com", to: "b68@example.com", subject: "Hello 68",
                                   htmlBody: "<p>hi</p>", textBody: "text body 68"})));
    }"""
    [sent] = await report(fn, code, {})
    assert sent == {"ok": True} or sent == {"ok": True, "content": None}, sent
    out = capsys.readouterr().out
    assert "b68@example.com" in out and "Hello 68" in out, out


async def test_f69_an_infinite_loop_is_stopped_at_the_timeout(make_fn: MakeFn) -> None:
    async with make_fn(function_timeout=1.0) as env:
        fn = env.api
        await fn.add_ok("f69", "web", "function handle() { while (true) {} }")
        user = await fn.register()
        start = time.monotonic()
        r = await fn.exec("f69", user.jwt, {})
        took = time.monotonic() - start
        assert r.status_code == 500 and r.text == "function execution timed out\n", r.text
        assert 0.9 <= took < 8, took
        [run] = await fn.runs("f69", 1)
        assert run["success"] is False and run["output"][-1] == "function execution timed out", run
        # the server keeps serving functions after replacing the stuck worker
        await fn.add_ok("f69ok", "web", 'function handle() { log("still here"); }')
        assert (await fn.exec_ok("f69ok", user.jwt, {}))["output"][1] == "still here"


async def test_f70_no_set_timeout_and_no_require(fn: FnApi) -> None:
    code = "function handle() { log(JSON.stringify([typeof setTimeout, typeof setInterval, typeof require, typeof module])); }"
    [types] = await report(fn, code, {})
    assert types == ["undefined"] * 4, types


HELPER_NAMES = [
    "fetch",
    "sendMail",
    "create",
    "createBulk",
    "list",
    "query",
    "getById",
    "getByIds",
    "count",
    "update",
    "updateMany",
    "updateBulk",
    "incrementValue",
    "del",
    "deleteMany",
    "deleteBulk",
    "newId",
    "newID",
    "publish",
    "send",
    "cacheGet",
    "cacheSet",
    "inc",
    "dec",
    "search",
    "indexDocument",
    "deleteIndexDocument",
]


async def test_every_helper_is_reachable_by_a_computed_name(fn: FnApi) -> None:
    """The worker defines only the helpers code names, unless the code can compute a global's name."""
    code = """function handle() {
      var names = NAMES, g = globalThis, seen = {};
      for (var i = 0; i < names.length; i++) seen[names[i]] = typeof g[names[i]];
      log(JSON.stringify(seen));
      log(JSON.stringify(g["cre" + "ate"]("col_dyn", {x: 1}).ok));
    }""".replace("NAMES", json.dumps(HELPER_NAMES))
    seen, created = await report(fn, code, {})
    assert seen == {name: "function" for name in HELPER_NAMES}, seen
    assert created is True


async def test_a_helper_is_reachable_through_a_functions_constructor(fn: FnApi) -> None:
    """``handle.constructor`` is ``Function``: code using it can build any global's name."""
    code = """function handle() {
      var typeOf = function (name) { return handle.constructor("return typeof " + name)(); };
      log(JSON.stringify([typeOf("cre" + "ate"), typeOf("Ma" + "p")]));
    }"""
    [seen] = await report(fn, code, {})
    assert seen == ["function", "function"], seen


async def test_helpers_the_code_names_are_defined_and_work(fn: FnApi) -> None:
    code = 'function handle() { create("col_named", {x: 1}); log(JSON.stringify([typeof count, count("col_named").ok, typeof log])); }'
    [found] = await report(fn, code, {})
    assert found == ["function", True, "function"], found


BUILTIN_USES = {
    "map": "var m = new Map([[1, 2]]); var s = new Set([1, 1]); new WeakMap(); new WeakSet(); return [m.get(1), s.size];",
    "typed": "var a = new Uint8Array([1, 2, 300]); var v = new DataView(new ArrayBuffer(4)); v.setInt16(0, -2); return [a[2], v.getInt16(0), typeof BigInt64Array];",
    "proxy": "var p = new Proxy({}, {get: function (t, k) { return k + '!'; }}); return p.hi;",
    "promise": "var out = []; Promise.resolve(1).then(function (x) { out.push(x); }); return typeof Promise.all;",
    "bigint": "return String(2n ** 64n) + '/' + String(BigInt(7) * 6n);",
    "normalize": "return '\\u0065\\u0301'.normalize('NFC').length;",
    "regexp": "return 'a1b22'.replace(/\\d+/g, '#') + new RegExp('^a').test('ab');",
    "date": "return new Date(0).toISOString();",
    "computed": "return [typeof globalThis['Ma' + 'p'], typeof globalThis['Uint8' + 'Array'], typeof globalThis['Pro' + 'xy']];",
}


async def test_every_builtin_the_code_uses_is_there(fn: FnApi) -> None:
    """Contexts get only the built-ins code can reach (runtime/contexts.py): each one used here,
    by name, by syntax (async, BigInt literals) or by a computed name, must be present."""
    body = "\n".join(
        f"  try {{ out[{json.dumps(k)}] = (function () {{ {v} }})(); }} catch (e) {{ out[{json.dumps(k)}] = 'error: ' + e; }}"
        for k, v in BUILTIN_USES.items()
    )
    code = f"function handle() {{\n  var out = {{}};\n{body}\n  log(JSON.stringify(out));\n}}"
    [seen] = await report(fn, code, {})
    assert seen == {
        "map": [2, 1],
        "typed": [44, -2, "function"],
        "proxy": "hi!",
        "promise": "function",
        "bigint": "18446744073709551616/42",
        "normalize": 1,
        "regexp": "a#b#true",
        "date": "1970-01-01T00:00:00.000Z",
        "computed": ["function", "function", "function"],
    }, seen


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("async function handle() { var x = await 1; log(JSON.stringify([x, typeof Promise])); }", [1, "function"]),
        (
            "function handle() { log(JSON.stringify([String(12345678901234567890n), typeof 1n])); }",
            ["12345678901234567890", "bigint"],
        ),
        ("function handle() { var m = new Map(); m.set('k', 3); log(JSON.stringify([m.get('k')])); }", [3]),
    ],
    ids=["async-await", "bigint-literal", "map-alone"],
)
async def test_builtins_needed_by_syntax_alone_are_there(fn: FnApi, code: str, expected: list[Any]) -> None:
    [seen] = await report(fn, code, {})
    assert seen == expected


async def test_an_async_handle_runs_to_its_end_and_its_rejection_fails_the_run(fn: FnApi) -> None:
    """Promise jobs run after handle returns (as goja does), so an async handle's awaits complete;
    a promise it returns that rejects is the run's error."""
    name = unique("f")
    await fn.add_ok(
        name,
        "web",
        """async function handle() {
  var a = await Promise.resolve(2);
  log("after await", a);
  Promise.resolve().then(function () { log("later job"); });
  await null;
  throw new Error("boom after " + a);
}""",
    )
    user = await fn.register()
    r = await fn.exec(name, user.jwt, {})
    assert r.status_code == 500, r.text
    assert r.text == "error executing your function: Error: boom after 2 (line 6)\n", r.text
    [run] = await fn.runs(name, 1)
    assert run["success"] is False
    assert run["output"][1:3] == ["after await2", "later job"], run
    assert run["output"][-1] == "Error: boom after 2 (line 6)", run


async def test_log_lines_before_a_timeout_are_kept(make_fn: MakeFn) -> None:
    async with make_fn(function_timeout=1.0) as env:
        fn = env.api
        code = 'function handle() { log("first"); var t = Date.now(); while (Date.now() - t < 50) {} log("second"); while (true) {} }'
        await fn.add_ok("loglost", "web", code)
        user = await fn.register()
        r = await fn.exec("loglost", user.jwt, {})
        assert r.status_code == 500, r.text
        [run] = await fn.runs("loglost", 1)
        assert run["output"] == [
            "Function started",
            "first",
            "second",
            "Function completed",
            "function execution timed out",
        ], run


async def test_log_prints_values_like_go_sprint(fn: FnApi) -> None:
    """Objects, arrays, dates, null and numbers the way upstream's log (Go's fmt.Sprint) prints them."""
    code = r"""function handle() {
      log({b: 2, a: "x", n: null, list: [1, "y", true]});
      log("when", new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6)));
      log(1.5, 2, -0, 1e21, NaN, undefined, null, false);
      log([{z: 1}], "s", 3);
    }"""
    await fn.add_ok("flog", "web", code)
    user = await fn.register()
    run = await fn.exec_ok("flog", user.jwt, {})
    assert run["output"][1:5] == [
        "map[a:x b:2 list:[1 y true] n:<nil>]",
        "when2024-01-02 03:04:05.006 +0000 UTC",
        "1.5 2 0 1e+21 NaN <nil> <nil> false",
        "[map[z:1]]s3",
    ], run


async def test_helper_arguments_arrive_as_json_would_carry_them(fn: FnApi) -> None:
    """Integral numbers stay integers (Date.now() too), NaN is null, a cycle is a refused call."""
    code = r"""function handle() {
      var now = Date.now();
      var r = create("col_args", {now: now, big: 9007199254740993, half: 0.5, nan: NaN, list: [1, 2.0, -0]});
      var got = getById("col_args", r.content.id).content;
      log(JSON.stringify([got.now === now, got.big, got.half, got.nan, got.list]));
      var cyc = {}; cyc.self = cyc;
      var refused = create("col_args", cyc);
      log(JSON.stringify(refused.ok), refused.content);
      try { create("col_args", cyc); log("no throw"); } catch (e) { log("threw"); }
    }"""
    await fn.add_ok("fargs", "web", code)
    user = await fn.register()
    run = await fn.exec_ok("fargs", user.jwt, {})
    assert json.loads(run["output"][1]) == [True, 9007199254740992, 0.5, None, [1, 2, 0]], run
    assert run["output"][2].startswith("falseinvalid argument: TypeError: circular reference"), run
    assert run["output"][3] == "no throw", run
    r = await fn.request("GET", "/sudo/col_args", fn.root)
    [doc] = r.json()["results"]
    assert isinstance(doc["now"], int) and isinstance(doc["big"], int), doc


async def test_runs_waiting_on_fetch_overlap_even_with_one_cpu_slot(make_fn: MakeFn, local_http: LocalHTTP) -> None:
    """One run computes at a time (one CPU), but a run waiting on fetch gives its turn away."""
    # the app may use both workers (by default one app gets every worker but one)
    async with make_fn(function_workers=2, function_concurrency=1, function_app_concurrency=2) as env:
        fn = env.api
        code = 'function handle() { var r = fetch("URL/slow"); log(JSON.stringify(r.ok)); }'.replace(
            "URL", local_http.url
        )
        await fn.add_ok("fslow", "web", code)
        user = await fn.register()
        start = time.monotonic()
        runs = await asyncio.gather(*(fn.exec_ok("fslow", user.jwt, {}) for _ in range(2)))
        took = time.monotonic() - start
        assert [r["output"][1] for r in runs] == ["true", "true"], runs
        assert took < 1.5, f"two 0.8 s fetches took {took:.2f} s: they did not overlap"


async def test_more_runs_than_workers_all_waiting_on_fetch_do_not_deadlock(
    make_fn: MakeFn, local_http: LocalHTTP
) -> None:
    """A run waiting for an idle worker must not hold a CPU turn: the runs in their fetch need a
    turn back to go on, and they hold every worker."""
    async with make_fn(function_workers=2, function_concurrency=1, function_timeout=20) as env:
        fn = env.api
        code = 'function handle() { var r = fetch("URL/slow"); log(JSON.stringify(r.ok)); }'.replace(
            "URL", local_http.url
        )
        await fn.add_ok("fqueue", "web", code)
        user = await fn.register()
        runs = await asyncio.wait_for(asyncio.gather(*(fn.exec_ok("fqueue", user.jwt, {}) for _ in range(5))), 15)
        assert [r["output"][1] for r in runs] == ["true"] * 5, runs
