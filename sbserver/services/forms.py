"""Form submissions: public posts of flat string fields, read back by the app's root.

The admin pages name a submission by an id made of its sequence number in its base and the digits
of its time (``submission_id``): the number alone is not unique across apps on PostgreSQL (one
sequence per base), and with the time another app's id names nothing here.
"""

from __future__ import annotations

import re

from sbserver.backends.storage import Store
from sbserver.backends.storage.forms.base import Submission
from sbserver.errors import BadRequest, NotFound
from sbserver.ids import now_iso
from sbserver.types import Base

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
HONEYPOT = "_hp_"
MAX_FIELDS = 200
MAX_RESULTS = 100
_ID = re.compile(r"([1-9][0-9]{0,17})-([0-9]{1,32})")  # 18 digits: within a 64-bit integer


def check_form_name(name: str) -> str:
    if not _NAME.match(name):
        raise BadRequest(f"invalid form name {name[:60]!r}: use 1 to 100 letters, digits, '_' or '-'")
    return name


def _digits(text: str) -> str:
    return re.sub(r"[^0-9]", "", text)[:32]


def submission_id(sub: Submission) -> str:
    """The id of a submission on the admin pages: ``<seq>-<digits of its time>``."""
    return f"{sub.seq}-{_digits(sub.created) or '0'}"


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

    async def names(self, base: Base) -> list[tuple[str, int]]:
        """The app's form names with their number of submissions, by name."""
        return await self.store.form_names(base)

    async def entries(self, base: Base, form: str, page: int, size: int) -> list[Submission]:
        """Page ``page`` (from 1) of ``size`` submissions of ``form``, newest first."""
        check_form_name(form)
        return await self.store.form_entries(base, form, size, (max(page, 1) - 1) * size)

    async def entry(self, base: Base, entry_id: str) -> Submission:
        """The submission ``entry_id`` (see ``submission_id``) of this app; ``NotFound`` otherwise."""
        m = _ID.fullmatch(entry_id)
        sub = await self.store.form_entry(base, int(m.group(1))) if m else None
        if sub is None or submission_id(sub) != entry_id:
            raise NotFound(f"form submission not found: no submission of this app has the id {entry_id[:60]!r}")
        return sub

    async def delete(self, base: Base, entry_id: str) -> Submission:
        """Remove the submission ``entry_id``; the removed one (``NotFound`` when there is none)."""
        sub = await self.entry(base, entry_id)
        if not await self.store.delete_form_entry(base, sub.seq):
            raise NotFound(f"form submission not found: no submission of this app has the id {entry_id[:60]!r}")
        return sub
