"""``backend function run`` with ``--data``, ``--data-file``, ``--use-root-token`` and ``--output``."""

from __future__ import annotations

import socket

from tests.cli.conftest import App, failed

CODE = 'function handle(body) { log("got " + JSON.stringify(body)); }'


def add_function(app: App, name: str) -> None:
    r = app.api("POST", "/fn/add", json={"name": name, "trigger": "web", "code": CODE})
    assert r.status_code == 200, r.text


def history(app: App, name: str) -> list[dict[str, object]]:
    runs: list[dict[str, object]] = app.api_ok("GET", f"/fn/info/{name}")["history"]
    return runs


def test_run_with_the_root_token_and_a_session(app: App) -> None:
    add_function(app, "echo")
    out = app.ok("function", "run", "echo", "--use-root-token", "--data", '{"x":1}')
    assert out.startswith("SUCCESS ▶ Function echo executed successfully\n==== RUN OUTPUT ====\n"), out
    assert 'got {"x":1}' in out.splitlines(), out
    (app.workdir / "body.json").write_text('{"from":"file"}')
    out = app.ok("function", "run", "echo", "--data-file", "body.json", "--output")  # a session this time
    assert 'got {"from":"file"}' in out.splitlines(), out
    out = app.ok("function", "run", "echo", "--use-root-token", "--output=false")
    assert out == "SUCCESS ▶ Function echo executed successfully\n", out
    runs = history(app, "echo")
    assert len(runs) == 3 and all(r["success"] for r in runs), runs
    assert 'got {"x":1}' in runs[0]["output"]  # type: ignore[operator]


def test_run_refusals(app: App) -> None:
    add_function(app, "echo2")
    failed(app.cli("function", "run", "echo2", "--data", "{oops"), "--data is not valid JSON")
    (app.workdir / "bad.json").write_text("[1,")
    failed(app.cli("function", "run", "echo2", "--data-file", "bad.json"), "--data-file is not valid JSON")
    failed(app.cli("function", "run", "echo2", "--data-file", "missing.json"), "cannot read --data-file missing.json")
    failed(app.cli("function", "run", "nosuch", "--use-root-token"), "error returned by the backend:")
    assert history(app, "echo2") == []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app.write_config(region=f"http://127.0.0.1:{port}")
    failed(app.cli("function", "run", "echo2", "--use-root-token"), "cannot reach the server")
    (app.workdir / ".backend.yml").unlink()
    failed(app.cli("function", "run", "echo2", "--use-root-token"), "no .backend.yml here")
