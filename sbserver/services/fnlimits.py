"""Per-app limits on functions: rates of triggered runs, runs at once, scheduled tasks.

The server's settings give every app its limits; an app's root may lower its own
(``POST /fn/limits``), never raise them past the server's: the settings are what protects the
other apps on the installation. Every trigger counts somewhere:

- ``customRate``: a user's messages of custom types that trigger functions, per minute;
- ``eventRate``: a user's chat messages (``chan_out``), database writes and ``/fn/exec`` calls
  that trigger functions, per minute (a live chat stays far below it; a flood does not);
- ``appRate``: runs the app's events start per minute in one process, whoever caused them: the
  app's root (``/publish``, tasks), its functions' own writes and messages, its users;
- ``concurrency``: the app's runs at once in one process (one app never holds every worker);
- ``tasks``: the app's scheduled tasks.

Events past a rate start no run (a warning is logged once per window); a web call past it gets 429.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from sbserver.errors import BadRequest
from sbserver.settings import Settings

WINDOW_SECONDS = 60.0
MAX_VALUE = 10_000_000
# JSON name: (attribute, the setting that bounds it)
NAMES = {
    "customRate": ("custom_rate", "SB_FUNCTION_RATE_PER_MINUTE"),
    "eventRate": ("event_rate", "SB_FUNCTION_EVENT_RATE_PER_MINUTE"),
    "appRate": ("app_rate", "SB_FUNCTION_APP_RATE_PER_MINUTE"),
    "concurrency": ("concurrency", "SB_FUNCTION_APP_CONCURRENCY"),
    "tasks": ("tasks", "SB_TASK_MAX_PER_APP"),
}


@dataclass(frozen=True, slots=True)
class AppLimits:
    custom_rate: int
    event_rate: int
    app_rate: int
    concurrency: int
    tasks: int

    def public(self) -> dict[str, int]:
        return {name: getattr(self, attr) for name, (attr, _) in NAMES.items()}

    def with_own(self, own: dict[str, int]) -> AppLimits:
        """These (the server's) limits lowered by the app's own, which never raise them."""
        values: dict[str, Any] = {}
        for name, (attr, _) in NAMES.items():
            value = own.get(name)
            if isinstance(value, int) and value >= 0:
                values[attr] = min(value, getattr(self, attr))
        return replace(self, **values)


def server_limits(settings: Settings, workers: int, concurrency: int) -> AppLimits:
    """The limits every app gets. By default an app may use every runner but one where there are
    three or more; with one or two (a small machine, most often serving one app) it may use all,
    so a single app's functions keep the machine's whole throughput."""
    runners = max(1, workers)
    return AppLimits(
        custom_rate=settings.function_rate_per_minute,
        event_rate=settings.function_event_rate_per_minute,
        app_rate=settings.function_app_rate_per_minute,
        concurrency=settings.function_app_concurrency or (runners if runners <= 2 else runners - 1),
        tasks=settings.task_max_per_app,
    )


def checked_own(body: Any, current: dict[str, int], server: AppLimits) -> dict[str, int]:
    """The app's own limits after ``body`` (a JSON object of names to integers; null removes one)."""
    if not isinstance(body, dict):
        raise BadRequest(f"invalid JSON body: expected an object of limits ({', '.join(NAMES)})")
    own = dict(current)
    for name, value in body.items():
        if name not in NAMES:
            raise BadRequest(f"unknown limit {str(name)[:60]!r} (known: {', '.join(NAMES)})")
        if value is None:
            own.pop(name, None)
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VALUE:
            raise BadRequest(f'invalid limit "{name}": expected an integer from 0 to {MAX_VALUE}')
        attr, setting = NAMES[name]
        ceiling = getattr(server, attr)
        if value > ceiling:
            raise BadRequest(f'invalid limit "{name}": {value} is above this server\'s {ceiling} ({setting})')
        if name == "concurrency" and value == 0:
            raise BadRequest('invalid limit "concurrency": at least 1 run must be allowed at a time')
        own[name] = value
    return own


class Windows:
    """Counts in fixed one-minute windows, in this process."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[float, int]] = {}

    def take(self, key: str, wanted: int, limit: int) -> int:
        """Count up to ``wanted`` more under ``key`` without passing ``limit``; how many were counted."""
        now = time.monotonic()
        start, used = self._counts.get(key, (now, 0))
        if now - start >= WINDOW_SECONDS:
            start, used = now, 0
        taken = max(0, min(wanted, limit - used))
        if len(self._counts) > 100_000:  # keys of windows long gone
            self._counts = {k: v for k, v in self._counts.items() if now - v[0] < WINDOW_SECONDS}
        self._counts[key] = (start, used + taken)
        return taken


class Slots:
    """The runs of each app in progress in this process, and what waits for one to end: a
    queued job (parked) or a web or task run (a future), first come first served."""

    def __init__(self) -> None:
        self.active: dict[str, int] = {}
        self.waiting: dict[str, deque[Any]] = {}

    def try_take(self, app: str, cap: int) -> bool:
        if self.active.get(app, 0) >= cap or self.waiting.get(app):
            return False
        self.active[app] = self.active.get(app, 0) + 1
        return True

    def wait(self, app: str, item: Any) -> None:
        self.waiting.setdefault(app, deque()).append(item)

    def release(self, app: str) -> Any:
        """End one of the app's runs: its slot goes to the app's next waiter. A waiting future is
        resolved here (None is returned); a parked job is returned, for the caller to run in the slot."""
        queue = self.waiting.get(app)
        while queue:
            item = queue.popleft()
            if not queue:
                del self.waiting[app]
            if hasattr(item, "set_result"):
                if item.done():
                    continue  # its caller gave up waiting
                item.set_result(None)
                return None
            return item
        left = self.active.get(app, 1) - 1
        if left > 0:
            self.active[app] = left
        else:
            self.active.pop(app, None)
        return None
