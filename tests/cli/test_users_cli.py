"""``backend users list | add | delete`` with the admin's session (signed in from .backend.yml)."""

from __future__ import annotations

import yaml

from tests.cli.conftest import App, failed


def test_add_list_delete_users(app: App) -> None:
    out = app.ok("users", "add", "second@cli.example.com", "second-pw-123")
    assert out.startswith("User created: ") and out.rstrip().endswith(" | second@cli.example.com"), out
    user_id = out.split("User created: ", 1)[1].split(" | ", 1)[0]
    # the CLI signed in with the saved email and password and saved the session for next time
    token = yaml.safe_load((app.workdir / ".backend.yml").read_text())["authToken"]
    assert token
    listed = app.api_ok("GET", "/account/users", token)
    assert user_id in [u["id"] for u in listed]

    out = app.ok("users", "list")
    lines = out.splitlines()
    assert lines[0] == "2 user(s)" and lines[1] == "", out
    assert f"{user_id} | second@cli.example.com | 0" in lines, out
    assert any(line.endswith(f" | {app.email} | 100") for line in lines), out

    assert app.ok("users", "delete", user_id) == f"User {user_id} has been deleted.\n"
    assert user_id not in [u["id"] for u in app.api_ok("GET", "/account/users", token)]
    failed(app.cli("users", "delete", user_id), "error returned by the backend: user not found in your account")


def test_a_stale_session_is_renewed_with_the_saved_password(app: App) -> None:
    app.write_config(authToken="stale.session.token")
    assert app.ok("users", "list").startswith("1 user(s)")
    assert yaml.safe_load((app.workdir / ".backend.yml").read_text())["authToken"] != "stale.session.token"


def test_refusals(app: App) -> None:
    failed(app.cli("users", "add", "not-an-email", "pw-123456789"), "error returned by the backend: invalid email")
    failed(app.cli("users", "add", app.email, "pw-123456789"), "error returned by the backend:")
    app.write_config(password="wrong-password")
    failed(app.cli("users", "list"), "error returned by the backend:")
    app.write_config(email="", authToken="")
    failed(app.cli("users", "list"), "missing authToken in .backend.yml")
    (app.workdir / ".backend.yml").unlink()
    failed(app.cli("users", "list"), "no .backend.yml here or in ~/.config/backend/")
