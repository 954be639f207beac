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
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import quickjs

from sbserver.runtime.protocol import encode, read_frame

PRELUDE = (Path(__file__).parent / "prelude.js").read_text()


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

    def host(name: str, args_json: str) -> str:
        if checking:
            return CHECK_REFUSAL
        ch.send({"op": "call", "name": name, "args": orjson.loads(args_json)})
        reply = ch.receive()
        if reply is None:
            raise SystemExit(0)
        value = reply.get("value")
        return "" if value is None else str(value)

    def log(line: str) -> None:
        if not checking:
            ch.send({"op": "log", "line": str(line)})

    ctx.add_callable("__host", host)
    ctx.add_callable("__log", log)
    ctx.eval(PRELUDE)
    ctx.eval("var secrets = Object.freeze(" + orjson.dumps(job.get("secrets") or {}).decode() + ");")
    try:
        ctx.eval(job["code"])
    except quickjs.JSException as exc:
        ch.send({"op": "done", "ok": False, "stage": "compile", "error": describe(exc)})
        return
    if ctx.eval("typeof handle") != "function":
        ch.send({"op": "done", "ok": False, "stage": "compile", "error": 'unable to find function "handle"'})
        return
    if checking:
        ch.send({"op": "done", "ok": True})
        return
    args = job.get("args") or []
    legacy = job.get("legacy")
    if legacy is not None and ctx.eval("handle.length") == 1:
        args = [legacy]
    literal = orjson.dumps(orjson.dumps(args).decode()).decode()
    try:
        ctx.eval(f"handle.apply(null, JSON.parse({literal})); undefined")
    except quickjs.JSException as exc:
        ch.send({"op": "done", "ok": False, "stage": "run", "error": describe(exc)})
        return
    except MemoryError:
        ch.send({"op": "done", "ok": False, "stage": "run", "error": "out of memory"})
        return
    ch.send({"op": "done", "ok": True})


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
