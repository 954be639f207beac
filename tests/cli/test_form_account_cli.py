"""``backend form list``, ``backend account create | portal``, ``backend llm``."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx

from tests.cli.conftest import App, failed, run_cli


def submit(app: App, form: str, fields: dict[str, str]) -> None:
    r = httpx.post(f"{app.url}/postform/{form}", data=fields, headers={"SB-PUBLIC-KEY": app.pk}, timeout=30)
    assert r.status_code < 300, r.text


def test_form_list_all_and_by_name(app: App) -> None:
    assert app.ok("form", "list") == "0 result(s)\n\n"
    submit(app, "contact", {"email": "a@x.com", "msg": "hello"})
    submit(app, "newsletter", {"email": "b@x.com"})
    out = app.ok("form", "list")
    assert out.startswith("2 result(s)\n\n"), out
    out = app.ok("form", "list", "contact")
    lines = out.splitlines()
    assert lines[0] == "1 result(s)" and "email: a@x.com" in lines[2] and "msg: hello" in lines[2], out
    assert app.ok("form", "list", "nosuchform") == "0 result(s)\n\n"
    assert len(app.api_ok("GET", "/form?name=contact")) == 1
    app.write_config(rootToken="")
    failed(app.cli("form", "list"), "missing rootToken")


def test_account_create_makes_a_tenant_once(app: App) -> None:
    email = f"new-{uuid.uuid4().hex[:10]}@cli.example.com"
    out = app.ok("account", "create", email)
    assert out.startswith(f"SUCCESS ▶ the account for {email} has been created\n"), out
    # dev mode prints the new app's credentials in the server's terminal
    deadline = time.monotonic() + 5
    while f"Email:       {email}" not in app.server.log_tail(400):
        assert time.monotonic() < deadline, app.server.log_tail()
        time.sleep(0.05)
    failed(app.cli("account", "create", email), "error returned by the backend: Please use a different/valid email.")
    failed(app.cli("account", "create", "not-an-email"), "error returned by the backend: invalid email")


def test_account_create_needs_no_config_and_portal_has_no_billing(app: App) -> None:
    email = f"new-{uuid.uuid4().hex[:10]}@cli.example.com"
    (app.workdir / ".backend.yml").unlink()
    done = run_cli(app.workdir, "account", "create", email, REGION=app.url)
    assert done.returncode == 0 and "has been created" in done.stdout, (done.stdout, done.stderr)
    app.write_config()
    failed(app.cli("account", "portal"), "error returned by the backend: billing is not configured on this server")


def test_llm_writes_the_reference_files(tmp_path: Path) -> None:
    libraries = (
        ("js", "sb-js.md", "@staticbackend/js"),
        ("node", "sb-node.md", "Node.js"),
        ("go", "sb-go.md", "backend-go"),
    )
    for lib, name, marker in libraries:
        done = run_cli(tmp_path, "llm", lib)
        assert done.returncode == 0 and done.stdout == f"SUCCESS ▶ written {name}\n", (done.stdout, done.stderr)
        text = (tmp_path / name).read_text()
        assert marker in text and "## The HTTP API underneath" in text, text[:200]
    failed(run_cli(tmp_path, "llm", "rust"), 'unknown library "rust": use js, node or go')
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "sb-go.md").mkdir()  # a directory where the file should go
    failed(run_cli(tmp_path / "ro", "llm", "go"), "could not write sb-go.md")
