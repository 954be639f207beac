"""The files pages of the admin UI (spec 08 §2, ``/ui/fs``) in real Chromium, on every store.

Files are uploaded the way clients upload them, through ``POST /storage/upload`` with a user's
token: a PNG and a text file of one account, a file of another account. The page lists them with
their name, size, type, account and time, the PNG with its thumbnail actually loaded; the account
search box narrows the list; the download link gives the bytes back; a delete (after its
confirmation page) removes the record and the bytes, checked through ``/storage/files`` and the
file's URL (404). Refusals: a form without the session's CSRF token (403), another app's file id
(404); nothing is deleted by either. Screenshots of every page at 1280 and 390 px go to
test-output/ui/.
"""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
from PIL import Image

from tests.compat.support import DEV_ROOT_ALIAS, LiveServer, unique_email
from tests.web.ui_support import chromium, csrf_of, shots, signed_in, ui_server_fixture

__all__ = ["chromium"]

ui_server = ui_server_fixture()


def _user(server: LiveServer, pk: str | None = None) -> tuple[str, str]:
    """A new user's (token, account id)."""
    r = server.request("POST", "/register", pk=pk, json={"email": unique_email("uifs"), "password": "ui-files-pw"})
    assert r.status_code == 200, r.text
    token: str = r.json()
    me = server.request("GET", "/me", pk=pk, token=token)
    assert me.status_code == 200, me.text
    return token, str(me.json()["accountId"])


def _png(width: int = 48, height: int = 32) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (220, 60, 40)).save(out, format="PNG")
    return out.getvalue()


def _upload(
    server: LiveServer, token: str, filename: str, data: bytes, ctype: str, pk: str | None = None
) -> dict[str, str]:
    r = server.request("POST", "/storage/upload", pk=pk, token=token, files={"file": (filename, data, ctype)})
    assert r.status_code == 200, r.text
    body: dict[str, str] = r.json()
    return body


def _listed(server: LiveServer, token: str, pk: str | None = None) -> set[str]:
    """The ids ``GET /storage/files`` lists for ``token`` (a user: their account; root: the app)."""
    r = server.request("GET", "/storage/files", pk=pk, token=token, params={"size": "1000"})
    assert r.status_code == 200, r.text
    return {f["id"] for f in r.json()["results"]}


def _submit(page: Any, selector: str) -> Any:
    """Click ``selector`` and return the response of the navigation it starts."""
    with page.expect_navigation() as nav:
        page.click(selector)
    return nav.value


def _cells(page: Any, file_id: str) -> list[str]:
    texts: list[str] = page.locator(f"#file-{file_id} td").all_inner_texts()
    return [t.strip() for t in texts]


def _row_ids(page: Any) -> list[str]:
    ids: list[str] = page.locator(".fs-table tbody tr").evaluate_all("rs => rs.map(r => r.id.slice(5))")
    return ids


def test_upload_list_preview_filter_download_and_delete(ui_server: LiveServer, chromium: Any) -> None:
    tag = uuid.uuid4().hex[:6]
    alice, alice_account = _user(ui_server)
    bob, bob_account = _user(ui_server)
    png, text = _png(), f"notes {tag}\n".encode() * 100
    image = _upload(ui_server, alice, f"pic-{tag}.png", png, "image/png")
    notes = _upload(ui_server, alice, f"notes-{tag}.txt", text, "text/plain")
    bobs = _upload(ui_server, bob, f"bob-{tag}.txt", b"bob's bytes", "text/plain")

    page = signed_in(chromium, ui_server)
    page.goto("/ui/fs")
    ids = _row_ids(page)
    assert ids.index(bobs["id"]) < ids.index(notes["id"]) < ids.index(image["id"])  # newest first
    _, name, size, ctype, account, uploaded, actions = _cells(page, image["id"])
    assert (name, size, ctype, account) == (f"pic-{tag}.png", f"{len(png)} B", "image/png", alice_account)
    assert uploaded[:2] == "20" and "download" in actions and "delete" in actions
    preview, name, size, ctype, account, _, _ = _cells(page, notes["id"])
    assert (name, size, ctype, account) == (
        f"notes-{tag}.txt",
        f"{len(text) / 1000:.1f} KB",
        "text/plain",
        alice_account,
    )
    assert page.locator(f"#file-{notes['id']} img").count() == 0 and preview.lower() == "txt"
    # the thumbnail: lazy, and really loaded from the file's URL once in view
    thumb = page.locator(f"#file-{image['id']} img.fs-thumb")
    assert thumb.get_attribute("loading") == "lazy" and thumb.get_attribute("src") == image["url"]
    assert thumb.get_attribute("alt") == f"preview of pic-{tag}.png"
    thumb.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())
    assert thumb.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [48, 32]
    assert page.locator(f"#file-{notes['id']} td.fs-name a").get_attribute("href") == notes["url"]
    shots(page, "fs-list")

    # one account's files, from the labelled search box and the keyboard
    assert page.locator("label[for=fs-account]").inner_text() == "Account id"
    page.fill("#fs-account", alice_account)
    with page.expect_navigation():
        page.press("#fs-account", "Enter")
    assert page.url.endswith(f"/ui/fs?id={alice_account}")
    assert _row_ids(page) == [notes["id"], image["id"]]
    assert "2 files of account" in page.locator("#fs-total").inner_text()
    shots(page, "fs-account")
    # the account link of a row filters too
    page.goto("/ui/fs")
    _submit(page, f"#file-{bobs['id']} a[href='/ui/fs?id={bob_account}']")
    assert _row_ids(page) == [bobs["id"]]
    page.goto("/ui/fs?id=no-such-account")
    assert "No files of account" in page.locator("#fs-none").inner_text()
    shots(page, "fs-none")

    # the download links give the bytes back
    page.goto(f"/ui/fs?id={alice_account}")
    for record, data in ((notes, text), (image, png)):
        link = page.locator(f"#file-{record['id']} a[download]")
        assert link.get_attribute("href") == record["url"]
        got = page.request.get(record["url"])
        assert got.status == 200 and got.body() == data

    # delete the text file: asked first, nothing deleted while asked
    response = _submit(page, f"#file-{notes['id']} a.danger-link")
    assert response.status == 200 and page.url.endswith(f"/ui/fs/del/{notes['id']}")
    assert f"notes-{tag}.txt" in page.locator("main").inner_text()
    assert notes["id"] in _listed(ui_server, alice)
    shots(page, "fs-delete")
    response = _submit(page, "main form button.danger")
    assert response.status == 200 and page.url.endswith("/ui/fs")
    assert "deleted" in page.locator("#flash").inner_text()
    assert page.locator(f"#file-{notes['id']}").count() == 0
    assert page.locator(f"#file-{image['id']}").count() == 1
    assert httpx.get(notes["url"]).status_code == 404
    assert _listed(ui_server, alice) == {image["id"]}
    assert notes["id"] not in _listed(ui_server, DEV_ROOT_ALIAS)
    assert httpx.get(image["url"]).content == png
    page.context.close()


def test_files_are_paged(ui_server: LiveServer, chromium: Any) -> None:
    token, account = _user(ui_server)
    uploaded = [_upload(ui_server, token, f"p{i}.txt", f"file {i}".encode(), "text/plain")["id"] for i in range(26)]
    page = signed_in(chromium, ui_server)
    page.goto(f"/ui/fs?id={account}")
    assert _row_ids(page) == uploaded[::-1][:25]
    assert page.locator("nav.pager a").all_inner_texts() == ["1", "2"]
    _submit(page, "nav.pager a:text-is('2')")
    assert page.url.endswith(f"/ui/fs?id={account}&page=2")
    assert _row_ids(page) == [uploaded[0]]
    shots(page, "fs-page-2")
    # a page past the end (files deleted since) goes to the last one
    response = page.goto(f"/ui/fs?id={account}&page=9")
    assert response is not None and page.url.endswith(f"/ui/fs?id={account}&page=2")
    page.context.close()


def test_refusals_csrf_and_other_apps(ui_server: LiveServer, chromium: Any) -> None:
    token, _ = _user(ui_server)
    mine = _upload(ui_server, token, "keep.txt", b"keep me", "text/plain")
    page = signed_in(chromium, ui_server)
    page.goto("/ui/fs")
    csrf = csrf_of(page)

    # a form without the session's CSRF token: refused, nothing deleted
    for bad in ({}, {"csrf": "y" * 32}):
        r = page.request.post(f"/ui/fs/del/{mine['id']}", form=bad, max_redirects=0)
        assert r.status == 403 and "CSRF" in r.text()
    assert httpx.get(mine["url"]).content == b"keep me"
    assert mine["id"] in _listed(ui_server, token)

    # another app's file: not found here, for the page and the form
    other = ui_server.new_app(unique_email("uifs"))
    their_user, _ = _user(ui_server, pk=other["pk"])
    theirs = _upload(ui_server, their_user, "theirs.txt", b"their bytes", "text/plain", pk=other["pk"])
    response = page.goto(f"/ui/fs/del/{theirs['id']}")
    assert response is not None and response.status == 404
    assert "file not found" in page.locator("[role=alert]").inner_text()
    shots(page, "fs-not-found")
    for bogus in (theirs["id"], "no-such-file"):
        r = page.request.post(f"/ui/fs/del/{bogus}", form={"csrf": csrf}, max_redirects=0)
        assert r.status == 404, (bogus, r.status)
    assert httpx.get(theirs["url"]).content == b"their bytes"
    assert theirs["id"] in _listed(ui_server, other["rootToken"], pk=other["pk"])
    page.goto("/ui/fs")
    assert page.locator(f"#file-{theirs['id']}").count() == 0
    page.context.close()


def test_signed_out_pages_go_to_sign_in(ui_server: LiveServer) -> None:
    for method, path in [("GET", "/ui/fs"), ("GET", "/ui/fs/del/x"), ("POST", "/ui/fs/del/x")]:
        r = httpx.request(method, ui_server.url + path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/", (method, path)
