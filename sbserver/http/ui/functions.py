"""The functions pages of the admin UI (spec 08 §2): ``/ui/fn``, the editor and its history.

Saving an existing function stores a new version (``FunctionService.update``); "Run now" runs it
as the app's root with a JSON body, like ``/fn/sudoexec``, and records the run before answering,
so the redirect lands on a history that shows it. Everything is scoped to the admin's base.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from sbserver.errors import BadRequest, InvalidJSON, NotFound, SBError, client_message
from sbserver.http.request import parse_json, services
from sbserver.http.ui.session import admin_of, check_csrf, page
from sbserver.http.ui.session import render as render_page
from sbserver.types import ZERO_TIME

TRIGGERS = ("web", "chan_out", "chan_in", "db_created", "db_updated", "db_deleted", "task")


def when(stamp: str) -> str:
    """A stored RFC 3339 time as ``2026-01-02 03:04:05`` (``never`` for the zero time)."""
    if not stamp or stamp == ZERO_TIME:
        return "never"
    return stamp.replace("T", " ")[:19]


def duration(started: str, completed: str) -> str:
    try:
        a = datetime.fromisoformat(started.replace("Z", "+00:00"))
        b = datetime.fromisoformat(completed.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    ms = (b - a).total_seconds() * 1000
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    return render_page(request, name, {"active": "fn", **context}, status)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def _by_id(request: Request, fn_id: str) -> dict[str, Any]:
    """The function ``fn_id`` of the admin's app with its history; 404 when it has none."""
    admin = await admin_of(request)
    svc = services(request).functions
    for fn in await svc.all(admin.base):
        if fn["id"] == fn_id:
            return await svc.info(admin.base, fn["name"])
    raise NotFound(f"function {fn_id[:60]!r} not found in this app")


@page
async def list_functions(request: Request) -> Response:
    admin = await admin_of(request)
    fns = sorted(await services(request).functions.all(admin.base), key=lambda f: f["name"])
    rows = [
        {
            "id": f["id"],
            "name": f["name"],
            "version": f["version"],
            "trigger": f["trigger"],
            "last_run": when(f["lastRun"]),
            "updated": when(f["lastUpdated"]),
            "url": "/ui/fn/" + quote(f["id"], safe=""),
            "del_url": "/ui/fn/del/" + quote(f["name"], safe=""),
        }
        for f in fns
    ]
    return render(request, "ui/fn_list.html", {"rows": rows})


def _editor(fn: dict[str, Any], opened: str = "") -> dict[str, Any]:
    history = [
        {
            "id": r["id"],
            "version": r["version"],
            "started": when(r["started"]),
            "duration": duration(r["started"], r["completed"]),
            "success": r["success"],
            "output": r["output"],
            "open": r["id"] == opened,
        }
        for r in sorted(fn.get("history", []), key=lambda r: str(r["started"]), reverse=True)
    ]
    return {"fn": fn, "history": history, "triggers": TRIGGERS, "error": "", "run_body": "{}", "run_error": ""}


@page
async def new_function(request: Request) -> Response:
    await admin_of(request)
    fn = {"id": "new", "name": "", "trigger": "web", "code": "function handle(body, qs, headers) {\n  log(body);\n}\n"}
    return render(request, "ui/fn_edit.html", _editor(fn))


@page
async def edit_function(request: Request) -> Response:
    fn = await _by_id(request, request.path_params["id"])
    return render(request, "ui/fn_edit.html", _editor(fn, request.query_params.get("run", "")))


@page
async def save_function(request: Request) -> Response:
    """``POST /ui/fn/save``: ``id=new`` creates, else a new version; 303 to the editor. A refused
    save shows the editor again with the reason and the code as it was typed."""
    admin = await admin_of(request)
    form = await _form(request)
    check_csrf(admin, form)
    svc = services(request).functions
    fn_id, name = form.get("id", "").strip(), form.get("name", "").strip()
    trigger, code = form.get("trigger", ""), form.get("code", "").replace("\r\n", "\n")
    try:
        if not fn_id:
            raise BadRequest("missing id: use new to create a function")
        if fn_id == "new":
            created = await svc.add(admin.base, name, trigger, code, "")
            fn_id = created.id
        else:
            current = await _by_id(request, fn_id)
            name = current["name"]
            await svc.update(admin.base, fn_id, trigger, code, None)
    except SBError as exc:
        if exc.status == 404:
            raise
        typed_in = {"id": fn_id, "name": name, "trigger": trigger, "code": code}
        context = _editor({**(await _by_id(request, fn_id)), **typed_in} if fn_id != "new" else typed_in)
        context["error"] = client_message(exc)
        return render(request, "ui/fn_edit.html", context, status=exc.status)
    return RedirectResponse("/ui/fn/" + quote(fn_id, safe=""), status_code=303)


@page
async def run_function(request: Request) -> Response:
    """``POST /ui/fn/run``: run ``id`` now with the JSON ``body`` as ``handle(body, qs, headers)``;
    303 to the editor with that run opened in the history."""
    admin = await admin_of(request)
    form = await _form(request)
    check_csrf(admin, form)
    fn_id, raw = form.get("id", ""), form.get("body", "").strip()
    fn = await _by_id(request, fn_id)
    try:
        try:
            body = parse_json(raw.encode()) if raw else None
        except InvalidJSON as exc:
            raise BadRequest(f"invalid run body: {exc.message.removeprefix('invalid JSON body: ')}") from None
        run = await services(request).functions.run_now(admin.base, admin.identity, fn["name"], [body, {}, {}])
    except SBError as exc:
        context = _editor(fn)
        context["run_body"], context["run_error"] = raw, client_message(exc)
        return render(request, "ui/fn_edit.html", context, status=exc.status)
    target = "/ui/fn/" + quote(fn_id, safe="") + "?" + urlencode({"run": run.id})
    return RedirectResponse(target + "#run-" + run.id, status_code=303)


@page
async def delete_function(request: Request) -> Response:
    """``/ui/fn/del/<name>``: GET asks for confirmation, POST deletes by name and 303 to ``/ui/fn``."""
    admin = await admin_of(request)
    name = request.path_params["name"]
    svc = services(request).functions
    fn = await svc.get(admin.base, name)
    if request.method == "GET":
        return render(request, "ui/fn_delete.html", {"fn": fn})
    check_csrf(admin, await _form(request))
    await svc.delete(admin.base, name)
    return RedirectResponse("/ui/fn", status_code=303)


routes = [
    Route("/ui/fn", list_functions, methods=["GET"]),
    Route("/ui/fn/new", new_function, methods=["GET"]),
    Route("/ui/fn/save", save_function, methods=["POST"]),
    Route("/ui/fn/run", run_function, methods=["POST"]),
    Route("/ui/fn/del/{name}", delete_function, methods=["GET", "POST"]),
    Route("/ui/fn/{id}", edit_function, methods=["GET"]),
]
