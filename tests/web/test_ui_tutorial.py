"""The founding tutorial's admin steps done in the browser, as README's "Admin UI" walk-through says.

On every store: sign in at ``/`` with the dev app's public key and the admin credentials that
``make run`` prints; add ``new_msg`` (examples/chat/fn.js, trigger ``chan_out``) in the function
editor; two users of the real ``@staticbackend/js`` client in Node chat in ``lobby``
(tests/functions/tutorial.mjs, the same script the CLI tutorial test runs); the function's run
shows in its history with its output lines, and the message is in ``msgs_774_`` in the database
browser. No CLI is used. The README's screenshots are this test's (``make screenshots`` copies
``test-output/ui/tutorial-*-1280.png`` to docs/img/).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from tests.compat.conftest import js_client_dir
from tests.compat.support import DEV_ROOT_ALIAS, LiveServer
from tests.web.ui_support import (
    DEV_EMAIL,
    DEV_PASSWORD,
    chromium,
    new_page,
    shots,
    sign_in_with_password,
    ui_server_fixture,
)

__all__ = ["chromium", "js_client_dir"]

ui_server = ui_server_fixture()
ROOT = Path(__file__).resolve().parents[2]
TUTORIAL_FN = (ROOT / "examples" / "chat" / "fn.js").read_text()
TUTORIAL_MJS = ROOT / "tests" / "functions" / "tutorial.mjs"
WAIT_S = 20.0


def _chat(server: LiveServer, text: str) -> dict[str, Any]:
    """Two users register, join lobby, A posts ``text``; the script's one JSON line."""
    node = shutil.which("node")
    assert node, "node is not installed"
    tag = uuid.uuid4().hex[:8]
    params = {"emailA": f"ada-{tag}@chat.example.com", "emailB": f"bob-{tag}@chat.example.com"}
    params.update(password="tutorial-pw-1", text=text)
    argv = [node, str(TUTORIAL_MJS), "sse", server.url, server.pk, json.dumps(params)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=TUTORIAL_MJS.parent)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines, f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}\n{server.log_tail()}"
    result: dict[str, Any] = json.loads(lines[-1])
    result["from"] = params["emailA"]
    return result


def test_tutorial_admin_steps_in_the_browser(ui_server: LiveServer, chromium: Any, js_client_dir: Path) -> None:
    # 1. sign in with what `make run` prints: the public key, the admin's email and password
    printed = ui_server.log_path.read_text()
    for line in (f"Public key:      {ui_server.pk}", f"Email:       {DEV_EMAIL}", f"Password:    {DEV_PASSWORD}"):
        assert line in printed, f"the server did not print {line!r}:\n{printed[:2000]}"
    assert "Admin pages: open this server's address in a browser" in printed, printed[:2000]
    page = new_page(chromium, ui_server)
    response = sign_in_with_password(page, ui_server.pk, DEV_EMAIL, DEV_PASSWORD)
    assert response.status == 200 and page.url.endswith("/ui/accounts"), page.content()

    # 2. Functions > New: new_msg on chan_out with the tutorial's fn.js
    page.click("nav >> text=Functions")
    page.click("text=New function")
    assert page.url.endswith("/ui/fn/new")
    page.fill("input[name=name]", "new_msg")
    page.fill("input[name=trigger]", "chan_out")
    page.fill("#fn-code", TUTORIAL_FN)
    with page.expect_navigation():
        page.click("#fn-form button[type=submit]")
    assert "/ui/fn/" in page.url and not page.url.endswith("/new"), page.content()
    assert page.locator("#fn-version").inner_text() == "version 1"
    shots(page, "tutorial-1-function")
    r = ui_server.request("GET", "/fn/info/new_msg", token=DEV_ROOT_ALIAS)
    assert r.status_code == 200 and r.json()["trigger"] == "chan_out" and r.json()["code"] == TUTORIAL_FN, r.text

    # 3. the chat: a message in lobby, received by the other user, stored by new_msg
    text = f"hello from the admin walk-through {uuid.uuid4().hex[:6]}"
    result = _chat(ui_server, text)
    assert json.loads(result["received"]["data"]) == {"from": result["from"], "body": text}, result
    assert [d["body"] for d in result["listed"]["content"]["results"] if d["body"] == text] == [text], result

    # 4. the function's history shows the run: Success, with its output lines
    deadline = time.monotonic() + WAIT_S
    runs = page.locator(".fn-runs tbody tr", has_text="Success")
    while not runs.count():
        assert time.monotonic() < deadline, f"no successful run in the history:\n{page.content()}"
        page.wait_for_timeout(200)
        page.reload()
    row = runs.first
    row.locator("summary").click()
    output = row.locator(".run-output").inner_text()
    assert "DEBUG: inside ssf" in output and "success" in output, output
    shots(page, "tutorial-2-history")

    # 5. Database > msgs_774_: the stored message, with the sentOn the function added
    page.click("nav >> text=Database")
    page.goto("/ui/db?col=msgs_774_")
    table = page.locator(".db-table")
    assert table.locator("tbody tr", has_text=text).count() == 1, page.content()
    page.fill("input[name=fields]", "from body sentOn")
    with page.expect_navigation():
        page.click("text=Apply")
    headers = table.locator("thead").inner_text().split()
    assert [h for h in headers if h in ("from", "body", "sentOn")] == ["from", "body", "sentOn"], headers
    assert table.locator("tbody tr", has_text=text).count() == 1, page.content()
    shots(page, "tutorial-3-database")
    page.context.close()
