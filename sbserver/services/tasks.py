"""Scheduled tasks: management and the scheduler that runs them.

Every process runs the same scheduler loop over the installation-wide task table; a tick is
taken with a compare-and-set on the task's next run (``claim_task``), so exactly one process
runs each due tick, with no primary instance. A claim also holds the task until its run
finishes (or its deadline passes): a tick that comes due meanwhile is skipped and recorded as
skipped. After downtime the next run is computed from *now*, so a missed tick runs once, not
once per missed tick. Edits, disabling and deletion change the row the claim compares against,
so they take effect on every process before the next tick. The clock is injectable: tests call
``tick(now)`` with the time they want.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlparse

import orjson

from sbserver.backends.storage import Store
from sbserver.errors import BadRequest, Conflict, NotFound, SBError
from sbserver.ids import new_id, new_ordered_id, now_iso
from sbserver.logs import ACTIVITY
from sbserver.outbound import Outbound, OutboundError
from sbserver.services import schedule
from sbserver.services.functions import FunctionService, message_data
from sbserver.services.realtime import Broker
from sbserver.services.tenancy import TenancyService
from sbserver.settings import Settings
from sbserver.types import Base, Task, TaskRun

log = logging.getLogger("sbserver.tasks")
TYPES = ("function", "message", "http")
HTTP_TIMEOUT = 30.0
HTTP_REDIRECTS = 5  # followed like a browser's client; every hop goes through the outbound guard
BATCH = 1000


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e6):06d}Z"


def parse_meta(meta: str) -> dict[str, Any]:
    """The task's meta JSON text as an object ({} when empty); 400 when it is not."""
    if not meta.strip():
        return {}
    try:
        value = orjson.loads(meta)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"invalid meta: not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise BadRequest('invalid meta: expected a JSON object such as {"channel": "c", "data": "x"}')
    return value


def meta_text(value: Any) -> str:
    """``data``/headers given as objects are used as their JSON text (spec leniency)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def meta_headers(meta: dict[str, Any]) -> dict[str, str]:
    raw = next((meta[k] for k in meta if k.lower() in ("httpheaders", "headers")), None)
    if raw in (None, ""):
        return {}
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"invalid meta: HTTPHeaders is not a JSON object ({exc})") from exc
    if not isinstance(raw, dict):
        raise BadRequest("invalid meta: HTTPHeaders must be an object of header names to values")
    return {str(k): str(v) for k, v in raw.items() if str(k)}


class TaskService:
    def __init__(
        self,
        store: Store,
        functions: FunctionService,
        broker: Broker,
        tenancy: TenancyService,
        http: Outbound,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.functions = functions
        self.broker = broker
        self.tenancy = tenancy
        self.http = http
        self.settings = settings
        self.clock = clock
        self.keep = settings.function_history
        self.metrics = functions.metrics  # the app's instruments
        self._loop_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[Any]] = set()

    # management
    async def _validate(self, base: Base, body: Any, current: Task | None = None) -> Task:
        if not isinstance(body, dict):
            raise BadRequest("invalid JSON body: expected a task object")

        def text(key: str, default: str = "") -> str:
            value = body.get(key, default)
            if value is None:
                return default
            if key == "meta":
                return meta_text(value)
            if not isinstance(value, str):
                raise BadRequest(f'invalid field "{key}": expected a string')
            return value.strip()

        base_task = current or Task(new_id(), base.name, "", "", "", "", "")
        name = text("name", base_task.name)
        kind = text("type", base_task.type).lower()
        value = text("value", base_task.value)
        interval = text("interval", base_task.interval)
        meta = text("meta", base_task.meta)
        tz = text("timezone", base_task.timezone) or self.settings.scheduler_timezone
        enabled = body.get("enabled", base_task.enabled)
        if not isinstance(enabled, bool):
            raise BadRequest('invalid field "enabled": expected true or false')
        if not name:
            raise BadRequest("invalid task: name is required")
        if kind not in TYPES:
            raise BadRequest(f"invalid task type {kind!r}: use function, message or http")
        if not value:
            raise BadRequest("invalid task: value is required (function name, message type or URL)")
        sched = schedule.parse(interval, tz)
        parsed = parse_meta(meta)
        if kind == "function":
            # A task whose function was deleted can still be disabled (or edited while disabled);
            # enabling it, or naming another function, checks the function again.
            unchanged = current is not None and value == current.value and not (enabled and not current.enabled)
            if (enabled or not unchanged) and await self.store.function_by_name(base, value) is None:
                raise BadRequest(f"invalid task: unknown function {value!r}")
        elif kind == "message":
            if not isinstance(parsed.get("channel", ""), str) or not parsed.get("channel"):
                raise BadRequest('invalid meta: a message task needs {"channel": "<channel>", "data": "..."}')
        else:
            url = urlparse(value)
            if url.scheme not in ("http", "https") or not url.netloc:
                raise BadRequest(f"invalid task: {value[:80]!r} is not an http(s) URL")
            meta_headers(parsed)
            method = parsed.get("method", "POST")
            if not isinstance(method, str) or method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                raise BadRequest("invalid meta: method must be GET, POST, PUT, PATCH or DELETE")
        now = self.clock()
        anchor = base_task.anchor or now
        task = Task(
            base_task.id,
            base.name,
            name,
            kind,
            value,
            meta,
            interval,
            tz,
            enabled,
            base_task.last,
            sched.next_after(now, anchor),
            anchor,
        )
        return task

    async def create(self, base: Base, body: Any) -> Task:
        task = await self._validate(base, body)
        cap = (await self.functions.limits(base)).tasks
        if len(await self.store.tasks(base)) >= cap:
            raise Conflict(
                f"too many tasks: this app has its limit of {cap} scheduled tasks "
                "(SB_TASK_MAX_PER_APP, or its own tasks limit); delete one first"
            )
        await self.store.create_task(task)
        self._wake.set()
        return task

    async def update(self, base: Base, task_id: str, body: Any) -> Task:
        current = await self.get(base, task_id)
        task = await self._validate(base, body, current)
        if not await self.store.update_task(task):
            raise NotFound("task not found")
        self._wake.set()
        return task

    async def delete(self, base: Base, task_id: str) -> None:
        if not await self.store.delete_task(base, task_id):
            raise NotFound("task not found")

    async def get(self, base: Base, task_id: str) -> Task:
        task = await self.store.task(base, task_id)
        if task is None:
            raise NotFound("task not found")
        return task

    async def all(self, base: Base) -> list[Task]:
        return await self.store.tasks(base)

    async def runs(self, base: Base, task_id: str) -> list[TaskRun]:
        await self.get(base, task_id)
        return await self.store.task_runs(task_id, self.keep)

    async def run_now(self, base: Base, task_id: str) -> TaskRun:
        """Run a task at once, outside its schedule (still never two runs at a time)."""
        task = await self.get(base, task_id)
        if not task.enabled:
            raise Conflict(f"task {task.name!r} is disabled: enable it to run it")
        now = self.clock()
        if not await self.store.claim_task(task.id, task.next_run, task.next_run, _iso(now), now + self._hold(), now):
            raise Conflict("task is already running (or was just changed): try again")
        return await self._execute(task, now)

    # scheduling
    def _hold(self) -> float:
        return self.settings.function_timeout + HTTP_TIMEOUT

    async def start(self) -> None:
        if self.settings.scheduler_enabled and self.functions.runs_jobs:
            self._loop_task = asyncio.create_task(self._run_forever(), name="scheduler")

    async def stop(self) -> None:
        if self._loop_task is not None:
            # Python 3.11's wait_for can swallow a cancel that lands as its wait ends: cancel again
            while not self._loop_task.done():
                self._loop_task.cancel()
                await asyncio.wait([self._loop_task], timeout=0.5)
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)

    async def _run_forever(self) -> None:
        while True:
            try:
                await self.tick(self.clock())
                nxt = await self.store.next_due()
            except SBError as exc:
                log.warning("scheduler: %s", exc.message)
                nxt = None
            except Exception:
                log.exception("scheduler tick failed")
                nxt = None
            now = self.clock()
            delay = 1.0 if nxt is None else min(1.0, max(0.0, nxt - now))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def tick(self, now: float) -> list[asyncio.Task[TaskRun]]:
        """Take every tick due at ``now``; returns the runs it started (tests may await them)."""
        started: list[asyncio.Task[TaskRun]] = []
        due = await self.store.due_tasks(now, BATCH)
        results = await asyncio.gather(*(self._take(task, now) for task in due), return_exceptions=True)
        for task, won in zip(due, results, strict=True):
            if won is True:
                self.metrics.scheduler_delay.observe(max(0.0, now - task.next_run))
                run = asyncio.create_task(self._execute(task, task.next_run))
                self._running.add(run)
                run.add_done_callback(self._running.discard)
                started.append(run)
            elif isinstance(won, BaseException) and not isinstance(won, SBError):
                log.error("scheduler: claiming %s failed: %r", task.id, won)
        return started

    async def _take(self, task: Task, now: float) -> bool:
        try:
            sched = schedule.parse(task.interval, task.timezone)
        except BadRequest as exc:
            log.warning("scheduler: task %s has an invalid interval (%s); skipped", task.id, exc.message)
            return False
        nxt = sched.next_after(now, task.anchor)
        if task.running_until > now:
            skipped = TaskRun(
                new_ordered_id(),
                task.id,
                task.next_run,
                now_iso(),
                now_iso(),
                "skipped",
                "the previous run was still going",
            )
            await self.store.skip_task(task.id, task.next_run, nxt, skipped, self.keep)
            self._ran(task, 0.0, skipped)
            return False
        return await self.store.claim_task(task.id, task.next_run, nxt, _iso(now), now + self._hold(), now)

    async def _execute(self, task: Task, due: float) -> TaskRun:
        started = now_iso()
        began = time.perf_counter()
        output: list[str] = []
        error = ""
        ok = False
        try:
            base = await self.tenancy.base_by_name(task.base)
            # The definition as it is now: an edit committed before this tick was claimed wins.
            fresh = await self.store.task(base, task.id)
            if fresh is None:
                raise NotFound("the task was deleted")
            task = fresh
            meta = parse_meta(task.meta)
            if task.type == "function":
                data = meta_text(meta.get("data"))
                fn_run = await self.functions.run_task(
                    base, task.value, task.name, message_data(data) if data else None
                )
                output, ok = fn_run.output, fn_run.success
                if not ok:
                    error = fn_run.output[-1] if fn_run.output else "the function failed"
            elif task.type == "message":
                root = await self.tenancy.root_identity(base)
                await self.broker.publish(
                    base, str(meta.get("channel", "")), task.value, meta_text(meta.get("data")), task.id, root
                )
                output, ok = [f"published {task.value} on {meta.get('channel')}"], True
            else:
                ok, output, error = await self._http(base, task, meta)
        except SBError as exc:
            error = exc.message
        except Exception as exc:
            log.exception("task %s failed", task.id)
            error = f"internal error: {exc.__class__.__name__}"
        run = TaskRun(new_ordered_id(), task.id, due, started, now_iso(), "success" if ok else "failed", error, output)
        self._ran(task, time.perf_counter() - began, run)
        try:
            await self.store.finish_task(task.id, run, self.keep)
        except SBError as exc:
            log.warning("task %s: could not record its run: %s", task.id, exc.message)
        return run

    def _ran(self, task: Task, seconds: float, run: TaskRun) -> None:
        """Count the run (success, failed or skipped) and say it on the activity log."""
        self.metrics.task_run(task.type, seconds, run.outcome)
        ACTIVITY.task_run(task.base, task.name, task.type, seconds, run.outcome, run.error)

    async def _http(self, base: Base, task: Task, meta: dict[str, Any]) -> tuple[bool, list[str], str]:
        method = str(meta.get("method") or "POST").upper()
        ct = str(meta.get("ct") or "application/x-www-form-urlencoded")
        headers = {"Content-Type": ct, **meta_headers(meta)}
        data = meta_text(meta.get("data"))
        body = b""
        if data:
            if ct.split(";")[0].strip().lower() == "application/json":
                body = data.encode()
            else:
                fields = orjson.loads(data) if data.strip().startswith("{") else None
                if not isinstance(fields, dict):
                    return False, [], "invalid meta: data must be a JSON object for form-encoded requests"
                body = urlencode({k: v if isinstance(v, str) else meta_text(v) for k, v in fields.items()}).encode()
        try:
            resp = await self.http.request(
                method, task.value, headers=headers, content=body or None, max_redirects=HTTP_REDIRECTS
            )
        except OutboundError as exc:
            return False, [], f"request failed: {exc}"
        root = await self.tenancy.root_identity(base)
        await self.broker.publish(base, f"{task.name}-http-response", "http_response", resp.text, "system", root)
        ok = resp.status < 400
        return ok, [f"HTTP {resp.status}"], "" if ok else f"HTTP {resp.status}"
