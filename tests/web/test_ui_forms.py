"""The form submissions pages of the admin UI (spec 08 §2, ``/ui/forms``) in real Chromium, on every store.

Submissions are sent the way a web page sends them, through the public ``POST /postform/<name>``
(no token); the page shows them under their form's name in the select, newest first and paged, and
a delete (after its confirmation page) is checked through the API (``GET /form?name=`` with the
root token). Refusals: a form without the session's CSRF token (403), another app's submission id
and made-up ids (404), a bad form name (400); nothing is deleted by any of them. Screenshots of
every page at 1280 and 390 px go to test-output/ui/.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.compat.support import DEV_ROOT_ALIAS, LiveServer, unique_email
from tests.web.ui_support import chromium, csrf_of, new_page, shots, sign_in_with_token, signed_in, ui_server_fixture

__all__ = ["chromium"]

ui_server = ui_server_fixture()


def _post_form(server: LiveServer, name: str, fields: dict[str, str], pk: str | None = None) -> None:
    r = server.request("POST", f"/postform/{name}", pk=pk, data=fields)
    assert r.status_code == 200 and r.json() is True, r.text


def _stored(server: LiveServer, name: str, pk: str | None = None, token: str = DEV_ROOT_ALIAS) -> list[dict[str, str]]:
    r = server.request("GET", "/form", pk=pk, token=token, params={"name": name})
    assert r.status_code == 200, r.text
    subs: list[dict[str, str]] = r.json()
    return subs


def _form_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _submit(page: Any, selector: str) -> Any:
    """Click ``selector`` and return the response of the navigation it starts."""
    with page.expect_navigation() as nav:
        page.click(selector)
    return nav.value


def _fields(entry: Any) -> dict[str, str]:
    keys = entry.locator("dt").all_inner_texts()
    values = entry.locator("dd").all_inner_texts()
    return dict(zip(keys, values, strict=True))


def _entry_ids(page: Any) -> list[str]:
    ids: list[str] = [
        i.removeprefix("sub-") for i in page.locator("li.forms-entry").evaluate_all("es => es.map(e => e.id)")
    ]
    return ids


def test_submit_see_and_delete_a_submission(ui_server: LiveServer, chromium: Any) -> None:
    name = _form_name("contact")
    first = {"name": "Ada", "email": "ada@example.com"}
    second = {"name": "Zoë 用户", "email": "zoe@example.com", "message": "line one\nline two"}
    _post_form(ui_server, name, first)
    _post_form(ui_server, name, second)

    page = signed_in(chromium, ui_server)
    page.goto("/ui/forms")
    assert page.locator("label[for=forms-fn]").inner_text() == "Form"
    option = page.locator(f"#forms-fn option[value='{name}']")
    assert option.inner_text() == f"{name} (2)"
    # chosen from the keyboard: focus the select, pick the form, send the form with Enter
    page.select_option("#forms-fn", name)
    page.locator("#forms-fn").focus()
    with page.expect_navigation():
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
    assert page.url.endswith(f"/ui/forms?fn={name}")
    assert "2 submissions" in page.locator("#forms-total").inner_text()
    entries = page.locator("li.forms-entry")
    assert entries.count() == 2
    assert _fields(entries.nth(0)) == second  # newest first, every field as sent
    assert _fields(entries.nth(1)) == first
    shots(page, "forms-list")

    # delete the newest: asked first, nothing deleted while asked
    newest = _entry_ids(page)[0]
    response = _submit(page, f"#sub-{newest} a.danger-link")
    assert response.status == 200 and page.url.endswith(f"/ui/forms/del/{newest}")
    assert "Zoë 用户" in page.locator("main").inner_text()
    assert len(_stored(ui_server, name)) == 2
    shots(page, "forms-delete")
    response = _submit(page, "main form button.danger")
    assert response.status == 200 and page.url.endswith(f"/ui/forms?fn={name}")
    assert "deleted" in page.locator("#flash").inner_text()
    assert _entry_ids(page) == [_entry_ids(page)[0]] and newest not in _entry_ids(page)
    assert _fields(page.locator("li.forms-entry").first) == first
    assert _stored(ui_server, name) == [first]

    # the same id again: not found, and the rest stays
    r = page.request.post(f"/ui/forms/del/{newest}", form={"csrf": csrf_of(page)}, max_redirects=0)
    assert r.status == 404 and "not found" in r.text()
    assert _stored(ui_server, name) == [first]
    page.context.close()


def test_submissions_are_paged_newest_first(ui_server: LiveServer, chromium: Any) -> None:
    name = _form_name("paged")
    for i in range(21):
        _post_form(ui_server, name, {"n": str(i)})
    page = signed_in(chromium, ui_server)
    page.goto(f"/ui/forms?fn={name}")
    assert "21 submissions" in page.locator("#forms-total").inner_text()
    shown = [_fields(e)["n"] for e in page.locator("li.forms-entry").all()]
    assert shown == [str(i) for i in range(20, 0, -1)]
    pager = page.locator("nav.pager a")
    assert pager.all_inner_texts() == ["1", "2"]
    assert pager.nth(0).get_attribute("aria-current") == "page"
    _submit(page, "nav.pager a:text-is('2')")
    assert page.url.endswith(f"/ui/forms?fn={name}&page=2")
    assert [_fields(e)["n"] for e in page.locator("li.forms-entry").all()] == ["0"]
    shots(page, "forms-page-2")
    page.context.close()


def test_refusals_csrf_other_apps_and_bad_names(ui_server: LiveServer, chromium: Any) -> None:
    name = _form_name("kept")
    _post_form(ui_server, name, {"keep": "me"})
    page = signed_in(chromium, ui_server)
    page.goto(f"/ui/forms?fn={name}")
    [mine] = _entry_ids(page)
    csrf = csrf_of(page)

    # a form without the session's CSRF token: refused, nothing deleted
    for bad in ({}, {"csrf": "y" * 32}):
        r = page.request.post(f"/ui/forms/del/{mine}", form=bad, max_redirects=0)
        assert r.status == 403 and "CSRF" in r.text()
    assert _stored(ui_server, name) == [{"keep": "me"}]

    # another app's submission, seen by its own admin
    other = ui_server.new_app(unique_email("uiforms"))
    theirs_page = new_page(chromium, ui_server)
    sign_in_with_token(theirs_page, other["pk"], other["rootToken"])
    theirs_page.goto("/ui/forms")
    assert "No form submissions yet" in theirs_page.locator("#forms-none").inner_text()
    shots(theirs_page, "forms-empty")
    _post_form(ui_server, name, {"theirs": "yes"}, pk=other["pk"])
    theirs_page.goto("/ui/forms")
    [theirs] = _entry_ids(theirs_page)
    theirs_page.context.close()
    assert theirs != mine

    response = page.goto(f"/ui/forms/del/{theirs}")
    assert response is not None and response.status == 404
    assert "not found" in page.locator("[role=alert]").inner_text()
    shots(page, "forms-not-found")
    for bogus in (theirs, "1-1", "abc", "99999999999999999999-1", f"{mine}0"):
        r = page.request.post(f"/ui/forms/del/{bogus}", form={"csrf": csrf}, max_redirects=0)
        assert r.status == 404, (bogus, r.status, r.text())
    assert _stored(ui_server, name, pk=other["pk"], token=other["rootToken"]) == [{"theirs": "yes"}]
    assert _stored(ui_server, name) == [{"keep": "me"}]

    # a form name that cannot be one: the error page says why
    response = page.goto("/ui/forms?fn=no%20spaces")
    assert response is not None and response.status == 400
    assert "invalid form name" in page.locator("[role=alert]").inner_text()
    # a name with no submissions: an empty page, not an error
    response = page.goto("/ui/forms?fn=nothing_here")
    assert response is not None and response.status == 200
    assert "No submissions" in page.locator("#forms-none").inner_text()
    assert page.locator("#forms-fn").input_value() == "nothing_here"  # the select shows the form asked for
    page.context.close()


def test_signed_out_pages_go_to_sign_in(ui_server: LiveServer) -> None:
    for method, path in [("GET", "/ui/forms"), ("GET", "/ui/forms/del/1-1"), ("POST", "/ui/forms/del/1-1")]:
        r = httpx.request(method, ui_server.url + path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/", (method, path)
