"""The scheduled tasks pages of the admin UI (spec 08 §2, spec 06 §5): ``/ui/tasks`` and each task.

- ``GET /ui/tasks``: the app's tasks with their next and last run;
- ``GET|POST /ui/tasks/new``: the creation form (``name``, ``type``, ``value``, ``interval``,
  ``meta``); POST stores and schedules it, 303 to ``/ui/tasks``;
- ``GET /ui/tasks/<id>``: the same form filled in, the enable/disable switch, "Run now" and the
  run history; ``POST /ui/tasks/<id>`` saves the form, 303 back to the task;
- ``POST /ui/tasks/<id>/enabled`` (``enabled`` = ``true``/``false``) and ``POST
  /ui/tasks/<id>/run`` (303 to the task with that run opened);
- ``/ui/tasks/del/<id>``: GET asks for confirmation, POST deletes, 303 to ``/ui/tasks`` (upstream
  had no delete).

Everything goes through ``TaskService`` inside the signed-in admin's base: another app's task is
not found. A refused form is shown again with the reason and what was typed. The pages never
need the scheduler loop: when it does not run on this process (``SB_SCHEDULER=0``, or
``PRIMARY_INSTANCE_HOSTNAME`` names another host), a task is stored for the primary to run, "Run
now" still runs it here, and the pages say so.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from sbserver.errors import BadRequest, SBError, client_message
from sbserver.http.request import services
from sbserver.http.ui.functions import duration, when
from sbserver.http.ui.session import admin_of, check_csrf, page, redirect
from sbserver.http.ui.session import render as render_page
from sbserver.services import schedule
from sbserver.services.tasks import TYPES
from sbserver.types import Task, TaskRun

FIELDS = ("name", "type", "value", "interval", "meta")
PLACEHOLDER = "30 6 * * *"


def next_run(task: Task, now: float) -> str:
    """When the scheduler will next run ``task``, computed as it does (``schedule.next_after``
    from now, anchored at the task's creation for ``@every``)."""
    if not task.enabled:
        return "—"
    try:
        due = schedule.parse(task.interval, task.timezone).next_after(now, task.anchor)
    except BadRequest:
        return "never (invalid interval)"
    return utc(due)


def utc(t: float) -> str:
    """Unix seconds as ``2026-01-02 03:04:05`` (UTC), like ``when`` shows stored times."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def scheduler_here(request: Request) -> bool:
    """Whether this process runs the scheduler loop (``TaskService.start``'s own condition)."""
    svc = services(request)
    return svc.settings.scheduler_enabled and svc.functions.runs_jobs


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    return render_page(request, name, {"active": "tasks", "scheduler_here": scheduler_here(request), **context}, status)


def task_url(task_id: str, suffix: str = "") -> str:
    return "/ui/tasks/" + quote(task_id, safe="") + suffix


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _typed(form: dict[str, str]) -> dict[str, str]:
    """The task fields of a form, as the service takes them."""
    return {key: form.get(key, "").replace("\r\n", "\n") for key in FIELDS}


async def _form_context(request: Request, task: dict[str, str], error: str = "") -> dict[str, Any]:
    admin = await admin_of(request)
    functions = sorted(f["name"] for f in await services(request).functions.all(admin.base))
    return {
        "task": task,
        "is_new": task["id"] == "new",
        "types": TYPES,
        "functions": functions,
        "placeholder": PLACEHOLDER,
        "timezone": services(request).settings.scheduler_timezone,
        "error": error,
    }


@page
async def list_tasks(request: Request) -> Response:
    admin = await admin_of(request)
    now = time.time()
    rows = [
        {
            "id": t.id,
            "name": t.name,
            "type": t.type,
            "value": t.value,
            "interval": t.interval,
            "timezone": t.timezone,
            "enabled": t.enabled,
            "next": next_run(t, now),
            "last": when(t.last),
            "url": task_url(t.id),
        }
        for t in sorted(await services(request).tasks.all(admin.base), key=lambda t: (t.name, t.id))
    ]
    return render(request, "ui/task_list.html", {"rows": rows})


@page
async def new_task(request: Request) -> Response:
    """``GET|POST /ui/tasks/new``: the form; POST creates and 303s to ``/ui/tasks``, or shows the
    form again with the reason (400, 409 at the app's limit) and what was typed."""
    admin = await admin_of(request)
    if request.method == "GET":
        blank = {"id": "new", "name": "", "type": "function", "value": "", "interval": "", "meta": ""}
        return render(request, "ui/task_edit.html", await _form_context(request, blank))
    form = await _form(request)
    check_csrf(admin, form)
    typed = _typed(form)
    try:
        task = await services(request).tasks.create(admin.base, typed)
    except SBError as exc:
        context = await _form_context(request, {"id": "new", **typed}, client_message(exc))
        return render(request, "ui/task_edit.html", context, exc.status)
    return redirect(request, "/ui/tasks", f"Task {task.name} created; next run: {next_run(task, time.time())} UTC.")


def _history(runs: list[TaskRun], opened: str) -> list[dict[str, Any]]:
    return [
        {
            "id": r.id,
            "started": when(r.started),
            "due": utc(r.due),
            "duration": duration(r.started, r.completed),
            "outcome": r.outcome,
            "error": r.error,
            "output": r.output,
            "open": r.id == opened,
        }
        for r in sorted(runs, key=lambda r: (r.started, r.id), reverse=True)
    ]


async def _task_page(
    request: Request, task: Task, typed: dict[str, str] | None = None, error: str = "", run_error: str = ""
) -> dict[str, Any]:
    admin = await admin_of(request)
    runs = await services(request).tasks.runs(admin.base, task.id)
    fields = typed if typed is not None else {key: getattr(task, key) for key in FIELDS}
    context = await _form_context(request, {"id": task.id, **fields}, error)
    context.update(
        saved=task,
        next=next_run(task, time.time()),
        last=when(task.last),
        history=_history(runs, request.query_params.get("run", "")),
        run_error=run_error,
    )
    return context


@page
async def show_task(request: Request) -> Response:
    """``GET /ui/tasks/<id>``: the edit form, the switch, Run now and the history;
    ``POST``: save the form, 303 back here (a refusal: the form again with its reason)."""
    admin = await admin_of(request)
    svc = services(request).tasks
    task = await svc.get(admin.base, request.path_params["id"])
    if request.method == "GET":
        return render(request, "ui/task_edit.html", await _task_page(request, task))
    form = await _form(request)
    check_csrf(admin, form)
    typed = _typed(form)
    try:
        saved = await svc.update(admin.base, task.id, typed)
    except SBError as exc:
        if exc.status == 404:
            raise
        context = await _task_page(request, task, typed, client_message(exc))
        return render(request, "ui/task_edit.html", context, exc.status)
    return redirect(request, task_url(task.id), f"Task {saved.name} saved.")


@page
async def set_enabled(request: Request) -> Response:
    """``POST /ui/tasks/<id>/enabled``: ``enabled`` = ``true`` or ``false``; 303 to the task."""
    admin = await admin_of(request)
    form = await _form(request)
    check_csrf(admin, form)
    svc = services(request).tasks
    task = await svc.get(admin.base, request.path_params["id"])
    wanted = form.get("enabled", "")
    if wanted not in ("true", "false"):
        raise BadRequest(f"invalid enabled value {wanted[:20]!r}: use true or false")
    try:
        saved = await svc.update(admin.base, task.id, {"enabled": wanted == "true"})
    except SBError as exc:
        if exc.status == 404:
            raise
        context = await _task_page(request, task, error=client_message(exc))
        return render(request, "ui/task_edit.html", context, exc.status)
    return redirect(request, task_url(task.id), f"Task {saved.name} {'enabled' if saved.enabled else 'disabled'}.")


@page
async def run_task(request: Request) -> Response:
    """``POST /ui/tasks/<id>/run``: run it now, here (it waits for the run to end), then 303 to
    the task with that run opened in the history. A disabled task is not run."""
    admin = await admin_of(request)
    check_csrf(admin, await _form(request))
    svc = services(request).tasks
    task = await svc.get(admin.base, request.path_params["id"])
    try:
        if not task.enabled:
            raise BadRequest("this task is disabled: enable it to run it")
        run = await svc.run_now(admin.base, task.id)
    except SBError as exc:
        if exc.status == 404:
            raise
        context = await _task_page(request, task, run_error=client_message(exc))
        return render(request, "ui/task_edit.html", context, exc.status)
    target = task_url(task.id) + "?" + urlencode({"run": run.id})
    return RedirectResponse(target + "#run-" + run.id, status_code=303)


@page
async def delete_task(request: Request) -> Response:
    """``/ui/tasks/del/<id>``: GET asks for confirmation, POST deletes it and its runs."""
    admin = await admin_of(request)
    svc = services(request).tasks
    task = await svc.get(admin.base, request.path_params["id"])
    if request.method == "GET":
        question = (
            f"The task {task.name} ({task.type} {task.value}, interval {task.interval}) and its run history "
            "will be deleted; it will not run again. This cannot be undone."
        )
        context = {
            "heading": f"Delete task {task.name}?",
            "question": question,
            "action": "/ui/tasks/del/" + quote(task.id, safe=""),
            "back": task_url(task.id),
        }
        return render(request, "ui/confirm.html", context)
    check_csrf(admin, await _form(request))
    await svc.delete(admin.base, task.id)
    return redirect(request, "/ui/tasks", f"Task {task.name} deleted.")


routes = [
    Route("/ui/tasks", list_tasks, methods=["GET"]),
    Route("/ui/tasks/new", new_task, methods=["GET", "POST"]),
    Route("/ui/tasks/del/{id}", delete_task, methods=["GET", "POST"]),
    Route("/ui/tasks/{id}/enabled", set_enabled, methods=["POST"]),
    Route("/ui/tasks/{id}/run", run_task, methods=["POST"]),
    Route("/ui/tasks/{id}", show_task, methods=["GET", "POST"]),
]
