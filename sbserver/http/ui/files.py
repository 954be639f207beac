"""The files pages of the admin UI (spec 08 §2): ``/ui/fs`` and ``/ui/fs/del/<fileId>``.

The page lists the app's stored files, newest first, a page at a time: all of them, or one
account's (``?id=<accountId>``, from the search box). Each row links to the file's URL and an
image shows a lazily loaded thumbnail. Deleting asks first (GET), then a POST carrying the
session's CSRF token removes the record and the stored bytes (``FileService.delete``). Another
app's file id is not found here.
"""

from __future__ import annotations

import math
import os
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sbserver.backends.storage.files.base import FileRecord
from sbserver.http.request import services
from sbserver.http.ui.session import admin_of, check_csrf, page, page_number, pager, redirect
from sbserver.http.ui.session import render as render_page
from sbserver.services.documents import Page
from sbserver.services.files import content_type

PAGE_SIZE = 25
MAX_ACCOUNT_ID = 100


def when(stamp: str) -> str:
    """A stored RFC 3339 time as ``2026-01-02 03:04:05``."""
    return stamp.replace("T", " ")[:19]


def size_text(size: int) -> str:
    """Bytes for people: ``812 B``, ``14.2 KB``, ``3.1 MB`` (powers of 1000, as the usage API)."""
    if size < 1000:
        return f"{size} B"
    amount = size / 1000
    for unit in ("KB", "MB", "GB"):
        if amount < 1000:
            return f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{amount:.1f} TB"


def list_url(account_id: str = "", page_no: int = 1) -> str:
    query = {**({"id": account_id} if account_id else {}), **({"page": str(page_no)} if page_no > 1 else {})}
    return "/ui/fs" + ("?" + urlencode(query) if query else "")


def row(record: FileRecord) -> dict[str, Any]:
    ctype = content_type(record.key)
    return {
        "id": record.id,
        "name": record.name,
        "url": record.url,
        "size": size_text(record.size),
        "bytes": record.size,
        "type": ctype,
        "image": ctype.startswith("image/"),
        "ext": os.path.splitext(record.key)[1][1:5] or "file",
        "account": record.account_id,
        "account_url": list_url(record.account_id),
        "uploaded": when(record.uploaded),
        "del_url": "/ui/fs/del/" + quote(record.id, safe=""),
    }


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    return render_page(request, name, {"active": "fs", **context}, status)


@page
async def list_files(request: Request) -> Response:
    """``/ui/fs[?id=<accountId>&page=<n>]``: the app's files, or one account's, newest first."""
    admin = await admin_of(request)
    account_id = request.query_params.get("id", "").strip()[:MAX_ACCOUNT_ID]
    files = services(request).files
    page_no = page_number(request.query_params.get("page"))
    records, total = await files.of_app(admin.base, account_id or None, Page(page_no, PAGE_SIZE, True, "uploaded"))
    last = max(1, math.ceil(total / PAGE_SIZE))
    if page_no > last:  # past the end (files were deleted since): the last page
        return redirect(request, list_url(account_id, last))
    pages = pager(page_no, last, lambda n: list_url(account_id, n))
    context = {
        "account_id": account_id,
        "rows": [row(r) for r in records],
        "total": total,
        "pages": pages,
        "page_no": page_no,
    }
    return render(request, "ui/files.html", context)


@page
async def delete_file(request: Request) -> Response:
    """``/ui/fs/del/<fileId>``: GET asks for confirmation, POST deletes the record and the bytes, 303 to ``/ui/fs``."""
    admin = await admin_of(request)
    file_id = request.path_params["id"]
    files = services(request).files
    if request.method == "GET":
        record = await files.record(admin.base, file_id)
        context = {
            "heading": "Delete this file?",
            "question": f"The file {record.name} ({size_text(record.size)}, {content_type(record.key)}, "
            f"account {record.account_id}, uploaded {when(record.uploaded)}) and its stored bytes will be "
            "deleted: its URL will stop working. This cannot be undone.",
            "action": "/ui/fs/del/" + quote(file_id, safe=""),
            "back": "/ui/fs",
        }
        return render(request, "ui/confirm.html", context)
    check_csrf(admin, await request.form())
    await files.delete(admin.base, file_id)
    return redirect(request, "/ui/fs", "The file was deleted.")


routes = [
    Route("/ui/fs", list_files, methods=["GET"]),
    Route("/ui/fs/del/{id}", delete_file, methods=["GET", "POST"]),
]
