"""Frames between the server and a worker: a 4-byte big-endian length, then one JSON object.

server -> worker  {"op": "run", "code", "args", "memory", "stack", "secrets", "helpers"}
worker -> server  {"op": "call", "name", "args"}          a helper call; the worker waits
server -> worker  {"op": "reply", "value"}                 the helper's result
worker -> server  {"op": "log", "line"}                    one output line (streamed)
worker -> server  {"op": "done", "ok", "error"}            the run ended
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
