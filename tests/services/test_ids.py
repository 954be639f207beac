"""Generated ids: canonical lower-case UUIDs (spec 03 §3.2); appended rows get time-ordered ones."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from datetime import datetime

from sbserver.ids import new_id, new_ordered_id, now_iso

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


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    new_id()  # the parent's pool now holds bytes a child would inherit
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the ids it makes, then leave at once
        try:
            os.write(write_end, " ".join(new_id() for _ in range(50)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {new_id() for _ in range(50)}
    assert len(child) == 50 and not child & parent


def test_now_iso_is_well_formed_from_many_threads() -> None:
    stamps: list[str] = []

    def work() -> None:
        stamps.extend(now_iso() for _ in range(2000))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shape = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
    assert len(stamps) == 8000 and all(shape.match(s) for s in stamps)
    assert abs(time.time() - datetime.fromisoformat(max(stamps)).timestamp()) < 60
