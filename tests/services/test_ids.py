"""Generated ids: canonical lower-case UUIDs (spec 03 §3.2); appended rows get time-ordered ones."""

from __future__ import annotations

import re
import time
import uuid

from sbserver.ids import new_id, new_ordered_id

CANONICAL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_ids_are_canonical_uuids_of_their_version() -> None:
    for make, version in ((new_id, 4), (new_ordered_id, 7)):
        ids = {make() for _ in range(2000)}
        assert len(ids) == 2000
        for text in ids:
            assert CANONICAL.match(text), text
            parsed = uuid.UUID(text)
            assert parsed.version == version and parsed.variant == uuid.RFC_4122, text


def test_ordered_ids_sort_by_creation_time_and_carry_the_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    first = new_ordered_id()
    time.sleep(0.003)
    second = new_ordered_id()
    after = time.time_ns() // 1_000_000
    assert first < second
    stamp = int(first.replace("-", "")[:12], 16)
    assert before <= stamp <= after
