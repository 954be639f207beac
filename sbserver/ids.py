"""Identifiers and random codes in StaticBackend's formats."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

# StaticBackend's alphabet: no l, o, I, O, 0, 1, 8.
ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ2345679"


def random_code(length: int, first: str = "") -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(length - len(first)))
    return first + body


def base_name() -> str:
    """A 12-character base name whose first character is always ``a``."""
    return random_code(12, first="a")


def new_id() -> str:
    return str(uuid.uuid4())


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
