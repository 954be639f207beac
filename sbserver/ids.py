"""Identifiers and random codes in StaticBackend's formats."""

from __future__ import annotations

import os
import secrets
import threading
import time
import uuid

# StaticBackend's alphabet: no l, o, I, O, 0, 1, 8.
ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ2345679"


def random_code(length: int, first: str = "") -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(length - len(first)))
    return first + body


def base_name() -> str:
    """A 12-character base name whose first character is always ``a``."""
    return random_code(12, first="a")


_pool = b""
_pool_lock = threading.Lock()


def _after_fork() -> None:
    """A forked child starts with an empty pool (and a fresh lock): it must never hand out the
    bytes its parent holds, or both processes would make the same ids."""
    global _pool, _pool_lock
    _pool = b""
    _pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def _random16() -> bytes:
    """16 bytes from the OS generator, read 4 KiB at a time (one syscall per 256 ids)."""
    global _pool
    with _pool_lock:
        if len(_pool) < 16:
            _pool = os.urandom(4096)
        chunk, _pool = _pool[:16], _pool[16:]
    return chunk


def new_id() -> str:
    """A random (version 4) UUID for documents, accounts and users."""
    b = bytearray(_random16())
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_ordered_id() -> str:
    """A time-ordered (version 7, RFC 9562) UUID for rows that are appended: documents, jobs and
    runs. Its text starts with the creation millisecond, so the indexes on ids grow at their
    end (the pages a write touches stay few and cached) instead of at random places.
    74 random bits keep it unguessable; clients treat ids as opaque (spec 03 §3.2)."""
    b = bytearray(_random16())
    b[0:6] = (time.time_ns() // 1_000_000).to_bytes(6, "big")
    b[6] = (b[6] & 0x0F) | 0x70  # version 7
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_secret() -> str:
    """A UUID-shaped secret (user tokens): drawn directly from the OS generator."""
    return str(uuid.uuid4())


_stamp: tuple[int, str] = (-1, "")  # one object, swapped whole: threads never see half an update


def now_iso() -> str:
    """UTC now as RFC 3339 with microseconds, e.g. ``2026-11-28T08:15:12.123456Z`` (sorts as text)."""
    global _stamp
    t = time.time()
    sec = int(t)
    second, text = _stamp
    if sec != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _stamp = (sec, text)
    return f"{text}.{int((t - sec) * 1_000_000):06d}Z"
