"""Task routes (root): /task (list, create), /task/{id} (get, update, delete),
/task/{id}/run (run now) and /task/{id}/runs (history)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sbserver.http.request import json_body, root_of, services
from sbserver.http.responses import boolean, ok


async def tasks(request: Request) -> Response:
    base, _ = await root_of(request)
    svc = services(request).tasks
    if request.method == "POST":
        return ok((await svc.create(base, await json_body(request))).public())
    return ok([t.public() for t in await svc.all(base)])


async def one_task(request: Request) -> Response:
    base, _ = await root_of(request)
    svc = services(request).tasks
    task_id = request.path_params["id"]
    if request.method == "POST" or request.method == "PUT":
        return ok((await svc.update(base, task_id, await json_body(request))).public())
    if request.method == "DELETE":
        await svc.delete(base, task_id)
        return boolean(True)
    return ok((await svc.get(base, task_id)).public())


async def run_now(request: Request) -> Response:
    base, _ = await root_of(request)
    return ok((await services(request).tasks.run_now(base, request.path_params["id"])).public())


async def task_runs(request: Request) -> Response:
    base, _ = await root_of(request)
    return ok([r.public() for r in await services(request).tasks.runs(base, request.path_params["id"])])


routes = [
    Route("/task", tasks, methods=["GET", "POST"]),
    Route("/task/{id}", one_task, methods=["GET", "POST", "PUT", "DELETE"]),
    Route("/task/{id}/run", run_now, methods=["POST"]),
    Route("/task/{id}/runs", task_runs, methods=["GET"]),
]
