"""A worker process: runs one user function at a time in a fresh QuickJS context.

Started by the pool as ``python -m sbserver.runtime.worker``; speaks the frames of
``protocol.py`` on stdin/stdout. The engine has no file, network or process access of its own;
everything goes through the helper bridge. Resource limits are the backstop behind the
server's deadline: no file writes, a cap on the address space.

Helpers are host functions of the context: a call converts its arguments to JSON, sends them to
the server and returns the answer as a JavaScript value. No JavaScript is evaluated to set a
context up except the user's code (and ``format.js`` the first time a run logs an object), since
that evaluation, not the call, is what a short run spends its time on.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import resource
import signal
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from sbserver.runtime.contexts import ALWAYS, COMPUTES_NAMES, builtins_for, new_context, quickjs
from sbserver.runtime.protocol import encode, read_frame

FORMAT = (Path(__file__).parent / "format.js").read_text()
HELPERS = [
    "fetch",
    "sendMail",
    "create",
    "createBulk",
    "list",
    "query",
    "getById",
    "getByIds",
    "count",
    "update",
    "updateMany",
    "updateBulk",
    "incrementValue",
    "del",
    "deleteMany",
    "deleteBulk",
    "newId",
    "newID",
    "publish",
    "send",
    "cacheGet",
    "cacheSet",
    "inc",
    "dec",
    "search",
    "indexDocument",
    "deleteIndexDocument",
]
LOG_STREAM_AFTER = 0.02  # seconds into a run after which each log line is sent at once
# What a run's history keeps of its log, in characters, and of an error's text: a run that logs
# in a loop must not fill the store (or /fn/info) with hundreds of megabytes.
MAX_LOG_CHARS = 64 * 1024
MAX_ERROR_CHARS = 4096
CHECK_REFUSAL = '{"ok":false,"content":"helpers are not available while the code is checked"}'
# fetch() without arguments answers undefined; a host function can only answer null.
FETCH_UNDEFINED = "fetch = (function (f) { return function () { var r = f.apply(null, arguments); return r === null ? undefined : r; }; })(fetch);"
SAFE_INTEGER = 2**53
# What an async handle (or any promise it returns) ends with; read after the engine's job queue
# is drained, as goja does when the outermost call returns.
SETTLE = """(function (r) {
  var s = {error: null};
  if (r !== null && typeof r === "object" && typeof r.then === "function")
    r.then(null, function (e) { s.error = String(e) + "\\n" + (e && e.stack ? String(e.stack) : ""); });
  return s;
})"""

# Code that can reach a global by a computed name gets every helper; other code gets the ones
# it names.
_WORD = re.compile(r"[A-Za-z_$][\w$]*")
_LOCATION = re.compile(r"<input>:(\d+)")


@lru_cache(maxsize=256)
def helpers_for(code: str) -> tuple[str, ...]:
    if COMPUTES_NAMES.search(code):
        return tuple(HELPERS)
    words = set(_WORD.findall(code))
    return tuple(n for n in HELPERS if n in words)


class Channel:
    def __init__(self, inp: BinaryIO, out: BinaryIO) -> None:
        self.inp, self.out = inp, out

    def send(self, message: dict[str, Any]) -> None:
        self.out.write(encode(message))
        self.out.flush()

    def receive(self) -> dict[str, Any] | None:
        return read_frame(self.inp)


def describe(exc: BaseException) -> str:
    """The engine's message on one line, with the line number when the engine gives one."""
    return describe_text(str(exc)) or type(exc).__name__


def describe_text(text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    first, *rest = text.splitlines()
    if len(first) > MAX_ERROR_CHARS:
        first = first[:MAX_ERROR_CHARS] + f"... ({len(first) - MAX_ERROR_CHARS} more characters)"
    where = _LOCATION.search("\n".join(rest))
    return f"{first} (line {where.group(1)})" if where else first


def plain(value: Any) -> Any:
    """A JavaScript value as JSON.stringify would pass it on: objects through JSON, integral
    numbers as integers, NaN and infinities as null."""
    if isinstance(value, quickjs.Object):
        text = value.json()  # raises JSException on a cycle
        return None if text is None else orjson.loads(text)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer() and abs(value) < 1e21:
            return int(value)
    return value


def simple(value: Any) -> str | None:
    """How log() prints a value without the JavaScript formatter; None when it is needed."""
    if isinstance(value, str):
        return value
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return None


def js_value(ctx: quickjs.Context, value: Any) -> Any:
    """A JSON value as an argument the engine takes as is."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int) and -SAFE_INTEGER < value < SAFE_INTEGER:
        return value
    return ctx.parse_json(orjson.dumps(value).decode())


def run(ch: Channel, job: dict[str, Any], ctx: quickjs.Context | None = None) -> None:
    """Run one job in ``ctx``, a context no code has run in (a new one when not given).

    The host functions reach the context through ``box``, emptied at the end: the context holds
    them, so a direct reference would be a cycle, and the context (a whole engine runtime) would
    live on until Python's cycle collector came by, instead of being freed as the run ends."""
    ctx = ctx or new_context(builtins_for(str(job.get("code", ""))))
    box = [ctx]
    formatter: list[Any] = []
    try:
        _run(ch, job, box, formatter)
    finally:
        box.clear()
        formatter.clear()


def _run(ch: Channel, job: dict[str, Any], box: list[quickjs.Context], formatter: list[Any]) -> None:
    ctx = box[0]
    ctx.set_memory_limit(int(job.get("memory", 64 * 1024 * 1024)))
    ctx.set_max_stack_size(int(job.get("stack", 1024 * 1024)))
    checking = bool(job.get("check"))
    code = str(job.get("code", ""))
    output: list[str] = []
    started = time.monotonic()
    room = [MAX_LOG_CHARS]  # characters of log the run may still keep
    dropped = [0]  # lines not kept for want of room

    def helper(name: str) -> Any:
        def call(*args: Any) -> Any:  # must not raise: the engine cannot carry a Python exception
            if checking:
                return box[0].parse_json(CHECK_REFUSAL)
            try:
                values = [plain(a) for a in args]
            except quickjs.JSException as exc:
                return box[0].parse_json(orjson.dumps({"ok": False, "content": f"invalid argument: {exc}"}).decode())
            ch.send({"op": "call", "name": name, "args": values, "output": output})
            output.clear()
            reply = ch.receive()
            if reply is None:  # the server is gone
                os._exit(0)
            value = reply.get("value")
            try:
                return None if value is None else box[0].parse_json(str(value))
            except quickjs.JSException:
                return None

        return call

    def log(*args: Any) -> None:
        if checking or not args:
            return
        try:
            parts = [simple(a) for a in args]
            if all(p is not None for p in parts):
                line = ""
                for i, part in enumerate(parts):
                    if i and not isinstance(args[i], str) and not isinstance(args[i - 1], str):
                        line += " "
                    line += part  # type: ignore[operator]
            else:
                if not formatter:
                    formatter.append(box[0].eval(FORMAT))
                line = str(formatter[0](*args))
        except quickjs.JSException as exc:
            line = f"log: {describe(exc)}"
        if room[0] <= 0:
            dropped[0] += 1
            return
        if len(line) > room[0]:
            line = line[: room[0]] + f"... ({len(line) - room[0]} more characters)"
        room[0] -= len(line)
        output.append(line)
        if time.monotonic() - started > LOG_STREAM_AFTER:  # a long run: stream its lines as they come
            ch.send({"op": "log", "output": output})
            output.clear()

    def done(ok: bool, stage: str = "", error: str = "") -> None:
        if dropped[0]:
            output.append(f"{dropped[0]} more log lines not kept: a run keeps {MAX_LOG_CHARS} characters of log")
        ch.send({"op": "done", "ok": ok, "stage": stage, "error": error, "output": output})

    names = helpers_for(code)
    for name in names:
        ctx.add_callable(name, helper(name))
    ctx.add_callable("log", log)
    ctx.set("secrets", ctx.parse_json(orjson.dumps(job.get("secrets") or {}).decode()))
    if "fetch" in names:
        ctx.eval(FETCH_UNDEFINED)
    try:
        ctx.eval(code)
    except quickjs.JSException as exc:
        return done(False, "compile", describe(exc))
    # one evaluation after the code: each costs a compile
    arity = ctx.eval('Object.freeze(secrets); typeof handle === "function" ? handle.length : -1')
    if arity == -1:
        return done(False, "compile", 'unable to find function "handle"')
    if checking:
        return done(True)
    args = job.get("args") or []
    legacy = job.get("legacy")
    if legacy is not None and arity == 1:
        args = [legacy]
    try:
        result = ctx.get("handle")(*(js_value(ctx, a) for a in args))
        state = ctx.eval(SETTLE)(result) if isinstance(result, quickjs.Object) else None
        while ctx.execute_pending_job():
            pass
        error = orjson.loads(state.json())["error"] if state is not None else None
    except quickjs.JSException as exc:
        return done(False, "run", describe(exc))
    except MemoryError:
        return done(False, "run", "out of memory")
    if error is not None:
        return done(False, "run", describe_text(error) or "rejected")
    return done(True)


def limit_resources() -> str:
    """Cap the worker's address space (a backstop under each context's own memory limit), file
    writes and core dumps. Returns why the memory cap could not be set ('' when it is), after
    saying so on standard error; the other two are best effort and only said."""
    raw = os.environ.get("SB_WORKER_MAX_BYTES", str(1024 * 1024 * 1024))
    cap = int(raw) if raw.strip().isdigit() else 0
    problem = ""
    if not 0 < cap < 2**63:
        sys.stderr.write(f"sbserver function worker: SB_WORKER_MAX_BYTES={raw!r} is not a byte count\n")
        problem = f"SB_WORKER_MAX_BYTES={raw!r} is not a byte count"
    limits = [(resource.RLIMIT_FSIZE, "file size", 0), (resource.RLIMIT_CORE, "core size", 0)]
    if not problem:
        limits.insert(0, (resource.RLIMIT_AS, "address space", cap))
    for res, name, value in limits:
        try:
            resource.setrlimit(res, (value, value))
            continue
        except (ValueError, OSError, OverflowError) as exc:
            why = str(exc)
        _, hard = resource.getrlimit(res)
        if hard != resource.RLIM_INFINITY and hard <= value:  # already held lower from outside
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(res, (hard, hard))
                continue
        sys.stderr.write(f"sbserver function worker: cannot limit its {name}: {why}\n")
        if res == resource.RLIMIT_AS:
            problem = f"the function worker cannot cap its memory ({why})"
    return problem


UNCAPPED_REFUSAL = "functions are not run: {problem}; set SB_ALLOW_UNCAPPED_WORKERS=1 to run them without that cap"


# All a worker reads of its environment; the pool starts it with no more (see ``worker_environment``).
KEPT_VARIABLES = frozenset(
    {"PATH", "LANG", "LC_ALL", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH"}
    | {"SB_WORKER_MAX_BYTES", "SB_LEAN_CONTEXTS", "SB_ALLOW_UNCAPPED_WORKERS"}
)


def forget_environment() -> None:
    """Drop anything else from this process's environment, should it have been started by hand
    or by an older pool: user code runs here."""
    for name in [n for n in os.environ if n not in KEPT_VARIABLES]:
        del os.environ[name]


def main() -> int:
    # the server owns a worker's life (SIGKILL, or end of stdin once it is gone): a Ctrl-C or SIGTERM
    # sent to the whole process group must not break a run the server's shutdown lets finish
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    forget_environment()
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames may reach the server's pipe
    uncapped = limit_resources()
    refuse = uncapped and os.environ.get("SB_ALLOW_UNCAPPED_WORKERS") != "1"
    ch = Channel(inp, out)
    spare = new_context(ALWAYS)  # what most code needs
    while True:
        job = ch.receive()
        if job is None:
            return 0
        if job.get("op") != "run":
            continue
        if refuse:
            error = UNCAPPED_REFUSAL.format(problem=uncapped)
            ch.send({"op": "done", "ok": False, "stage": "refused", "error": error, "output": []})
            continue
        if builtins_for(str(job.get("code", ""))) != ALWAYS:
            run(ch, job)
            continue
        run(ch, job, spare)
        del spare  # the used context is freed here, and the next one made, before waiting
        spare = new_context(ALWAYS)


if __name__ == "__main__":
    raise SystemExit(main())
