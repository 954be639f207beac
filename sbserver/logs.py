"""What the server prints: ``logging`` set up once, and the activity lines.

Everything goes to stderr in one format: ``text`` for people (``<local time> <LEVEL> <message>``)
or ``json`` for machines (one object per line: ``time`` in UTC, ``level``, ``logger``, ``msg``,
and the fields of the event). Two sources:

* ``logging`` records (the ``sbserver.*`` and ``uvicorn.*`` loggers): start, stop, warnings,
  errors; ``--log-level debug`` adds the ``sbserver`` debug records (connections opened and
  closed, what functions print) and uvicorn's own lines.
* activity lines (``ACTIVITY``): one per request (method, path, status, duration, request id),
  per function run (name, trigger, duration, ok/error) and per task run. There is one per request,
  so they skip ``logging`` (some 30 µs a record): the hot path appends a tuple, and the lines
  are formatted and written together at most ``FLUSH_SECONDS`` later (and when the server
  stops). ``--no-log`` silences them and nothing else; so does a level above ``info``.

Nothing is set up at import time: until ``setup`` runs (the ``backend server`` command does),
the activity lines are off and ``logging`` keeps Python's defaults.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import orjson

FLUSH_SECONDS = 0.05
MAX_WAITING = 2000  # lines kept before a write, whatever the time
MAX_PATH = 300
LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")

_seconds_cache: tuple[int, str] = (-1, "")


def local_time(when: float) -> str:
    """``2026-05-01 12:00:00.123`` in local time; the part up to the second is computed once a second."""
    global _seconds_cache
    whole = int(when)
    if _seconds_cache[0] != whole:
        _seconds_cache = (whole, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(whole)))
    return f"{_seconds_cache[1]}.{int((when - whole) * 1000):03d}"


def utc_time(when: float) -> str:
    whole = int(when)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((when - whole) * 1000):03d}Z"


def printable(text: str, limit: int = MAX_PATH) -> str:
    """``text`` on one line whatever it holds (a path may carry decoded control characters)."""
    if len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = f"{local_time(record.created)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": utc_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


# An activity line waiting to be written: (time, formatter, arguments).
Waiting = tuple[float, Callable[..., tuple[str, dict[str, Any]]], tuple[Any, ...]]


def _request(
    method: str, path: str | bytes, status: int, seconds: float, rid: str, route: str, client: Any, debug: bool
) -> tuple[str, dict[str, Any]]:
    if isinstance(path, bytes):
        path = path.decode("latin-1").partition("?")[0]
    ms = round(seconds * 1000, 1)
    text = f"{method} {printable(path)} {status} {ms}ms id={rid}"
    fields: dict[str, Any] = {"method": method, "path": path[:2000], "status": status, "ms": ms, "request_id": rid}
    fields["route"] = route
    if debug:
        address = f"{client[0]}:{client[1]}" if client else ""
        text += f" route={route} client={address}"
        fields["client"] = address
    return text, fields


def _function(app: str, name: str, trigger: str, seconds: float, error: str, debug: bool) -> tuple[str, dict[str, Any]]:
    ms = round(seconds * 1000, 1)
    result = "error" if error else "ok"
    text = f"function {name} ({printable(trigger, 100)}) {ms}ms {result} app={app}"
    if error:
        text += f": {printable(error, 500)}"
    fields = {"app": app, "function": name, "trigger": trigger, "ms": ms, "result": result}
    if error:
        fields["error"] = error[:2000]
    return text, fields


def _task(
    app: str, name: str, kind: str, seconds: float, result: str, error: str, debug: bool
) -> tuple[str, dict[str, Any]]:
    ms = round(seconds * 1000, 1)
    text = f"task {name} ({kind}) {ms}ms {result} app={app}"
    if error:
        text += f": {printable(error, 500)}"
    fields = {"app": app, "task": name, "type": kind, "ms": ms, "result": result}
    if error:
        fields["error"] = error[:2000]
    return text, fields


_LOGGER = {_request: "sbserver.access", _function: "sbserver.functions", _task: "sbserver.tasks"}
_EVENT = {_request: "request", _function: "function_run", _task: "task_run"}


class Activity:
    """The one-line-per-event log; off until ``configure`` turns it on. Call on the event loop."""

    def __init__(self) -> None:
        self.on = False
        self.debug = False
        self.json = False
        self.stream: TextIO | None = None
        self._waiting: list[Waiting] = []
        self._scheduled = False

    def configure(self, on: bool, debug: bool = False, json: bool = False, stream: TextIO | None = None) -> None:
        self.flush()
        self.on, self.debug, self.json, self.stream = on, debug, json, stream

    def request(
        self, method: str, path: str | bytes, status: int, seconds: float, rid: str, route: str, client: Any
    ) -> None:
        """``path``: as sent (bytes) or decoded; ``client``: the ASGI (host, port), if known."""
        self._add(_request, (method, path, status, seconds, rid, route, client, self.debug))

    def function_run(self, app: str, name: str, trigger: str, seconds: float, error: str = "") -> None:
        """``error``: why the run failed ("" when it succeeded)."""
        self._add(_function, (app, name, trigger, seconds, error, self.debug))

    def task_run(self, app: str, name: str, kind: str, seconds: float, result: str, error: str = "") -> None:
        """``result``: success, failed or skipped."""
        self._add(_task, (app, name, kind, seconds, result, error, self.debug))

    def _add(self, fmt: Callable[..., tuple[str, dict[str, Any]]], args: tuple[Any, ...]) -> None:
        if not self.on:
            return
        self._waiting.append((time.time(), fmt, args))
        if len(self._waiting) >= MAX_WAITING:
            self.flush()
        elif not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop: write at once
                self.flush()
                return
            self._scheduled = True
            loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Write every waiting line (one write)."""
        self._scheduled = False
        if not self._waiting:
            return
        waiting, self._waiting = self._waiting, []
        out = []
        for when, fmt, args in waiting:
            text, fields = fmt(*args)
            if self.json:
                line = {"time": utc_time(when), "level": "info", "logger": _LOGGER[fmt], "msg": text}
                line["event"] = _EVENT[fmt]
                line.update(fields)
                out.append(orjson.dumps(line, default=str).decode())
            else:
                out.append(f"{local_time(when)} INFO    {text}")
        stream = self.stream or sys.stderr
        try:
            stream.write("\n".join(out) + "\n")
            stream.flush()
        except (OSError, ValueError):  # the terminal went away, or the stream is closed
            pass


ACTIVITY = Activity()
_format = "text"


def announce(text: str, stream: TextIO | None = None, level: str = "info") -> None:
    """A message for the person running the server (the start and stop lines, the dev app's
    credentials), on stdout: as it is, or as one JSON object with ``--log-format json``."""
    stream = stream or sys.stdout
    if _format == "json":
        line = {"time": utc_time(time.time()), "level": level, "logger": "sbserver", "msg": text.strip("\n")}
        text = orjson.dumps(line).decode()
    try:
        stream.write(text + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


def setup(level: str = "info", fmt: str = "text", activity: bool = True, stream: TextIO | None = None) -> None:
    """Set up the process's logs (the ``backend server`` command calls this before anything else).

    ``level``: the ``sbserver`` loggers' level (``debug`` also shows uvicorn's info lines; other
    libraries log warnings and errors only). ``activity``: the request and run lines (``--no-log``
    turns them off; they are info lines, so a level above ``info`` does too).
    """
    global _format
    _format = fmt
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # httpx and others log every request at info
    debug = level == "debug"
    logging.getLogger("sbserver").setLevel(getattr(logging, level.upper()))
    logging.getLogger("uvicorn").setLevel(logging.INFO if debug else logging.WARNING)
    ACTIVITY.configure(on=activity and level in ("debug", "info"), debug=debug, json=fmt == "json", stream=stream)
    atexit.register(ACTIVITY.flush)
