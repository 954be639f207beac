"""``backend db repo | list | get | create | update | delete | query | count`` against a real server,
each result checked through the HTTP API, and every way it can fail."""

from __future__ import annotations

import socket

from tests.cli.conftest import App, failed


def create(app: App, col: str, doc: dict[str, object]) -> dict[str, object]:
    created: dict[str, object] = app.api_ok("POST", f"/sudo/{col}", json=doc)
    return created


def test_create_then_get_update_delete(app: App) -> None:
    out = app.ok("db", "create", "tasks", '{"title":"write tests","done":false,"n":3}')
    lines = out.splitlines()
    assert lines[0] == "{" and lines[-1] == "}", out
    assert "\ttitle: write tests, " in lines and "\tdone: false, " in lines and "\tn: 3, " in lines, out
    doc_id = next(line for line in lines if line.startswith("\tid: "))[len("\tid: ") : -2]
    assert app.api_ok("GET", f"/sudo/tasks/{doc_id}")["title"] == "write tests"

    out = app.ok("db", "get", "tasks", doc_id)
    assert out.startswith("{ ") and f"id: {doc_id}" in out and "title: write tests" in out, out
    keys = [part.split(":")[0] for part in out.strip()[2:-2].split(", ")]
    assert keys == sorted(keys), out  # keys sorted without --fields
    assert app.ok("db", "get", "tasks", doc_id, "--fields", "title, n,title") == "{ title: write tests, n: 3 }\n"
    assert (
        app.ok("db", "get", "tasks", doc_id, "-p", "--fields", "n", "--fields", "done")
        == "{\n\tn: 3\n\tdone: false\n}\n"
    )

    out = app.ok("db", "update", "tasks", doc_id, '{"done":true,"tags":["a","b"]}', "--fields", "done,tags")
    assert out == '{ done: true, tags: ["a","b"] }\n', out
    assert app.api_ok("GET", f"/sudo/tasks/{doc_id}")["done"] is True

    out = app.ok("db", "delete", "tasks", doc_id)
    assert out == f"SUCCESS ▶ the document {doc_id} has been deleted\n"
    assert app.api("GET", f"/sudo/tasks/{doc_id}").status_code == 404


def test_repo_lists_collections_and_marks_the_reserved_ones(app: App) -> None:
    create(app, "books", {"t": 1})
    out = app.ok("db", "repo")
    names = app.api_ok("GET", "/sudolistall")
    assert out.startswith(f"{len(names)} repositories, repos using this format are reserved repositories\n\n[\n"), out
    assert "\tbooks, \n" in out and out.rstrip().endswith("]"), out
    reserved = [n for n in names if n.startswith("sb_")]
    assert reserved and all(f"\t{n} (reserved), \n" in out for n in reserved), out


def test_list_pages_and_order(app: App) -> None:
    for i in range(5):
        create(app, "items", {"i": i})
    out = app.ok("db", "list", "items", "--size", "2")
    lines = out.splitlines()
    assert lines[0] == "5 result(s)" and lines[1] == "" and len(lines) == 4, out
    assert app.ok("db", "list", "items", "--size", "2", "--page", "3", "--fields", "i") == "5 result(s)\n\n{ i: 4 }\n"
    out = app.ok("db", "list", "items", "-d", "--size", "2", "--fields", "i")
    assert out.splitlines()[2:] == ["{ i: 4 }", "{ i: 3 }"], out
    out = app.ok("db", "list", "items", "--descending", "--size", "2", "--pretty", "--fields", "i")
    assert out == "5 result(s)\n\n{\n\ti: 4\n}\n\n{\n\ti: 3\n}\n", out
    assert app.ok("db", "list", "nothing_here") == "0 result(s)\n\n"


def test_query_and_count_with_filters(app: App) -> None:
    for i, done in enumerate([True, False, True, True]):
        create(app, "todos", {"i": i, "done": done, "title": f"t{i}"})
    out = app.ok("db", "query", "todos", "done", "==", "true", "i", ">", "0", "--fields", "i")
    assert out == "2 result(s)\n\n{ i: 2 }\n{ i: 3 }\n", out
    out = app.ok("db", "query", "todos", "i", "<>", "1", "-d", "--size", "1", "--fields", "title")
    assert out == "3 result(s)\n\n{ title: t3 }\n", out
    assert app.ok("db", "query", "todos", "title", "=", "t1", "--fields", "i") == "1 result(s)\n\n{ i: 1 }\n"
    assert app.ok("db", "query", "todos", "title", "==", '"true"') == "0 result(s)\n\n"  # JSON-quoted: text
    assert app.ok("db", "count", "todos") == "4\n"
    assert app.ok("db", "count", "todos", "done", "==", "true") == "3\n"
    assert app.ok("db", "count", "todos", "i", ">=", "2", "i", "<=", "2") == "1\n"
    body = app.api_ok("POST", "/db/count/todos", json=[["done", "==", True]])
    assert body == {"count": 3}


def test_bad_input_is_refused_before_anything_is_sent(app: App) -> None:
    failed(app.cli("db", "create", "bad", "{not json"), "the document is not valid JSON")
    failed(app.cli("db", "create", "bad", "[1,2]"), "the document must be a JSON object")
    failed(app.cli("db", "query", "bad", "a", "==", "1", "b", "=="), "filters come in triples (field op value): got 5")
    failed(app.cli("db", "count", "bad", "a", "=~", "1"), 'invalid filter: unknown operator "=~" in clause 1')
    failed(app.cli("db", "list", "bad", "--page", "0"), "--page and --size must be 1 or more")
    assert "bad" not in app.api_ok("GET", "/sudolistall")  # nothing was written


def test_unknown_ids_and_server_refusals(app: App) -> None:
    doc = create(app, "things", {"a": 1})
    failed(app.cli("db", "get", "things", "nosuchid"), "error returned by the backend: document not found")
    failed(app.cli("db", "update", "things", "nosuchid", '{"a":2}'), "error returned by the backend:")
    failed(app.cli("db", "delete", "things", "nosuchid"), "no document nosuchid in things: nothing deleted")
    failed(app.cli("db", "update", "things", str(doc["id"]), '{"a":'), "the document is not valid JSON")
    assert app.api_ok("GET", f"/sudo/things/{doc['id']}")["a"] == 1
    app.write_config(rootToken="not-a-root-token")
    failed(app.cli("db", "list", "things"), "error returned by the backend:")


def test_no_config_and_no_server(app: App) -> None:
    (app.workdir / ".backend.yml").unlink()
    for args in (["db", "repo"], ["db", "list", "x"], ["db", "count", "x"]):
        failed(app.cli(*args), "no .backend.yml here or in ~/.config/backend/")
    app.write_config(rootToken="")
    failed(app.cli("db", "repo"), "missing rootToken in .backend.yml")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app.write_config(region=f"http://127.0.0.1:{port}")
    failed(app.cli("db", "get", "x", "y"), f"cannot reach the server at http://127.0.0.1:{port}")
    (app.workdir / ".backend.yml").write_text("pubKey: [unclosed\n")
    failed(app.cli("db", "repo"), "cannot read the config file")
