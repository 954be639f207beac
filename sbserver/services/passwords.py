"""bcrypt password hashes (cost 10, ``$2a$``/``$2b$`` compatible with the Go server's).

Hashing costs tens of milliseconds of CPU, so it runs in a worker thread (bcrypt releases the
GIL) and never blocks the event loop.
"""

from __future__ import annotations

import asyncio

import bcrypt

from sbserver.errors import BadRequest

COST = 10
MAX_BYTES = 72
# A real cost-10 hash of a password nobody is given: a login for an unknown email is checked
# against it, so that it costs the same bcrypt work as a wrong password (no timing oracle).
DUMMY_HASH = "$2b$10$O6qP4II.WmJy5w4AbjsYKePg1UTOoTGEHO9LdAuutmO1g14y6U.KG"


def _encode(password: str) -> bytes:
    raw = password.encode()
    if len(raw) > MAX_BYTES:
        raise BadRequest(f"password is too long: {len(raw)} bytes (at most {MAX_BYTES})")
    return raw


async def hash_password(password: str) -> str:
    raw = _encode(password)
    hashed: bytes = await asyncio.to_thread(bcrypt.hashpw, raw, bcrypt.gensalt(COST))
    return hashed.decode()


async def check_password(password: str, hashed: str) -> bool:
    try:
        raw = _encode(password)
    except BadRequest:
        return False
    if not hashed:
        return False
    try:
        return bool(await asyncio.to_thread(bcrypt.checkpw, raw, hashed.encode()))
    except ValueError:
        return False
