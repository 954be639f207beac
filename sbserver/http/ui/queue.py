"""The function queue page of the admin UI: ``/ui/queue``, the app's function runs in flight.

Three sections, read through ``FunctionService`` inside the admin's own base: jobs pending (never
claimed, or left by a process whose lease expired), jobs running (claimed by a process that holds
a live lease: running, or about to on that process), and the newest failed runs across the app's
functions with their output. The sections are also served alone (``/ui/queue/sections``), which
the page polls with htmx; without JavaScript the page is complete and a link reloads it. A poll
is not the admin's activity: it does not renew the session's idle time.

Retry (``POST /ui/queue/retry``, ``run``) queues the failed run's function again with the input
the run kept (an event's runs keep theirs when they fail); the new run joins the function's
history like any other. Another app's run, or one without a kept input, is refused with the reason.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sbserver.http.request import services
from sbserver.http.ui.functions import when
from sbserver.http.ui.session import admin_of, check_csrf, form_text, not_activity, page, redirect
from sbserver.http.ui.session import render as render_page
from sbserver.services.functions import MAX_ATTEMPTS, NOT_KEPT
from sbserver.types import FailedRun, QueuedJob

LIMIT = 50  # jobs of each state, and failed runs, listed
POLL = "3s"  # how often the page refreshes its sections


def _render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    return render_page(request, name, {"active": "fn", **context}, status)


def clock(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S")


def fn_url(fn_id: str) -> str:
    return "/ui/fn/" + quote(fn_id, safe="")


def _job(job: QueuedJob, now: float) -> dict[str, Any]:
    claimed = bool(job.owner)
    return {
        "id": job.id,
        "name": job.function_name or "(deleted function)",
        "url": fn_url(job.function_id) if job.function_name else "",
        "queued": when(job.created),
        "owner": job.owner,
        # job_rows and claim_jobs count a claim as an attempt; the first claim is attempt 1
        "attempt": job.attempts + 1,
        "tried": job.attempts + 1 if claimed else 0,
        "lease": clock(job.lease_until) if claimed else "",
        "lease_left": max(0, round(job.lease_until - now)),
    }


def _failed(failed: FailedRun) -> dict[str, Any]:
    run = failed.run
    return {
        "id": run.id,
        "name": failed.function_name,
        "url": fn_url(run.function_id) + "#run-" + quote(run.id, safe=""),
        "time": when(run.completed),
        "version": run.version,
        "output": run.output,
        "error": run.output[-1] if run.output else "failed",
        "kept": failed.kept,
    }


async def _sections(request: Request) -> dict[str, Any]:
    admin = await admin_of(request)
    svc = services(request).functions
    now = time.time()
    state = await svc.queue(admin.base, LIMIT)
    failed = await svc.failed_runs(admin.base, LIMIT)
    return {
        "pending": [_job(j, now) for j in state.pending],
        "running": [_job(j, now) for j in state.running],
        "pending_count": state.pending_count,
        "running_count": state.running_count,
        "failed": [_failed(f) for f in failed],
        "limit": LIMIT,
        "max_attempts": MAX_ATTEMPTS,
        "not_kept": NOT_KEPT,
        "updated": clock(now),
        "poll": POLL,
    }


@page
async def queue_page(request: Request) -> Response:
    return _render(request, "ui/queue.html", await _sections(request))


@page
async def queue_sections(request: Request) -> Response:
    """``/ui/queue/sections``: the three sections alone (the page's poll, which is not activity)."""
    context = await _sections(request)
    not_activity(request)
    return _render(request, "ui/queue_sections.html", context)


@page
async def retry(request: Request) -> Response:
    """``POST /ui/queue/retry``: queue the failed run ``run`` again with its kept input; 303 to
    ``/ui/queue``, where the new job shows until it has run."""
    admin = await admin_of(request)
    form = await request.form()
    check_csrf(admin, form)
    _, fn = await services(request).functions.retry(admin.base, form_text(form, "run", 200).strip())
    return redirect(
        request, "/ui/queue", f"Retrying {fn.name} with the failed run's input: its new run joins its history."
    )


routes = [
    Route("/ui/queue", queue_page, methods=["GET"]),
    Route("/ui/queue/sections", queue_sections, methods=["GET"]),
    Route("/ui/queue/retry", retry, methods=["POST"]),
]
