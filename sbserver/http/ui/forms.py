"""The form submissions pages of the admin UI (spec 08 §2): ``/ui/forms`` and ``/ui/forms/del/<id>``.

The page lists the app's form names in a select (a plain GET form: it works without JavaScript)
and one form's submissions, newest first, a page at a time. A submission is named by its id on
these pages (``services.forms.submission_id``): another app's id is not found here. Deleting asks
first (GET), then deletes on a POST carrying the session's CSRF token.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sbserver.http.request import services
from sbserver.http.ui.session import admin_of, check_csrf, page, page_number, pager, redirect
from sbserver.http.ui.session import render as render_page
from sbserver.services.forms import check_form_name, submission_id

PAGE_SIZE = 20


def when(stamp: str) -> str:
    """A stored RFC 3339 time as ``2026-01-02 03:04:05``."""
    return stamp.replace("T", " ")[:19]


def list_url(form: str, page_no: int = 1) -> str:
    query = {"fn": form, **({"page": str(page_no)} if page_no > 1 else {})}
    return "/ui/forms?" + urlencode(query)


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    return render_page(request, name, {"active": "forms", **context}, status)


@page
async def list_submissions(request: Request) -> Response:
    """``/ui/forms[?fn=<form>&page=<n>]``: the form names, and the chosen (else the first) form's submissions."""
    admin = await admin_of(request)
    svc = services(request).forms
    names = await svc.names(admin.base)
    form = request.query_params.get("fn", "").strip()
    if form:
        check_form_name(form)
        if form not in dict(names):  # asked for by name with no submissions: still the one shown as chosen
            names = [(form, 0), *names]
    elif names:
        form = names[0][0]
    total = dict(names).get(form, 0)
    last = max(1, math.ceil(total / PAGE_SIZE))
    page_no = min(page_number(request.query_params.get("page")), last)
    entries = await svc.entries(admin.base, form, page_no, PAGE_SIZE) if total else []
    rows = [
        {
            "id": submission_id(sub),
            "created": when(sub.created),
            "fields": list(sub.data.items()),
            "del_url": "/ui/forms/del/" + quote(submission_id(sub), safe=""),
        }
        for sub in entries
    ]
    pages = pager(page_no, last, lambda n: list_url(form, n))
    context = {"names": names, "form": form, "total": total, "rows": rows, "pages": pages, "page_no": page_no}
    return render(request, "ui/forms.html", context)


@page
async def delete_submission(request: Request) -> Response:
    """``/ui/forms/del/<id>``: GET asks for confirmation, POST deletes, 303 to ``/ui/forms?fn=<form>``."""
    admin = await admin_of(request)
    entry_id = request.path_params["id"]
    svc = services(request).forms
    if request.method == "GET":
        sub = await svc.entry(admin.base, entry_id)
        shown = ", ".join(f"{k}: {v[:40]}" for k, v in list(sub.data.items())[:4]) or "no fields"
        context = {
            "heading": "Delete this submission?",
            "question": f"The submission to the form {sub.form} sent {when(sub.created)} ({shown}) "
            "will be deleted. This cannot be undone.",
            "action": "/ui/forms/del/" + quote(entry_id, safe=""),
            "back": list_url(sub.form),
        }
        return render(request, "ui/confirm.html", context)
    check_csrf(admin, await request.form())
    sub = await svc.delete(admin.base, entry_id)
    return redirect(request, list_url(sub.form), "The submission was deleted.")


routes = [
    Route("/ui/forms", list_submissions, methods=["GET"]),
    Route("/ui/forms/del/{id}", delete_submission, methods=["GET", "POST"]),
]
