"""Server-side functions: management, web execution, event triggers and run history.

Triggered runs go through a durable queue in the store: the process that accepted an event
(the one that handled the chat message, the publish or the database write) enqueues one job
per matching function, already claimed by itself with a lease, and runs them at once. A
process that dies leaves its jobs behind; when their lease expires any process's poller claims
and runs them. So each (event, function) runs once whatever the number of processes, and an
accepted event is not lost to a crash (a run cut short by a crash runs again).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from typing import Any
from urllib.parse import parse_qsl

import orjson

from sbserver.backends.cache import Cache
from sbserver.backends.storage import Store
from sbserver.errors import BadRequest, Conflict, NotFound, SBError
from sbserver.ids import new_id, now_iso, random_code
from sbserver.runtime.pool import Outcome, RuntimePool
from sbserver.services.events import DbEvent, EventBus
from sbserver.services.fnhelpers import HelperContext, Helpers
from sbserver.services.realtime import Broker
from sbserver.services.tenancy import TenancyService
from sbserver.settings import Settings
from sbserver.types import Base, FunctionDef, FunctionRun, Identity, Job

log = logging.getLogger("sbserver.functions")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
UNLIMITED_TYPES = ("chan_out", "db_created", "db_updated", "db_deleted")
MAX_ATTEMPTS = 3


def parse_secrets(raw: str) -> dict[str, str]:
    return dict(parse_qsl(raw or "", keep_blank_values=True))


def identity_dict(ident: Identity) -> dict[str, Any]:
    return {
        "base": ident.base,
        "a": ident.account_id,
        "u": ident.user_id,
        "e": ident.email,
        "r": ident.role,
        "t": ident.user_token,
    }


def identity_from(d: dict[str, Any]) -> Identity:
    return Identity(d["base"], d["a"], d["u"], d.get("e", ""), int(d.get("r", 0)), d.get("t", ""))


def message_data(text: str) -> Any:
    """``data`` for ``handle(channel, type, data)``: the parsed JSON, else the raw string."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


class FunctionService:
    def __init__(
        self,
        store: Store,
        cache: Cache,
        pool: RuntimePool,
        helpers: Helpers,
        broker: Broker,
        events: EventBus,
        tenancy: TenancyService,
        settings: Settings,
    ) -> None:
        self.store = store
        self.cache = cache
        self.pool = pool
        self.helpers = helpers
        self.broker = broker
        self.events = events
        self.tenancy = tenancy
        self.settings = settings
        self.owner = random_code(10, first="w")
        self.history = settings.function_history
        self._tasks: set[asyncio.Task[Any]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._unsubscribe: Any = None
        # One process alone (no Redis): it sees every function change, so it may keep the
        # trigger table in memory, dropped on each change. With several processes every event
        # asks the store, so an edit anywhere takes effect on the next event everywhere.
        self._local_cache = not settings.redis_url
        self._triggers: dict[str, dict[str, list[FunctionDef]]] = {}

    # lifecycle
    async def start(self) -> None:
        self.broker.message_hooks.append(self.on_message)
        self._unsubscribe = self.events.subscribe(self.on_db_event)
        if self.runs_jobs:
            self._poller = asyncio.create_task(self._poll_forever(), name="function-jobs")

    async def stop(self) -> None:
        if self.on_message in self.broker.message_hooks:
            self.broker.message_hooks.remove(self.on_message)
        if self._unsubscribe:
            self._unsubscribe()
        if self._poller:
            self._poller.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pool.stop()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # management
    async def _check_code(self, code: str) -> None:
        outcome = await self.pool.check(code)
        if not outcome.ok:
            raise BadRequest(f"invalid function code: {outcome.error}")

    async def add(self, base: Base, name: str, trigger: str, code: str, secrets: str) -> FunctionDef:
        if not _NAME.match(name):
            raise BadRequest(f"invalid function name {name[:60]!r}: use 1 to 100 letters, digits, '_' or '-'")
        if not trigger.strip():
            raise BadRequest("invalid trigger: it must not be empty (use web for HTTP-only functions)")
        await self._check_code(code)
        now = now_iso()
        fn = FunctionDef(new_id(), name, trigger.strip(), code, 1, now, secrets=secrets)
        try:
            await self.store.create_function(base, fn)
        except Conflict as exc:
            raise Conflict("function name already exists") from exc
        self._triggers.pop(base.name, None)
        return fn

    async def update(self, base: Base, fn_id: str, trigger: str, code: str, secrets: str | None) -> FunctionDef:
        if not fn_id:
            raise BadRequest("missing function id: call /fn/info/<name> to get it")
        if not trigger.strip():
            raise BadRequest("invalid trigger: it must not be empty (use web for HTTP-only functions)")
        await self._check_code(code)
        fn = await self.store.update_function(base, fn_id, code, trigger.strip(), secrets, now_iso())
        self._triggers.pop(base.name, None)
        if fn is None:
            raise NotFound("function not found")
        return fn

    async def delete(self, base: Base, name: str) -> None:
        await self.store.delete_function(base, name)
        self._triggers.pop(base.name, None)

    async def _matching(self, base: Base, keys: list[str]) -> list[FunctionDef]:
        if not self._local_cache:
            return await self.store.functions_for(base, keys)
        table = self._triggers.get(base.name)
        if table is None:
            table = {}
            for fn in await self.store.functions(base):
                table.setdefault(fn.trigger, []).append(fn)
            self._triggers[base.name] = table
        found: dict[str, FunctionDef] = {}
        for key in keys:
            for fn in table.get(key, ()):
                found[fn.id] = fn
        return sorted(found.values(), key=lambda f: f.name)

    async def get(self, base: Base, name: str) -> FunctionDef:
        fn = await self.store.function_by_name(base, name)
        if fn is None:
            raise NotFound(f"function {name[:100]!r} not found")
        return fn

    async def info(self, base: Base, name: str) -> dict[str, Any]:
        fn = await self.get(base, name)
        return fn.public(await self.store.runs(base, fn.id, self.history))

    async def all(self, base: Base) -> list[dict[str, Any]]:
        return [fn.public() for fn in await self.store.functions(base)]

    # running
    async def _execute(
        self, base: Base, fn: FunctionDef, ident: Identity, args: list[Any], legacy: Any = None
    ) -> tuple[Outcome, FunctionRun]:
        started = now_iso()
        timeout = self.settings.function_timeout
        ctx = HelperContext(base, ident, fn, asyncio.get_running_loop().time() + timeout)
        outcome = await self.pool.run(
            fn.code, args, self.helpers.bind(ctx), legacy=legacy, secrets=parse_secrets(fn.secrets), timeout=timeout
        )
        output = ["Function started", *outcome.output]
        if outcome.stage != "compile":
            output.append("Function completed")
        if not outcome.ok:
            output.append(outcome.error)
        run = FunctionRun(new_id(), fn.id, fn.version, started, now_iso(), outcome.ok, output)
        return outcome, run

    async def exec_web(self, base: Base, ident: Identity, name: str, args: list[Any]) -> None:
        """``/fn/exec`` and ``/fn/sudoexec``: run inline; failures answer 500 with the reason."""
        fn = await self.get(base, name)
        outcome, run = await self._execute(base, fn, ident, args)
        self._spawn(self._record(base, run))
        if outcome.ok:
            return
        if outcome.stage == "compile" and outcome.error.startswith("unable to find"):
            raise SBError(outcome.error)
        if outcome.stage == "compile":
            raise SBError(f"error compiling your function: {outcome.error}")
        if outcome.stage == "timeout":
            raise SBError(outcome.error)
        raise SBError(f"error executing your function: {outcome.error}")

    async def _record(self, base: Base, run: FunctionRun) -> None:
        try:
            await self.store.add_run(base, run, self.history)
        except SBError as exc:
            log.warning("could not record a run of %s: %s", run.function_id, exc.message)

    async def run_task(self, base: Base, name: str, task_name: str, data: Any) -> FunctionRun:
        """A scheduled function task: ``handle(taskName, "fn_call", data)`` as the app's root."""
        fn = await self.get(base, name)
        root = await self.tenancy.root_identity(base)
        _, run = await self._execute(base, fn, root, [task_name, "fn_call", data])
        await self._record(base, run)
        return run

    # triggers
    def on_message(self, base: Base, msg: dict[str, Any], ident: Identity | None) -> None:
        """Every channel message this process accepted (chat, /publish, functions, tasks)."""
        kind = msg.get("type", "")
        if kind == "error":
            return
        delivered = dict(msg)
        if kind == "chan_in":
            delivered["type"] = "chan_out"
        self._spawn(self._dispatch(base, delivered, ident))

    def on_db_event(self, event: DbEvent) -> None:
        async def go() -> None:
            try:
                base = await self.tenancy.base_by_name(event.base)
            except SBError:
                return
            data = orjson.dumps(event.doc_id if event.document is None else event.document).decode()
            msg = {
                "sid": "",
                "type": event.type,
                "data": data,
                "channel": event.channel,
                "token": "",
                "auth": {
                    "accountId": event.actor.account_id,
                    "userId": event.actor.user_id,
                    "email": "",
                    "role": event.actor.role,
                },
                "base": base.name,
            }
            await self._dispatch(base, msg, event.actor)

        self._spawn(go())

    async def _rate_limited(self, base: Base, msg: dict[str, Any], ident: Identity | None) -> bool:
        if msg["type"] in UNLIMITED_TYPES or (ident is not None and ident.is_root):
            return False  # chat and database events, and the app's own root (tasks, /publish by root)
        key = f"fnrate:{base.name}:{ident.user_id if ident else ''}"
        try:
            return await self.cache.incr(key, 60) > self.settings.function_rate_per_minute
        except SBError:
            return False

    async def _dispatch(self, base: Base, msg: dict[str, Any], ident: Identity | None) -> None:
        channel, kind = msg.get("channel", ""), msg["type"]
        try:
            fns = await self._matching(base, [t for t in dict.fromkeys([channel, kind]) if t])
            if not fns or await self._rate_limited(base, msg, ident):
                return
            runner = ident or await self.tenancy.root_identity(base)
            args = [channel, kind, message_data(msg.get("data", ""))]
            jobs = []
            for fn in fns:
                legacy = msg if fn.trigger == kind and fn.trigger != channel else None
                payload = {"args": args, "legacy": legacy, "identity": identity_dict(runner), "event": kind}
                jobs.append(Job(new_id(), base.name, fn.id, payload, now_iso()))
            if not self.runs_jobs:  # left unclaimed for the primary instance's poller
                await self.store.enqueue_jobs(jobs, "", 0.0)
                return
            await self.store.enqueue_jobs(jobs, self.owner, time.time() + self._lease())
        except SBError as exc:
            log.warning("functions for %s on %s not dispatched: %s", kind, channel, exc.message)
            return
        await asyncio.gather(*(self._run_job(job, fn) for job, fn in zip(jobs, fns, strict=True)))

    def _lease(self) -> float:
        return self.settings.function_lease_seconds or self.settings.function_timeout + 30.0

    @property
    def runs_jobs(self) -> bool:
        """False when PRIMARY_INSTANCE_HOSTNAME names another host: this process only enqueues."""
        primary = self.settings.primary_instance
        return not primary or primary == socket.gethostname()

    async def _run_job(self, job: Job, fn: FunctionDef | None = None) -> None:
        """Run one claimed job; ``fn`` is given when this process just enqueued it."""
        try:
            base = await self.tenancy.base_by_name(job.base)
            if fn is None:
                fn = next((f for f in await self.store.functions(base) if f.id == job.function_id), None)
            if fn is None:  # deleted since the event: nothing to run
                await self.store.finish_job(job.id, None, None, self.history)
                return
            if job.attempts >= MAX_ATTEMPTS:
                run = FunctionRun(
                    new_id(),
                    fn.id,
                    fn.version,
                    now_iso(),
                    now_iso(),
                    False,
                    ["Function started", f"gave up after {job.attempts} interrupted attempts"],
                )
                await self.store.finish_job(job.id, base, run, self.history)
                return
            p = job.payload
            _, run = await self._execute(base, fn, identity_from(p["identity"]), p["args"], p.get("legacy"))
            await self.store.finish_job(job.id, base, run, self.history)
        except SBError as exc:
            log.warning("function job %s failed: %s", job.id, exc.message)
        except Exception:
            log.exception("function job %s failed", job.id)

    async def _poll_forever(self) -> None:
        """Run jobs whose lease expired (their process died), on whichever process sees them first."""
        while True:
            await asyncio.sleep(self.settings.function_poll_seconds)
            try:
                now = time.time()
                jobs = await self.store.claim_jobs(self.owner, now, now + self._lease(), 16)
            except SBError as exc:
                log.warning("claiming function jobs failed: %s", exc.message)
                continue
            except Exception:
                log.exception("claiming function jobs failed")
                continue
            for job in jobs:
                self._spawn(self._run_job(job))
