"""Form submissions: public posts of flat string fields, read back by the app's root."""

from __future__ import annotations

import re

from sbserver.backends.storage import Store
from sbserver.errors import BadRequest
from sbserver.ids import now_iso
from sbserver.types import Base

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
HONEYPOT = "_hp_"
MAX_FIELDS = 200
MAX_RESULTS = 100


def check_form_name(name: str) -> str:
    if not _NAME.match(name):
        raise BadRequest(f"invalid form name {name[:60]!r}: use 1 to 100 letters, digits, '_' or '-'")
    return name


class FormService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def submit(self, base: Base, form: str, fields: list[tuple[str, str]]) -> None:
        """Store one submission; repeated keys are joined with ", " in arrival order."""
        check_form_name(form)
        joined: dict[str, list[str]] = {}
        for key, value in fields:
            joined.setdefault(key, []).append(value)
        if joined.get(HONEYPOT, [""])[0] or any(joined.get(HONEYPOT, [])):
            raise BadRequest("invalid form field present")
        joined.pop(HONEYPOT, None)
        if len(joined) > MAX_FIELDS:
            raise BadRequest(f"too many form fields: at most {MAX_FIELDS}")
        await self.store.add_form(base, form, {k: ", ".join(v) for k, v in joined.items()}, now_iso())

    async def submissions(self, base: Base, form: str) -> list[dict[str, str]]:
        if form:
            check_form_name(form)
        return await self.store.forms(base, form or None, MAX_RESULTS)
