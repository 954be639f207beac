"""Schedules: 5-field cron (optionally with a leading seconds field), shorthands, ``@every``.

``next_after(schedule, t)`` gives the first tick strictly after ``t`` (Unix seconds), in the
schedule's time zone (UTC unless the task or the settings name another). Parsing is done with
croniter; ``@every <Go duration>`` counts from an anchor (the task's creation), so its ticks
are anchor + k * period.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

from sbserver.errors import BadRequest

SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
MIN_PERIOD = 1.0


def parse_duration(text: str) -> float:
    """A Go duration (``1h30m``, ``10s``, ``500ms``) in seconds."""
    text = text.strip()
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION.match(text, pos)
        if m is None:
            raise ValueError(f"{text!r} is not a duration such as 30s, 5m or 1h30m")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text:
        raise ValueError("a duration is required after @every")
    return total


@dataclass(frozen=True)
class Schedule:
    expression: str
    cron: str = ""  # croniter form (seconds, when present, last)
    every: float = 0.0
    tz: str = "UTC"

    def next_after(self, t: float, anchor: float = 0.0) -> float:
        if self.every:
            k = math.floor((t - anchor) / self.every) + 1
            return anchor + max(k, 1) * self.every if t >= anchor else anchor + self.every
        zone = UTC if self.tz == "UTC" else ZoneInfo(self.tz)
        start = datetime.fromtimestamp(t, tz=zone)
        nxt = croniter(self.cron, start).get_next(datetime)
        return float(nxt.timestamp())


_MONTHS = {
    m: i
    for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1)
}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
# (name, low, high, names) for minute hour day-of-month month day-of-week; seconds prepended when given
FieldSpec = tuple[str, int, int, dict[str, int]]
_FIELDS: list[FieldSpec] = [
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
]
_SECONDS: FieldSpec = ("second", 0, 59, {})


def _check_field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> None:
    """Standard cron only: numbers or names in range, ``*``/``?``, lists, ranges low-high, steps."""

    def value(token: str) -> int:
        upper = token.upper()
        if upper in names:
            return names[upper]
        if not token.isdigit():
            raise ValueError(f"{name} field: {token!r} is not a number")
        n = int(token)
        if not low <= n <= high:
            raise ValueError(f"{name} field: {n} is outside {low}-{high}")
        return n

    for part in text.split(","):
        body, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ValueError(f"{name} field: step {step!r} must be a positive number")
        if body in ("*", "?"):
            continue
        first, dash, last = body.partition("-")
        a = value(first)
        if dash and a > value(last):
            raise ValueError(f"{name} field: range {body!r} goes backwards")


def parse(expression: str, tz: str = "UTC") -> Schedule:
    """Validate a schedule; 400 ``invalid interval: <detail>`` otherwise."""
    expr = " ".join(expression.split())
    if not expr:
        raise BadRequest("invalid interval: it is empty (use a cron expression such as 30 6 * * *)")
    tz = tz or "UTC"
    try:
        if tz != "UTC":
            ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadRequest(f"invalid time zone {tz!r}: use an IANA name such as Europe/Paris") from exc
    lowered = expr.lower()
    if lowered.startswith("@every"):
        try:
            period = parse_duration(expr[len("@every") :])
        except ValueError as exc:
            raise BadRequest(f"invalid interval: {exc}") from exc
        if period < MIN_PERIOD:
            raise BadRequest(f"invalid interval: @every needs at least {MIN_PERIOD:g}s")
        return Schedule(expr, every=period, tz=tz)
    cron = SHORTHANDS.get(lowered, expr)
    if cron.startswith("@"):
        raise BadRequest(f"invalid interval: unknown shorthand {expr!r} (use @hourly, @daily, @every 30s, ...)")
    fields = cron.split(" ")
    if len(fields) not in (5, 6):
        raise BadRequest(
            f"invalid interval: {expr!r} has {len(fields)} fields; use 5 (minute hour day month weekday) "
            "or 6 with a leading seconds field"
        )
    specs = [_SECONDS, *_FIELDS] if len(fields) == 6 else _FIELDS
    try:
        for text, (name, low, high, names) in zip(fields, specs, strict=True):
            _check_field(text, name, low, high, names)
    except ValueError as exc:
        raise BadRequest(f"invalid interval: {expr!r}: {exc}") from exc
    if len(fields) == 6:  # leading seconds field -> croniter's trailing seconds
        cron = " ".join([*fields[1:], fields[0]])
    cron = cron.replace("?", "*")
    try:
        if not croniter.is_valid(cron):
            raise ValueError("not a valid cron expression")
        croniter(cron, datetime.now(UTC)).get_next(datetime)
    except (CroniterError, ValueError, KeyError) as exc:
        raise BadRequest(f"invalid interval: {expr!r}: {exc}") from exc
    return Schedule(expr, cron=cron, tz=tz)
