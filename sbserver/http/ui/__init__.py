"""The admin web pages under ``/ui`` (spec 08 §2): server-rendered, one layout, htmx for updates.

``routes`` gathers every page module's routes; ``app.build_routes`` registers them before the
catch-all. ``session`` holds what every page shares (sign-in, ``page``, ``admin_of``, CSRF,
``render``); each other module is one area of the admin.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from sbserver.http.ui import accounts, dashboard, database, files, forms, functions, live, queue, session, tasks

routes: list[BaseRoute] = [
    *session.routes,
    *dashboard.routes,
    *accounts.routes,
    *database.routes,
    *functions.routes,
    *queue.routes,
    *tasks.routes,
    *forms.routes,
    *files.routes,
    *live.routes,
]
