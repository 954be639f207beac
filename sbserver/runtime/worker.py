"""A worker process: runs one user function at a time in a fresh QuickJS context.

Started by the pool as ``python -m sbserver.runtime.worker``; speaks the frames of
``protocol.py`` on stdin/stdout. The engine has no file, network or process access of its own;
everything goes through the helper bridge. Resource limits are the backstop behind the
server's deadline: no file writes, a cap on the address space.
"""

from __future__ import annotations

import os
import re
import resource
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import quickjs

from sbserver.runtime.protocol import encode, read_frame

HERE = Path(__file__).parent
PRELUDE = "\n".join(ln for ln in (HERE / "prelude.js").read_text().splitlines() if not ln.startswith("//"))
FORMAT = (HERE / "format.js").read_text()
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

# Code that can reach a global by a computed name gets every helper; other code gets the ones
# it names (defining all 27 closures would be a third of a short run's cost).
_DYNAMIC = re.compile(r"\beval\b|\bFunction\b|globalThis|\bthis\b|\bwith\b|\bReflect\b")
_WORD = re.compile(r"[A-Za-z_$][\w$]*")


@lru_cache(maxsize=256)
def prelude_for(code: str) -> tuple[str, str]:
    """The prelude's text around its secrets, with the helpers this code can reach."""
    if _DYNAMIC.search(code):
        names = HELPERS
    else:
        words = set(_WORD.findall(code))
        names = [n for n in HELPERS if n in words]
    text = PRELUDE.replace("__FORMAT__", orjson.dumps(FORMAT).decode())
    head, _, tail = text.replace("__HELPERS__", orjson.dumps(names).decode()).partition("__SECRETS__")
    return head, tail


def js_json(value: Any) -> str:
    """A JavaScript expression for a JSON value (parsed, so keys like __proto__ stay plain keys)."""
    return "JSON.parse(" + orjson.dumps(orjson.dumps(value).decode()).decode() + ")"


CALL = """(function (args, legacy) {
  if (typeof handle !== "function") return 0;
  if (CHECKING) return 1;
  if (legacy !== undefined && handle.length === 1) args = [legacy];
  handle.apply(null, args);
  return 1;
})(%s, %s)"""


class Channel:
    def __init__(self, inp: BinaryIO, out: BinaryIO) -> None:
        self.inp, self.out = inp, out

    def send(self, message: dict[str, Any]) -> None:
        self.out.write(encode(message))
        self.out.flush()

    def receive(self) -> dict[str, Any] | None:
        return read_frame(self.inp)


_LOCATION = re.compile(r"<input>:(\d+)")
CHECK_REFUSAL = '{"ok":false,"content":"helpers are not available while the code is checked"}'


def describe(exc: BaseException) -> str:
    """The engine's message on one line, with the line number when the engine gives one."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    first, *rest = text.splitlines()
    where = _LOCATION.search("\n".join(rest))
    return f"{first} (line {where.group(1)})" if where else first


def run(ch: Channel, job: dict[str, Any]) -> None:
    ctx = quickjs.Context()
    ctx.set_memory_limit(int(job.get("memory", 64 * 1024 * 1024)))
    ctx.set_max_stack_size(int(job.get("stack", 1024 * 1024)))
    checking = bool(job.get("check"))
    code = str(job.get("code", ""))
    output: list[str] = []
    started = time.monotonic()

    def host(name: str, args_json: str) -> str:
        if checking:
            return CHECK_REFUSAL
        ch.send({"op": "call", "name": name, "args": orjson.loads(args_json), "output": output})
        output.clear()
        reply = ch.receive()
        if reply is None:
            raise SystemExit(0)
        value = reply.get("value")
        return "" if value is None else str(value)

    def log(line: str) -> None:
        if checking:
            return
        output.append(str(line))
        if time.monotonic() - started > LOG_STREAM_AFTER:  # a long run: stream its lines as they come
            ch.send({"op": "log", "output": output})
            output.clear()

    def done(ok: bool, stage: str = "", error: str = "") -> None:
        ch.send({"op": "done", "ok": ok, "stage": stage, "error": error, "output": output})

    ctx.add_callable("__host", host)
    ctx.add_callable("__log", log)
    head, tail = prelude_for(code)
    ctx.eval(head + js_json(job.get("secrets") or {}) + tail)
    try:
        ctx.eval(code)
    except quickjs.JSException as exc:
        return done(False, "compile", describe(exc))
    legacy = job.get("legacy")
    call = CALL.replace("CHECKING", "true" if checking else "false") % (
        js_json(job.get("args") or []),
        "undefined" if legacy is None else js_json(legacy),
    )
    try:
        found = ctx.eval(call)
    except quickjs.JSException as exc:
        return done(False, "run", describe(exc))
    except MemoryError:
        return done(False, "run", "out of memory")
    if not found:
        return done(False, "compile", 'unable to find function "handle"')
    return done(True)


def limit_resources() -> None:
    cap = int(os.environ.get("SB_WORKER_MAX_BYTES", str(1024 * 1024 * 1024)))
    for res, value in ((resource.RLIMIT_AS, cap), (resource.RLIMIT_FSIZE, 0), (resource.RLIMIT_CORE, 0)):
        try:
            resource.setrlimit(res, (value, value))
        except (ValueError, OSError):
            pass


def main() -> int:
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames may reach the server's pipe
    limit_resources()
    ch = Channel(inp, out)
    while True:
        job = ch.receive()
        if job is None:
            return 0
        if job.get("op") == "run":
            run(ch, job)


if __name__ == "__main__":
    raise SystemExit(main())
