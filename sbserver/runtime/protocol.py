"""Frames between the server and a worker: a 4-byte big-endian length, then one JSON object.

server -> worker  {"op": "run", "code", "args", "memory", "stack", "secrets", "helpers"}
worker -> server  {"op": "call", "name", "args", "output"}  a helper call; the worker waits
server -> worker  {"op": "reply", "value"}                   the helper's result
worker -> server  {"op": "log", "output"}                    output lines of a long run, as they come
worker -> server  {"op": "done", "ok", "stage", "error", "output"}  the run ended

Output lines (from log()) ride on the next frame the worker sends, so a short run costs no
extra frames; a run past a few milliseconds streams them, so a run killed at its deadline
keeps what it logged.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

import orjson

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024


def encode(message: dict[str, Any]) -> bytes:
    body = orjson.dumps(message, option=orjson.OPT_NON_STR_KEYS)
    return HEADER.pack(len(body)) + body


def read_frame(stream: BinaryIO) -> dict[str, Any] | None:
    """Blocking read of one frame (worker side); None at end of stream."""
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    if size > MAX_FRAME:
        raise ValueError(f"frame too large: {size} bytes")
    body = stream.read(size)
    if len(body) < size:
        return None
    value: dict[str, Any] = orjson.loads(body)
    return value
