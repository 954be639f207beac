"""``GET /ui``: the app at a glance: documents, users, files, functions, and the function runs and
failures of the last 24 hours as a chart drawn on the server (inline SVG, no script)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sbserver.http.request import services
from sbserver.http.ui.session import admin_of, page, render
from sbserver.services.overview import Hour

CHART_W, CHART_H, PAD_L, PAD_B, PAD_T = 720, 200, 34, 22, 10


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    ok_y: float
    ok_h: float
    fail_y: float
    fail_h: float
    label: str  # the hour, shown under every sixth bar
    title: str


def _scale(top: int) -> int:
    """A round maximum for the y axis, at least ``top``."""
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if top <= step * 4:
            return step * 4
    return top


def chart(hours: tuple[Hour, ...]) -> dict[str, object]:
    """The geometry of the runs chart: one bar per hour, failures stacked on successes."""
    inner_w, inner_h = CHART_W - PAD_L, CHART_H - PAD_B - PAD_T
    top = _scale(max((h.runs for h in hours), default=0) or 1)
    slot = inner_w / max(1, len(hours))
    bars = []
    for i, h in enumerate(hours):
        ok = h.runs - h.failures
        ok_h, fail_h = inner_h * ok / top, inner_h * h.failures / top
        base_y = PAD_T + inner_h
        bars.append(
            Bar(
                x=round(PAD_L + i * slot + slot * 0.15, 1),
                width=round(slot * 0.7, 1),
                ok_y=round(base_y - ok_h, 1),
                ok_h=round(ok_h, 1),
                fail_y=round(base_y - ok_h - fail_h, 1),
                fail_h=round(fail_h, 1),
                label=h.start.strftime("%H:00") if i % 6 == 0 else "",
                title=f"{h.start:%Y-%m-%d %H:00} UTC: {h.runs} run{'s' if h.runs != 1 else ''}, {h.failures} failed",
            )
        )
    ticks = [(round(PAD_T + inner_h - inner_h * k / 4, 1), top * k // 4) for k in range(5)]
    return {"w": CHART_W, "h": CHART_H, "left": PAD_L, "bottom": PAD_T + inner_h, "bars": bars, "ticks": ticks}


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


@page
async def dashboard(request: Request) -> Response:
    admin = await admin_of(request)
    overview = await services(request).overview.of(admin.identity, admin.base)
    return render(
        request,
        "dashboard.html",
        {
            "active": "dashboard",
            "o": overview,
            "chart": chart(overview.hours),
            "file_size": human_bytes(overview.file_bytes),
        },
    )


routes: list[BaseRoute] = [
    Route("/ui", dashboard, methods=["GET"]),
    Route("/ui/", dashboard, methods=["GET"]),
]
