"""The admin web pages under ``/ui`` (spec 08 §2): server-rendered, one layout, htmx for updates.

``routes`` gathers every page module's routes; ``app.build_routes`` registers them before the
catch-all. ``session`` holds what every page shares (sign-in, ``page``, ``admin_of``, CSRF,
``render``); each other module is one area of the admin (accounts, dashboard, database, functions).
"""

from __future__ import annotations

import importlib
import importlib.util

from starlette.routing import BaseRoute

from sbserver.http.ui import accounts, dashboard, session

# Areas built separately: registered when their module exists.
_OPTIONAL = ("database", "functions", "tasks", "forms", "files", "live", "queue")


def _optional_routes() -> list[BaseRoute]:
    found: list[BaseRoute] = []
    for name in _OPTIONAL:
        qualified = f"{__name__}.{name}"
        if importlib.util.find_spec(qualified) is not None:
            found.extend(importlib.import_module(qualified).routes)
    return found


routes: list[BaseRoute] = [*session.routes, *dashboard.routes, *accounts.routes, *_optional_routes()]
