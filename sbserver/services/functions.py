"""Server-side functions: management, web execution, event triggers and run history.

Triggered runs go through a durable queue in the store: the process that accepted an event
(the one that handled the chat message, the publish or the database write) enqueues one job
per matching function, already claimed by itself with a lease, and runs them at once. A
process that dies leaves its jobs behind; when their lease expires any process's poller claims
and runs them. So each (event, function) runs once whatever the number of processes, and an
accepted event is not lost to a crash (a run cut short by a crash runs again).

The path is batched so that a burst of events costs a few store writes, not a few per event:
events wait in an inbox that one dispatcher drains (the jobs of every waiting event in one
write), a few runners take jobs from a queue into the worker pool, and one finisher removes
finished jobs and records their runs (everything that finished meanwhile in one write). While
this process holds jobs it keeps pushing their lease back, so a long queue is never mistaken
for a dead process.

Memory stays bounded under any burst: a process holds at most ``function_queue_limit`` jobs;
the jobs of events beyond that are stored unclaimed, and the poller claims them in order, a
batch at a time, as the queue runs low. The same refill drains jobs other processes left (a
dead process's, or those of processes that only enqueue).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

import orjson

from sbserver.backends.cache import Cache
from sbserver.backends.storage import Store
from sbserver.crypto import SecretBox, SecretsUnreadable, is_sealed
from sbserver.errors import BadRequest, Conflict, NotFound, SBError, TooManyRequests
from sbserver.ids import new_id, new_ordered_id, now_iso, random_code
from sbserver.logs import ACTIVITY
from sbserver.runtime.pool import Outcome, RuntimePool
from sbserver.services.events import DB_CREATED, DbEvent, EventBus
from sbserver.services.fnhelpers import HelperContext, Helpers
from sbserver.services.fnlimits import AppLimits, Slots, Windows, checked_own, server_limits
from sbserver.services.metrics import Metrics
from sbserver.services.realtime import Broker
from sbserver.services.tenancy import TenancyService
from sbserver.settings import Settings
from sbserver.types import (
    Base,
    FailedRun,
    FinishedJob,
    FunctionDef,
    FunctionRun,
    Identity,
    Job,
    QueuedJobs,
    QueueState,
    StoredDoc,
)

log = logging.getLogger("sbserver.functions")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
# Every run sends the code to a worker and compiles it: a function is a handler, not a bundle.
MAX_CODE_BYTES = 1024 * 1024
MAX_TRIGGER_CHARS = 256
MAX_SECRETS_BYTES = 64 * 1024
# Chat and database events: a user's count against eventRate (other types against customRate)
EVENT_TYPES = ("chan_out", "db_created", "db_updated", "db_deleted")
LIMITS_TTL = 5.0  # seconds an app's limits are kept in memory when several processes share the store
MAX_ATTEMPTS = 3
POLL_WHEN_QUEUE_BELOW = 64  # a busy process leaves expired jobs to the others' pollers
POLL_BATCH = 16  # jobs claimed by a routine poll
REFILL_BATCH = 256  # jobs claimed at a time while more are known to wait
# While runs are queued, finished jobs wait this long to be written together with the next ones
# (a crash in between runs them again, as a crash before any finish would).
FINISH_GATHER_SECONDS = 0.005
FINISH_BATCH = 64
MAX_DEBUG_LINES = 50  # lines of a run's output the debug log shows
# A failed run of an event keeps its job's payload, up to this size as JSON, so that its
# admin can run it again (the queue page's Retry); larger inputs are not kept.
MAX_KEPT_INPUT = 64 * 1024
NOT_KEPT = (
    f"its input was not kept (kept for failed runs of events only, up to {MAX_KEPT_INPUT // 1024} KiB, "
    "since this server version)"
)


@dataclass(slots=True)
class Chain:
    """The run in progress in this task: how many runs deep it is (a client's event starts
    runs at 1; an event a run causes starts the next at its depth + 1) and notes for its log."""

    depth: int
    notes: list[str] = field(default_factory=list)


# Set while a run is in progress: its helpers' writes and messages are events of that run.
CURRENT_RUN: ContextVar[Chain | None] = ContextVar("sb_current_function_run", default=None)


# The functions of one base, by trigger and by id.
Table = tuple[dict[str, list[FunctionDef]], dict[str, FunctionDef]]
# base name, base, message, sender, the data as a value (NO_VALUE: parse the message's text),
# for a database write the future its writer awaits (resolved once the event's jobs are stored),
# and the run that caused the event, if a function's helper did
Inbox = tuple[str, Base | None, dict[str, Any], Identity | None, Any, "asyncio.Future[None] | None", Chain | None]
NO_VALUE = object()


def table_of(fns: list[FunctionDef]) -> Table:
    by_trigger: dict[str, list[FunctionDef]] = {}
    for fn in fns:
        by_trigger.setdefault(fn.trigger, []).append(fn)
    return by_trigger, {fn.id: fn for fn in fns}


def matching(table: Table, keys: list[str]) -> list[FunctionDef]:
    found: dict[str, FunctionDef] = {}
    for key in keys:
        for fn in table[0].get(key, ()):
            found[fn.id] = fn
    return sorted(found.values(), key=lambda f: f.name)


@lru_cache(maxsize=1024)
def parse_secrets(raw: str) -> dict[str, str]:
    """A function's secrets (URL-encoded pairs, decrypted); the result is shared, never to be changed."""
    return dict(parse_qsl(raw or "", keep_blank_values=True))


def secrets_context(base_name: str, fn_id: str) -> str:
    """What a function's sealed secrets are bound to: they open for that function of that app only."""
    return f"fn-secrets/{base_name}/{fn_id}"


def identity_dict(ident: Identity) -> dict[str, Any]:
    """Who a job runs as, as stored with it: not the user's secret token, which no run needs."""
    return {"base": ident.base, "a": ident.account_id, "u": ident.user_id, "e": ident.email, "r": ident.role}


def identity_from(d: dict[str, Any]) -> Identity:
    return Identity(d["base"], d["a"], d["u"], d.get("e", ""), int(d.get("r", 0)))


def db_message(kind: str, channel: str, actor: Identity, base_name: str) -> dict[str, Any]:
    """A database event as a channel message (without its data)."""
    return {
        "sid": "",
        "type": kind,
        "channel": channel,
        "token": "",
        "auth": {"accountId": actor.account_id, "userId": actor.user_id, "email": "", "role": actor.role},
        "base": base_name,
    }


def with_data(msg: dict[str, Any], value: Any) -> dict[str, Any]:
    """The message with ``data``, the value as JSON text, where a chat message has it: after the type."""
    head = {"sid": msg["sid"], "type": msg["type"], "data": orjson.dumps(value).decode()}
    return {**head, **msg}


def kept(payload: dict[str, Any]) -> dict[str, Any] | None:
    """A failed run's input as kept with it: the payload, unless it is too large to keep."""
    return payload if len(orjson.dumps(payload)) <= MAX_KEPT_INPUT else None


def message_data(text: str) -> Any:
    """``data`` for ``handle(channel, type, data)``: the parsed JSON, else the raw string."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


class RunsNotQueued(SBError):
    """A write was committed but the function runs it triggers could not be queued: the client
    is told (the write stands, so a retry would write twice), instead of a silent success."""

    status = 503


def _runs_lost(batch: list[Any], why: str) -> None:
    for *_, durable, _chain in batch:
        if durable is not None and not durable.done():
            durable.set_exception(
                RunsNotQueued(f"the write was saved, but the functions it triggers will not run: {why}")
            )


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
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.cache = cache
        self.pool = pool
        self.metrics = metrics or Metrics()
        self.helpers = helpers
        self.broker = broker
        self.events = events
        self.tenancy = tenancy
        self.settings = settings
        self.owner = random_code(10, first="w")
        self.history = settings.function_history
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._finisher: asyncio.Task[None] | None = None
        self._unsubscribe: Any = None
        # One process alone (no Redis): it sees every function change, so it may keep the
        # trigger table in memory, dropped on each change. With several processes every batch
        # of events asks the store, so an edit anywhere takes effect on the next event everywhere.
        self._local_cache = not settings.redis_url
        self._triggers: dict[str, Table] = {}
        self._inbox: list[Inbox] = []
        self._inbox_ready = asyncio.Event()
        self._queue: asyncio.Queue[tuple[Job, FunctionDef | None]] = asyncio.Queue()
        self._finished: list[FinishedJob] = []
        self._finished_ready = asyncio.Event()
        self._flushing = asyncio.Lock()  # one finish write at a time: stop() waits for the last
        self._held: set[str] = set()  # ids of the jobs this process claimed and has not finished
        self._extended = 0.0
        self._limit = max(1, settings.function_queue_limit)
        self._refill_below = max(1, min(POLL_WHEN_QUEUE_BELOW, self._limit // 2))
        # Jobs may be waiting unclaimed in the store (left for want of room, or a full claim came
        # back): the poller claims again as soon as the queue runs low, not at its next tick.
        self._more = False
        self._more_since = 0  # bumped each time jobs are left unclaimed
        self._refill = asyncio.Event()
        self.box = SecretBox(settings.app_secret)
        self.server_limits = server_limits(settings, pool.size, pool.concurrency)
        self._own_limits: dict[str, tuple[float, AppLimits]] = {}  # base name: (read at, limits)
        self._windows = Windows()  # appRate, and the user rates when this process is alone
        self._slots = Slots()
        self._warned: set[str] = set()

    # lifecycle
    async def start(self) -> None:
        await self.seal_stored_secrets()
        self.broker.message_hooks.append(self.on_message)
        self._unsubscribe = self.events.subscribe(self.on_db_event)
        self._loops.append(asyncio.create_task(self._dispatch_forever(), name="function-dispatch"))
        if self.runs_jobs:
            for n in range(2 * self.pool.size):  # one run waits for each busy worker, ready to go
                self._loops.append(asyncio.create_task(self._run_forever(), name=f"function-runner-{n}"))
            self._loops.append(asyncio.create_task(self._poll_forever(), name="function-jobs"))
        self._finisher = asyncio.create_task(self._finish_forever(), name="function-finish")
        self._extended = time.time()  # leases are fresh when jobs are queued

    async def stop(self) -> None:
        if self.on_message in self.broker.message_hooks:
            self.broker.message_hooks.remove(self.on_message)
        if self._unsubscribe:
            self._unsubscribe()
        for task in [*self._loops, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._loops, *self._tasks, return_exceptions=True)
        self._loops.clear()
        # events never dispatched: their writers must not hang, nor be told their runs will happen
        _runs_lost(self._inbox, "the server is stopping")
        if self._finisher:  # after its write in flight, if any: a cancelled write would run them again
            async with self._flushing:
                self._finisher.cancel()
            await asyncio.gather(self._finisher, return_exceptions=True)
        await self._flush()  # what finished is recorded; jobs not run stay queued for a restart
        await self.pool.stop()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def seal_stored_secrets(self) -> int:
        """The data migration of encryption at rest: seal every function secret still stored in
        plain text (stored before encryption existed); the count sealed. Run at every start, on
        every process: a compare-and-set makes each value sealed once. Logs an error when the
        secrets already sealed do not open with this APP_SECRET (their runs will fail saying so)."""
        plain: list[tuple[str, str, str, str]] = []
        unreadable = 0
        for base_name, fn_id, stored in await self.store.stored_secrets():
            context = secrets_context(base_name, fn_id)
            if not is_sealed(stored):
                plain.append((base_name, fn_id, stored, self.box.seal(stored, context)))
                continue
            try:
                self.box.open(stored, context)
            except SecretsUnreadable:
                unreadable += 1
        if unreadable:
            log.error(
                "%d functions' secrets cannot be decrypted: APP_SECRET is not the one they were encrypted "
                "with (restore it, or set those secrets again); their runs fail until then",
                unreadable,
            )
        sealed = await self.store.replace_secrets(plain) if plain else 0
        if sealed:
            log.info("encrypted the secrets of %d functions stored in plain text", sealed)
            self._triggers.clear()
        return sealed

    # management
    @staticmethod
    def _checked_trigger(trigger: str) -> str:
        trigger = trigger.strip()
        if not trigger:
            raise BadRequest("invalid trigger: it must not be empty (use web for HTTP-only functions)")
        if len(trigger) > MAX_TRIGGER_CHARS or not trigger.isprintable():
            raise BadRequest(f"invalid trigger: use at most {MAX_TRIGGER_CHARS} printable characters")
        return trigger

    async def _check_code(self, code: str, secrets: str | None) -> None:
        size = len(code.encode("utf-8", "surrogatepass"))
        if size > MAX_CODE_BYTES:
            raise BadRequest(f"invalid function code: {size} bytes, at most {MAX_CODE_BYTES} are allowed")
        if secrets is not None and len(secrets.encode("utf-8", "surrogatepass")) > MAX_SECRETS_BYTES:
            raise BadRequest(f"invalid secrets: at most {MAX_SECRETS_BYTES} bytes are allowed")
        outcome = await self.pool.check(code)
        if outcome.stage == "refused":  # the server's doing, not the code's
            raise SBError(outcome.error)
        if not outcome.ok:
            raise BadRequest(f"invalid function code: {outcome.error}")

    async def add(self, base: Base, name: str, trigger: str, code: str, secrets: str) -> FunctionDef:
        if not _NAME.match(name):
            raise BadRequest(f"invalid function name {name[:60]!r}: use 1 to 100 letters, digits, '_' or '-'")
        trigger = self._checked_trigger(trigger)
        await self._check_code(code, secrets)
        now = now_iso()
        fn_id = new_id()
        fn = FunctionDef(
            fn_id, name, trigger, code, 1, now, secrets=self.box.seal(secrets, secrets_context(base.name, fn_id))
        )
        try:
            await self.store.create_function(base, fn)
        except Conflict as exc:
            raise Conflict("function name already exists") from exc
        self._triggers.pop(base.name, None)
        return fn

    async def update(self, base: Base, fn_id: str, trigger: str, code: str, secrets: str | None) -> FunctionDef:
        if not fn_id:
            raise BadRequest("missing function id: call /fn/info/<name> to get it")
        trigger = self._checked_trigger(trigger)
        await self._check_code(code, secrets)
        sealed = None if secrets is None else self.box.seal(secrets, secrets_context(base.name, fn_id))
        fn = await self.store.update_function(base, fn_id, code, trigger, sealed, now_iso())
        self._triggers.pop(base.name, None)
        if fn is None:
            raise NotFound("function not found")
        return fn

    async def delete(self, base: Base, name: str) -> None:
        await self.store.delete_function(base, name)
        self._triggers.pop(base.name, None)

    async def _table(self, base: Base, keys: set[str]) -> Table:
        """The functions triggered by any of ``keys`` (all the base's functions when cached)."""
        if not self._local_cache:
            return table_of(await self.store.functions_for(base, sorted(keys)))
        table = self._triggers.get(base.name)
        if table is None:
            table = self._triggers[base.name] = table_of(await self.store.functions(base))
        return table

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
        self,
        base: Base,
        fn: FunctionDef,
        ident: Identity,
        args: list[Any],
        legacy: Any = None,
        depth: int = 1,
        trigger: str = "web",
    ) -> tuple[Outcome, FunctionRun]:
        """Run ``fn``; ``trigger``: web, task, or the type of the event that started the run."""
        started = now_iso()
        began = time.perf_counter()
        timeout = self.settings.function_timeout
        ctx = HelperContext(base, ident, fn, asyncio.get_running_loop().time() + timeout)
        chain = Chain(depth)
        try:
            secrets = parse_secrets(self.box.open(fn.secrets, secrets_context(base.name, fn.id)))
        except SecretsUnreadable as exc:  # never run with missing or garbled secrets
            log.error("function %s of %s: %s", fn.name, base.name, exc.message)
            outcome = Outcome(ok=False, error=exc.message, stage="secrets")
            self._ran(base, fn, trigger, time.perf_counter() - began, outcome)
            return outcome, FunctionRun(
                new_ordered_id(), fn.id, fn.version, started, now_iso(), False, ["Function started", exc.message]
            )
        token = CURRENT_RUN.set(chain)
        try:
            outcome = await self.pool.run(
                fn.code, args, self.helpers.bind(ctx), legacy=legacy, secrets=secrets, timeout=timeout
            )
        finally:
            CURRENT_RUN.reset(token)
        output = ["Function started", *outcome.output, *chain.notes]
        if outcome.stage != "compile":
            output.append("Function completed")
        if not outcome.ok:
            output.append(outcome.error)
        run = FunctionRun(new_ordered_id(), fn.id, fn.version, started, now_iso(), outcome.ok, output)
        self._ran(base, fn, trigger, time.perf_counter() - began, outcome)
        return outcome, run

    def _ran(self, base: Base, fn: FunctionDef, trigger: str, seconds: float, outcome: Outcome) -> None:
        """Count the run, and say it on the activity log (what it printed too, at debug level)."""
        self.metrics.function_run(trigger, seconds, outcome.ok)
        ACTIVITY.function_run(base.name, fn.name, trigger, seconds, "" if outcome.ok else outcome.error or "failed")
        if log.isEnabledFor(logging.DEBUG):
            for line in outcome.output[:MAX_DEBUG_LINES]:
                log.debug("function %s of %s printed: %s", fn.name, base.name, line[:1000])

    async def exec_web(self, base: Base, ident: Identity, name: str, args: list[Any]) -> None:
        """``/fn/exec`` and ``/fn/sudoexec``: run inline; failures answer 500 with the reason."""
        fn = await self.get(base, name)
        limits = await self.limits(base)
        if not ident.is_root and not await self._take_user(base, "e", ident.user_id, 1, limits.event_rate):
            raise TooManyRequests(
                f"too many function runs: at most {limits.event_rate} a minute per user in this app "
                "(eventRate; try again in a minute)"
            )
        self._take_app(base.name, limits)
        async with self._slot(base.name, limits):
            outcome, run = await self._execute(base, fn, ident, args)
        self._spawn(self._record(base, run))
        if outcome.ok:
            return
        if outcome.stage in ("secrets", "refused") or (
            outcome.stage == "compile" and outcome.error.startswith("unable to find")
        ):
            raise SBError(outcome.error)
        if outcome.stage == "compile":
            raise SBError(f"error compiling your function: {outcome.error}")
        if outcome.stage == "timeout":
            raise SBError(outcome.error)
        raise SBError(f"error executing your function: {outcome.error}")

    async def run_now(self, base: Base, ident: Identity, name: str, args: list[Any]) -> FunctionRun:
        """The admin UI's "Run now": like ``exec_web`` as root, but the run (failed or not) is
        recorded before it is returned, so the history shows it at once."""
        fn = await self.get(base, name)
        limits = await self.limits(base)
        self._take_app(base.name, limits)
        async with self._slot(base.name, limits):
            _, run = await self._execute(base, fn, ident, args)
        await self._record(base, run)
        return run

    async def _record(self, base: Base, run: FunctionRun) -> None:
        try:
            await self.store.add_run(base, run, self.history)
        except SBError as exc:
            log.warning("could not record a run of %s: %s", run.function_id, exc.message)

    async def run_task(self, base: Base, name: str, task_name: str, data: Any) -> FunctionRun:
        """A scheduled function task: ``handle(taskName, "fn_call", data)`` as the app's root."""
        fn = await self.get(base, name)
        root = await self.tenancy.root_identity(base)
        limits = await self.limits(base)
        self._take_app(base.name, limits)
        async with self._slot(base.name, limits):
            _, run = await self._execute(base, fn, root, [task_name, "fn_call", data], trigger="task")
        await self._record(base, run)
        return run

    # the admin's queue page
    async def queue(self, base: Base, limit: int) -> QueueState:
        """The app's pending and running jobs (at most ``limit`` of each) and their counts."""
        return await self.store.queued_jobs(base, time.time(), limit)

    async def failed_runs(self, base: Base, limit: int) -> list[FailedRun]:
        """The app's newest ``limit`` failed runs, across its functions, newest first."""
        return await self.store.failed_runs(base, limit)

    async def retry(self, base: Base, run_id: str) -> tuple[Job, FunctionDef]:
        """Queue the function of a failed run again with the run's kept input (as the same user,
        the same event): the new run, a success or not, joins the function's history."""
        failed = await self.store.failed_run(base, run_id)
        if failed is None:
            raise NotFound(f"failed run {run_id[:60]!r} not found in this app")
        if failed.run.payload is None:
            raise BadRequest(f"this run cannot be retried: {NOT_KEPT}")
        fn = await self.get(base, failed.function_name)
        self._take_app(base.name, await self.limits(base))
        job = Job(new_ordered_id(), base.name, fn.id, failed.run.payload, now_iso())
        await self._enqueue([(job, fn)])
        return job, fn

    # triggers
    def on_message(self, base: Base, msg: dict[str, Any], ident: Identity | None) -> None:
        """Every channel message this process accepted (chat, /publish, functions, tasks)."""
        kind = msg.get("type", "")
        if kind == "error":
            return
        delivered = dict(msg)
        if kind == "chan_in":
            delivered["type"] = "chan_out"
        self._accept(base.name, base, delivered, ident, NO_VALUE)

    def plan_inserts(self, base: Base, col: str, docs: list[StoredDoc], caller: Identity) -> QueuedJobs | None:
        """The jobs of new documents' db_created events, to be written in the documents' own
        transaction; None when this process does not hold the app's triggers (the events then
        go through the dispatcher). The same jobs the dispatcher would make."""
        table = self._triggers.get(base.name) if self._local_cache else None
        if table is None:
            return None
        channel = f"db-{col}"
        fns = matching(table, [channel, DB_CREATED])
        chain = CURRENT_RUN.get()
        if fns and self._too_deep(chain, DB_CREATED, channel):
            return QueuedJobs([], "", 0.0)
        if fns:
            kept = self._own_limits.get(base.name)
            if kept is None:
                return None  # the dispatcher reads the app's limits, and keeps them for next time
            docs = docs[: self._admitted_now(base, caller, chain, kept[1], len(docs), len(fns))]
        depth = chain.depth if chain else 0
        jobs: list[Job] = []
        for doc in docs:
            value = doc.public()
            msg: dict[str, Any] | None = None
            for fn in fns:
                legacy = None
                if fn.trigger == DB_CREATED and fn.trigger != channel:
                    msg = msg or with_data(db_message(DB_CREATED, channel, caller, base.name), value)
                    legacy = msg
                payload = {
                    "args": [channel, DB_CREATED, value],
                    "legacy": legacy,
                    "identity": identity_dict(caller),
                    "event": DB_CREATED,
                    "chain": depth,
                }
                jobs.append(Job(new_ordered_id(), base.name, fn.id, payload, now_iso()))
        if not jobs or not self._has_room(len(jobs)):
            return QueuedJobs(jobs, "", 0.0)
        return QueuedJobs(jobs, self.owner, time.time() + self._lease())

    def _admitted_now(
        self, base: Base, caller: Identity, chain: Chain | None, limits: AppLimits, docs: int, fns: int
    ) -> int:
        """``_admitted`` for new documents written while this process is alone: how many of them
        may start their runs (the counters are this process's own, so no await is needed)."""
        if chain is None and not caller.is_root:
            key = f"fnrate:e:{base.name}:{caller.user_id}"
            allowed = self._windows.take(key, docs, limits.event_rate)
            if allowed < docs:
                self._warn(
                    key,
                    f"app {base.name}: user {caller.user_id} is past its function rate ({limits.event_rate} a minute)",
                )
            docs = allowed
        runs = self._windows.take(f"app:{base.name}", docs * fns, limits.app_rate)
        if runs < docs * fns:
            self._warn(
                f"app:{base.name}", f"app {base.name} is past its function rate ({limits.app_rate} runs a minute)"
            )
        return runs // fns

    def inserted(self, planned: QueuedJobs) -> None:
        """The documents and their jobs are committed: run the jobs here (held under our lease)."""
        if not planned.owner:
            if planned.jobs:
                self._left_unclaimed()
            return
        for job in planned.jobs:
            self._held.add(job.id)
            self._queue.put_nowait((job, None))  # the run looks its function up when it starts

    def on_db_event(self, event: DbEvent) -> asyncio.Future[None] | None:
        """Queue the event for the dispatcher; the write is acknowledged once its jobs are stored."""
        if event.queued:
            return None  # its jobs were written with the write
        table = self._triggers.get(event.base) if self._local_cache else None
        if table is not None and event.channel not in table[0] and event.type not in table[0]:
            return None  # nothing listens: the common case costs no more than this
        value = event.doc_id if event.document is None else event.document
        # "data", the value as JSON text, is added if a function gets the whole message
        msg = db_message(event.type, event.channel, event.actor, event.base)
        durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._accept(event.base, None, msg, event.actor, value, durable)
        return durable

    def _accept(
        self,
        base_name: str,
        base: Base | None,
        msg: dict[str, Any],
        ident: Identity | None,
        value: Any,
        durable: asyncio.Future[None] | None = None,
    ) -> None:
        self._inbox.append((base_name, base, msg, ident, value, durable, CURRENT_RUN.get()))
        self._inbox_ready.set()

    def _too_deep(self, chain: Chain | None, kind: str, channel: str) -> bool:
        """True when an event of the run ``chain`` must not trigger functions: a function whose
        runs cause the events it is triggered by would otherwise run for ever."""
        if chain is None or chain.depth < self.settings.function_max_chain:
            return False
        note = (
            f"functions not triggered by {kind} on {channel}: this run is {chain.depth} functions deep "
            f"(SB_FUNCTION_MAX_CHAIN is {self.settings.function_max_chain})"
        )
        chain.notes.append(note)
        log.warning("%s", note)
        return True

    # limits
    async def limits(self, base: Base) -> AppLimits:
        """The app's limits: the server's, lowered by the app's own (kept in memory; with several
        processes re-read every few seconds, so a change reaches them all)."""
        now = time.monotonic()
        kept = self._own_limits.get(base.name)
        if kept is not None and (self._local_cache or now - kept[0] < LIMITS_TTL):
            return kept[1]
        limits = self.server_limits.with_own(await self.store.function_limits(base))
        self._own_limits[base.name] = (now, limits)
        return limits

    async def own_limits(self, base: Base) -> dict[str, int]:
        return await self.store.function_limits(base)

    async def set_limits(self, base: Base, body: Any) -> AppLimits:
        """``POST /fn/limits``: change the app's own limits (null: back to the server's)."""
        own = checked_own(body, await self.store.function_limits(base), self.server_limits)
        await self.store.set_function_limits(base, own)
        self._own_limits.pop(base.name, None)
        return await self.limits(base)

    async def _limits_by_name(self, base_name: str) -> AppLimits:
        try:
            return await self.limits(await self.tenancy.base_by_name(base_name))
        except SBError:
            return self.server_limits  # the app is gone: its jobs end at once

    async def _take_user(self, base: Base, kind: str, user_id: str, wanted: int, limit: int) -> int:
        """Count ``wanted`` events of a user (kind "c": custom types, "e": chat, database, web)
        against its rate; how many are allowed. Shared by every process through the cache."""
        key = f"fnrate:{kind}:{base.name}:{user_id}"
        if self._local_cache:
            taken = self._windows.take(key, wanted, limit)
        else:
            try:
                count = await self.cache.incr(key, 60)
                if wanted > 1:
                    count = await self.cache.add(key, wanted - 1)
            except SBError:
                return wanted  # the cache is down: chat goes on
            taken = max(0, min(wanted, limit - (count - wanted)))
        if taken < wanted:
            self._warn(
                key, f"app {base.name}: user {user_id or '(anonymous)'} is past its function rate ({limit} a minute)"
            )
        return taken

    def _take_app(self, base_name: str, limits: AppLimits, runs: int = 1) -> None:
        """Count runs against the app's rate; ``TooManyRequests`` when they do not all fit."""
        if self._windows.take(f"app:{base_name}", runs, limits.app_rate) < runs:
            self._warn(
                f"app:{base_name}", f"app {base_name} is past its function rate ({limits.app_rate} runs a minute)"
            )
            raise TooManyRequests(
                f"too many function runs: this app may start {limits.app_rate} a minute (appRate; try again in a minute)"
            )

    def _warn(self, key: str, text: str) -> None:
        """Log a refusal once per window and key, not once per refused event."""
        if key not in self._warned:
            if len(self._warned) > 10_000:
                self._warned.clear()
            self._warned.add(key)
            asyncio.get_running_loop().call_later(60, self._warned.discard, key)
            log.warning("%s: events past it start no run", text)

    async def _admitted(self, base: Base, kind: str, ident: Identity | None, chain: Chain | None, runs: int) -> bool:
        """Whether an event that matches ``runs`` functions may start them: its sender's rate (a
        user's own events; the app's root and its functions' events are counted by the app's
        rate only), then the app's."""
        limits = await self.limits(base)
        if chain is None and not (ident is not None and ident.is_root):
            custom = kind not in EVENT_TYPES
            limit = limits.custom_rate if custom else limits.event_rate
            if not await self._take_user(base, "c" if custom else "e", ident.user_id if ident else "", 1, limit):
                return False
        try:
            self._take_app(base.name, limits, runs)
        except TooManyRequests:
            return False
        return True

    @asynccontextmanager
    async def _slot(self, base_name: str, limits: AppLimits) -> AsyncIterator[None]:
        """Hold one of the app's run slots (waiting for one) while a web or task run goes on."""
        if not self._slots.try_take(base_name, limits.concurrency):
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._slots.wait(base_name, waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # handed over just before the cancel
                    self._leave(base_name)
                raise
        try:
            yield
        finally:
            self._leave(base_name)

    def _leave(self, base_name: str) -> None:
        parked = self._slots.release(base_name)
        if parked is not None:  # a job of the app waited for this slot: it runs now, in the slot
            self._spawn(self._run_in_slot(*parked))

    async def _run_in_slot(self, job: Job, fn: FunctionDef | None) -> None:
        """Run a job whose app slot is held, then the app's next parked job in the same slot."""
        while True:
            try:
                await self._run_job(job, fn)
            finally:
                parked = self._slots.release(job.base)
            if parked is None:
                return
            job, fn = parked

    async def _dispatch_forever(self) -> None:
        while True:
            await self._inbox_ready.wait()
            self._inbox_ready.clear()
            while self._inbox:
                batch, self._inbox = self._inbox, []
                try:
                    await self._dispatch(batch)
                except SBError:  # logged where it failed
                    _runs_lost(batch, "they could not be written to the store")
                except Exception:
                    log.exception("dispatching %d events to functions failed", len(batch))
                    _runs_lost(batch, "they could not be written to the store")
                finally:  # the writers go on once their jobs are stored
                    for *_, durable, _chain in batch:
                        if durable is not None and not durable.done():
                            durable.set_result(None)

    async def _dispatch(self, batch: list[Inbox]) -> None:
        """Turn every waiting event into jobs, one per matching function, queued in one write."""
        bases: dict[str, Base] = {}
        keys: dict[str, set[str]] = {}
        events = []
        for base_name, base, msg, ident, value, _, chain in batch:
            try:
                base = base or bases.get(base_name) or await self.tenancy.base_by_name(base_name)
            except SBError:
                continue  # the app is gone
            bases[base.name] = base
            event_keys = [k for k in dict.fromkeys([msg.get("channel", ""), msg["type"]]) if k]
            keys.setdefault(base.name, set()).update(event_keys)
            events.append((base, msg, ident, value, event_keys, chain))
        tables: dict[str, Table] = {}
        jobs: list[tuple[Job, FunctionDef]] = []
        for base, msg, ident, value, event_keys, chain in events:
            channel, kind = msg.get("channel", ""), msg["type"]
            try:
                if base.name not in tables:
                    tables[base.name] = await self._table(base, keys[base.name])
                fns = matching(tables[base.name], event_keys)
                if not fns or self._too_deep(chain, kind, channel):
                    continue
                if not await self._admitted(base, kind, ident, chain, len(fns)):
                    continue
                runner = ident or await self.tenancy.root_identity(base)
            except SBError as exc:
                log.warning("functions for %s on %s not dispatched: %s", kind, channel, exc.message)
                continue
            args = [channel, kind, message_data(msg.get("data", "")) if value is NO_VALUE else value]
            for fn in fns:
                legacy = None
                if fn.trigger == kind and fn.trigger != channel:
                    if "data" not in msg:
                        msg = with_data(msg, value)
                    legacy = msg
                payload = {
                    "args": args,
                    "legacy": legacy,
                    "identity": identity_dict(runner),
                    "event": kind,
                    "chain": chain.depth if chain else 0,
                }
                jobs.append((Job(new_ordered_id(), base.name, fn.id, payload, now_iso()), fn))
        if not jobs:
            return
        try:
            await self._enqueue(jobs)
        except SBError as exc:  # the writers of this batch are told (see _dispatch_forever)
            log.warning("%d function runs not queued: %s", len(jobs), exc.message)
            raise

    async def _enqueue(self, jobs: list[tuple[Job, FunctionDef]]) -> None:
        """Store new jobs: claimed by this process and queued here when it has room for them,
        else left unclaimed for a poller."""
        if not self._has_room(len(jobs)):
            await self.store.enqueue_jobs([job for job, _ in jobs], "", 0.0)
            self._left_unclaimed()
            return
        await self.store.enqueue_jobs([job for job, _ in jobs], self.owner, time.time() + self._lease())
        for job, fn in jobs:
            self._held.add(job.id)
            self._queue.put_nowait((job, fn))

    def _lease(self) -> float:
        return self.settings.function_lease_seconds or self.settings.function_timeout + 30.0

    def _has_room(self, count: int) -> bool:
        """Whether this process runs ``count`` new jobs itself (else they wait unclaimed: when
        it only enqueues, or holds its limit, or older jobs already wait in the store)."""
        return self.runs_jobs and not self._more and len(self._held) + count <= self._limit

    def _left_unclaimed(self) -> None:
        """Jobs were stored without an owner: a poller claims them (this process's as soon as its
        queue runs low, when it runs jobs; else the primary instance's)."""
        if self.runs_jobs:
            self._more = True
            self._more_since += 1
            self._wake_poller()

    def _wake_poller(self) -> None:
        if self._more and self._queue.qsize() < self._refill_below and len(self._held) < self._limit:
            self._refill.set()

    def backlog(self) -> dict[str, int]:
        """Events not yet dispatched, jobs waiting for a runner, jobs claimed here (for /metrics)."""
        return {"events": len(self._inbox), "queued": self._queue.qsize(), "held": len(self._held)}

    @property
    def runs_jobs(self) -> bool:
        """False when PRIMARY_INSTANCE_HOSTNAME names another host: this process only enqueues."""
        primary = self.settings.primary_instance
        return not primary or primary == socket.gethostname()

    async def _run_forever(self) -> None:
        while True:
            job, fn = await self._queue.get()
            self._wake_poller()
            limits = await self._limits_by_name(job.base)
            if not self._slots.try_take(job.base, limits.concurrency):
                self._slots.wait(job.base, (job, fn))  # runs when one of its app's runs ends
                continue
            await self._run_in_slot(job, fn)

    async def _current(self, base: Base, job: Job, fn: FunctionDef | None) -> FunctionDef | None:
        """The function's definition now: an edit or a delete since the event applies to a run
        that has not started yet."""
        if self._local_cache:
            return (await self._table(base, set()))[1].get(job.function_id)
        if fn is not None:  # just read from the store when the event was dispatched
            return fn
        return next((f for f in await self.store.functions(base) if f.id == job.function_id), None)

    async def _run_job(self, job: Job, fn: FunctionDef | None = None) -> None:
        """Run one claimed job and hand it to the finisher."""
        finished = FinishedJob(job.id)
        base: Base | None = None
        try:
            base = await self.tenancy.base_by_name(job.base)
            fn = await self._current(base, job, fn)
            if fn is None:  # deleted since the event: nothing to run
                pass
            elif job.attempts >= MAX_ATTEMPTS:
                gave_up = ["Function started", f"gave up after {job.attempts} interrupted attempts"]
                finished = FinishedJob(
                    job.id,
                    base,
                    FunctionRun(
                        new_ordered_id(), fn.id, fn.version, now_iso(), now_iso(), False, gave_up, kept(job.payload)
                    ),
                )
            else:
                p = job.payload
                depth = int(p.get("chain") or 0) + 1
                event = str(p.get("event") or "message")
                ident = identity_from(p["identity"])
                _, run = await self._execute(base, fn, ident, p["args"], p.get("legacy"), depth, event)
                if not run.success:
                    run.payload = kept(p)
                finished = FinishedJob(job.id, base, run)
        except SBError as exc:
            log.warning("function job %s failed: %s", job.id, exc.message)
        except Exception as exc:
            log.exception("function job %s failed", job.id)
            if base is not None and fn is not None:  # in its history, not only in the server's log
                output = ["Function started", f"internal error: {exc.__class__.__name__}: {exc}"]
                finished = FinishedJob(
                    job.id,
                    base,
                    FunctionRun(
                        new_ordered_id(), fn.id, fn.version, now_iso(), now_iso(), False, output, kept(job.payload)
                    ),
                )
        self._finished.append(finished)
        self._finished_ready.set()

    async def _finish_forever(self) -> None:
        while True:
            await self._finished_ready.wait()
            self._finished_ready.clear()
            if self._queue.qsize() and len(self._finished) < FINISH_BATCH:
                await asyncio.sleep(FINISH_GATHER_SECONDS)
            await self._flush()

    async def _flush(self) -> None:
        """Remove every finished job and record its run: one write for all that are waiting."""
        async with self._flushing:
            await self._flush_waiting()

    async def _flush_waiting(self) -> None:
        while self._finished:
            batch, self._finished = self._finished, []
            try:
                try:
                    await self.store.finish_jobs(batch, self.history)
                except Exception:
                    if len(batch) == 1:
                        raise
                    for one in batch:  # one bad record must not cost the others theirs
                        try:
                            await self.store.finish_jobs([one], self.history)
                        except Exception as exc:
                            log.warning("function job %s not finished: %s", one.job_id, exc)
            except Exception as exc:
                log.warning("function job %s not finished: %s", batch[0].job_id, exc)
            finally:  # a job not removed is left to expire and run again
                self._held.difference_update(f.job_id for f in batch)
                self._wake_poller()

    async def _keep_leases(self) -> None:
        now = time.time()
        if self._held and now - self._extended > self._lease() / 3:
            self._extended = now
            await self.store.extend_leases(self.owner, list(self._held), now + self._lease())

    async def _poll_forever(self) -> None:
        """Keep this process's leases alive, and run jobs nobody holds: those left unclaimed and
        those whose lease expired (their process died), on whichever process sees them first."""
        while True:
            try:
                await asyncio.wait_for(self._refill.wait(), self.settings.function_poll_seconds)
            except TimeoutError:
                pass
            self._refill.clear()
            try:
                await self._keep_leases()
                if self._queue.qsize() >= self._refill_below:
                    continue
                wanted = min(self._limit - len(self._held), REFILL_BATCH if self._more else POLL_BATCH)
                if wanted <= 0:
                    continue
                since, now = self._more_since, time.time()
                jobs = await self.store.claim_jobs(self.owner, now, now + self._lease(), wanted)
            except SBError as exc:
                log.warning("claiming function jobs failed: %s", exc.message)
                continue
            except Exception:
                log.exception("claiming function jobs failed")
                continue
            if len(jobs) == wanted:
                self._more = True  # a full batch: there may be more behind it
            elif since == self._more_since:
                self._more = False  # the store had no more when asked, and none were left since
            for job in jobs:
                if job.id in self._held:
                    continue  # our own, queued or running here: its lease ran out while we stalled
                self._held.add(job.id)
                self._queue.put_nowait((job, None))
