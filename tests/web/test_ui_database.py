"""The database browser of the admin UI (spec 08 §2, ``/ui/db``) in real Chromium, on every store.

What the UI does is checked through the HTTP API (``/sudo/...`` with the dev root token): a
document created in the browser is read back, each typed edit reads back as that JSON type, and a
delete (after its confirmation page) leaves nothing. Refusals render a page with the reason: a bad
filter (400), a value that is not its type (400), a form without the session's CSRF token (403),
another app's document (404). Screenshots of every page at 1280 and 390 px go to test-output/ui/.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.compat.support import DEV_ROOT_ALIAS, LiveServer, unique_email
from tests.web.ui_support import chromium, csrf_of, shots, signed_in, ui_server_fixture

__all__ = ["chromium"]

ui_server = ui_server_fixture()


def _api(server: LiveServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return server.request(method, path, token=DEV_ROOT_ALIAS, **kwargs)


def _doc(server: LiveServer, col: str, doc_id: str) -> dict[str, Any]:
    r = _api(server, "GET", f"/sudo/{col}/{doc_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _col() -> str:
    return f"uidb_{uuid.uuid4().hex[:8]}"


def _submit(page: Any, selector: str) -> Any:
    """Click ``selector`` and return the response of the navigation it starts."""
    with page.expect_navigation() as nav:
        page.click(selector)
    return nav.value


def _field_form(page: Any, field: str) -> Any:
    return page.locator(f"form.db-field-form:has(input[name=field][value='{field}'])")


def test_create_edit_and_delete_a_document(ui_server: LiveServer, chromium: Any) -> None:
    page = signed_in(chromium, ui_server)
    col = _col()
    page.goto(f"/ui/db/new?col={col}")
    shots(page, "db-new")
    page.fill("textarea[name=body]", '{"title": "hello", "score": 1, "tags": ["a"]}')
    response = _submit(page, "form[action='/ui/db/new'] button[type=submit]")
    assert response.status == 200
    assert "/ui/db/" in page.url and f"col={col}" in page.url
    doc_id = page.url.split("/ui/db/", 1)[1].split("?", 1)[0]
    stored = _doc(ui_server, col, doc_id)
    assert {k: stored[k] for k in ("title", "score", "tags")} == {"title": "hello", "score": 1, "tags": ["a"]}
    shots(page, "db-doc")

    # each type, through the row of an existing field ...
    for field, value, kind, expected in [
        ("title", "world", "string", "world"),
        ("score", "42", "int", 42),
        ("tags", '["x", 2, {"y": null}]', "json", ["x", 2, {"y": None}]),
    ]:
        form = _field_form(page, field)
        form.locator("[name=value]").fill(value)
        form.locator("select[name=type]").select_option(kind)
        with page.expect_navigation() as nav:
            form.locator("button[type=submit]").click()
        assert nav.value.status == 200 and doc_id in page.url
        assert _doc(ui_server, col, doc_id)[field] == expected
    # ... and through the form that adds a field
    add = page.locator("form.db-field-form:has(input[name=field]:not([type=hidden]))")
    for field, value, kind, expected in [
        ("ratio", "2.5", "float", 2.5),
        ("done", "true", "bool", True),
        ("off", "FALSE", "bool", False),
        ("note", "42", "string", "42"),
    ]:
        add.locator("input[name=field]").fill(field)
        add.locator("input[name=value]").fill(value)
        add.locator("select[name=type]").select_option(kind)
        with page.expect_navigation() as nav:
            add.locator("button[type=submit]").click()
        assert nav.value.status == 200
        got = _doc(ui_server, col, doc_id)[field]
        assert got == expected and type(got) is type(expected), (field, got)
    # the page shows each value with its type selected
    assert _field_form(page, "ratio").locator("select[name=type]").input_value() == "float"
    assert _field_form(page, "done").locator("select[name=type]").input_value() == "bool"

    # a value that is not its type: the reason, and nothing written
    for value, kind, reason in [
        ("abc", "int", "invalid int value"),
        ("1.2.3", "float", "invalid float value"),
        ("yes please", "bool", "invalid bool value"),
        ("{nope", "json", "invalid json value"),
    ]:
        page.goto(f"/ui/db/{doc_id}?col={col}")
        form = _field_form(page, "score")
        form.locator("[name=value]").fill(value)
        form.locator("select[name=type]").select_option(kind)
        with page.expect_navigation() as nav:
            form.locator("button[type=submit]").click()
        assert nav.value.status == 400
        assert reason in page.locator("[role=alert]").inner_text()
        assert _doc(ui_server, col, doc_id)["score"] == 42
    shots(page, "db-error")

    # delete asks first; the document is still there while the question is on screen
    page.goto(f"/ui/db/{doc_id}?col={col}")
    _submit(page, "a:has-text('Delete this document')")
    assert f"/ui/db/del/{doc_id}" in page.url
    assert "Delete this document?" in page.locator("h1").inner_text()
    assert _doc(ui_server, col, doc_id)["title"] == "world"
    shots(page, "db-delete")
    response = _submit(page, "main form button.danger")
    assert response.status == 200 and page.url.endswith(f"/ui/db?col={col}")
    assert _api(ui_server, "GET", f"/sudo/{col}/{doc_id}").status_code == 404
    page.context.close()


def test_collections_paging_sort_and_filter(ui_server: LiveServer, chromium: Any) -> None:
    col = _col()
    docs = [{"n": i, "label": f"item {i:03}"} for i in range(1, 61)]
    assert _api(ui_server, "POST", f"/sudo/{col}?bulk=1", json=docs).status_code == 201
    assert _api(ui_server, "POST", f"/sudo/{col}", json={"n": 0, "label": "latest"}).status_code == 201
    page = signed_in(chromium, ui_server)
    page.goto("/ui/db")
    link = page.locator(f".db-collections a:has-text('{col}')")
    assert link.locator(".db-count").inner_text() == "61"
    assert page.locator(".db-collections a:has-text('sb_')").count() == 0  # internal ones are hidden
    _submit(page, f".db-collections a:has-text('{col}')")
    assert page.locator("#db-total").inner_text().startswith("61 documents")
    assert page.locator(".db-table tbody tr").count() == 50
    headers = page.locator(".db-table thead th").all_inner_texts()
    assert headers[:2] == ["id", "accountId"] and {"n", "label"} <= set(headers)
    # newest first by default (sort id desc)
    assert "latest" in page.locator(".db-table tbody tr").first.inner_text()
    shots(page, "db-list")

    # page 2 holds the other 11
    _submit(page, ".pager a:has-text('2')")
    assert page.locator(".db-table tbody tr").count() == 11
    assert page.locator(".pager a[aria-current=page]").inner_text() == "2"

    # sort by n ascending, show only n, filter n >= 55
    page.goto(f"/ui/db?col={col}")
    page.fill("input[name=sortby]", "n")
    page.select_option("select[name=desc]", "0")
    page.fill("input[name=query]", '[["n", ">=", 55]]')
    page.fill("input[name=fields]", "n")
    response = _submit(page, "form.db-filter button[type=submit]")
    assert response.status == 200
    assert page.locator(".db-table thead th").all_inner_texts() == ["id", "n"]
    assert [r.split("\t")[-1].strip() for r in page.locator(".db-table tbody tr").all_inner_texts()] == [
        str(n) for n in range(55, 61)
    ]
    # each cell links to its document
    _submit(page, ".db-table tbody tr >> nth=0 >> td >> nth=1 >> a")
    assert page.locator("h1").inner_text().startswith("Document")
    assert _field_form(page, "n").locator("[name=value]").input_value() == "55"

    # a bad filter shows its reason, with a 400, never a 500
    for query, reason in [
        ('[["n", "=~", 3]]', "is not supported"),
        ("[[", "invalid filter"),
        ('{"n": 1}', "invalid filter"),
    ]:
        page.goto(f"/ui/db?col={col}")
        page.fill("input[name=query]", query)
        response = _submit(page, "form.db-filter button[type=submit]")
        assert response.status == 400, query
        assert reason in page.locator("#db-error").inner_text(), query
        assert page.locator("input[name=query]").input_value() == query  # kept for fixing
    shots(page, "db-bad-filter")
    # internal collections are neither listed nor browsed
    response = page.goto("/ui/db?col=sb_accounts")
    assert response is not None and response.status == 400
    assert "reserved" in page.locator("#db-error").inner_text()
    page.context.close()


def test_csrf_and_other_apps_are_refused(ui_server: LiveServer, chromium: Any) -> None:
    col = _col()
    created = _api(ui_server, "POST", f"/sudo/{col}", json={"v": "mine"})
    assert created.status_code == 201
    mine = created.json()["id"]
    other = ui_server.new_app(unique_email("uidb"))
    theirs_r = ui_server.request("POST", f"/sudo/{col}", pk=other["pk"], token=other["rootToken"], json={"v": "theirs"})
    assert theirs_r.status_code == 201
    theirs = theirs_r.json()["id"]

    page = signed_in(chromium, ui_server)
    page.goto(f"/ui/db/{mine}?col={col}")
    csrf = csrf_of(page)
    form = {"id": mine, "col": col, "field": "v", "value": "changed", "type": "string"}
    for bad in ({}, {"csrf": "x" * 32}):
        r = page.request.post("/ui/db/save", form={**form, **bad}, max_redirects=0)
        assert r.status == 403 and "CSRF" in r.text()
    r = page.request.post(f"/ui/db/del/{mine}", form={"col": col}, max_redirects=0)
    assert r.status == 403
    r = page.request.post("/ui/db/new", form={"col": col, "body": '{"x": 1}'}, max_redirects=0)
    assert r.status == 403
    assert _doc(ui_server, col, mine)["v"] == "mine"
    assert _api(ui_server, "POST", f"/db/count/{col}").json()["count"] == 1

    # another app's document: not found from this app's session, whatever the form says
    response = page.goto(f"/ui/db/{theirs}?col={col}")
    assert response is not None and response.status == 404
    assert "document not found" in page.locator("[role=alert]").inner_text()
    shots(page, "db-not-found")
    r = page.request.post("/ui/db/save", form={**form, "id": theirs, "csrf": csrf}, max_redirects=0)
    assert r.status == 404
    r = page.request.post(f"/ui/db/del/{theirs}", form={"col": col, "csrf": csrf}, max_redirects=0)
    assert r.status == 404
    got = ui_server.request("GET", f"/sudo/{col}/{theirs}", pk=other["pk"], token=other["rootToken"])
    assert got.status_code == 200 and got.json()["v"] == "theirs"
    # and the listing shows this app's document only
    page.goto(f"/ui/db?col={col}")
    assert page.locator("#db-total").inner_text().startswith("1 document ")
    # the right CSRF token works (the refusals above were for the token, not the form)
    r = page.request.post("/ui/db/save", form={**form, "csrf": csrf}, max_redirects=0)
    assert r.status == 303 and r.headers["location"] == f"/ui/db/{mine}?col={col}"
    assert _doc(ui_server, col, mine)["v"] == "changed"
    page.context.close()


def test_signed_out_pages_go_to_sign_in(ui_server: LiveServer) -> None:
    for method, path in [("GET", "/ui/db"), ("GET", "/ui/db/x?col=y"), ("POST", "/ui/db/save"), ("GET", "/ui/db/new")]:
        r = httpx.request(method, ui_server.url + path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/", (method, path)
