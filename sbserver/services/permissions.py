"""Collection permissions carried in the name: ``tasks_760_`` = owner 7, account 6, everyone 0.

Each digit is tested bitwise, 4 = read and 2 = write. The owner digit is never consulted (the
creator always keeps access); without a suffix the digits are 7, 4, 0. ``pub_`` collections
are readable by everyone, including anonymous callers; their writes follow the normal rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache

from sbserver.errors import BadRequest

_SUFFIX = re.compile(r"_(\d)(\d)(\d)_$")
_ANY_SUFFIX = re.compile(r"_\d\d\d_")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


class Level(IntEnum):
    OWNER = 0
    ACCOUNT = 1
    EVERYONE = 2


@dataclass(frozen=True, slots=True)
class Permission:
    read: Level
    write: Level
    digits: str

    def looser_than(self, other: Permission) -> bool:
        return self.read > other.read or self.write > other.write


def _level(account: int, everyone: int, bit: int) -> Level:
    if everyone & bit:
        return Level.EVERYONE
    if account & bit:
        return Level.ACCOUNT
    return Level.OWNER


@lru_cache(maxsize=4096)
def permission_of(collection: str) -> Permission:
    m = _SUFFIX.search(collection)
    digits = m.group(1) + m.group(2) + m.group(3) if m else "740"
    account, everyone = int(digits[1]), int(digits[2])
    read = _level(account, everyone, 4)
    if collection.startswith("pub_"):
        read = Level.EVERYONE
    return Permission(read=read, write=_level(account, everyone, 2), digits=digits)


def check_collection_name(name: str, system_allowed: bool = False) -> str:
    """A collection name from a URL, validated; 400 otherwise."""
    if not _NAME.match(name):
        raise BadRequest(f"invalid collection name {name[:60]!r}: use 1 to 100 letters, digits, '_' or '-'")
    if name.startswith("sb_") and not system_allowed:
        raise BadRequest(f"invalid collection name {name!r}: names starting with sb_ are reserved")
    return name


def stored_name(collection: str, keep_suffix: bool) -> str:
    """The physical name: the name as given, or stripped of every ``_ddd_`` group."""
    if keep_suffix:
        return collection
    stripped = _ANY_SUFFIX.sub("_", collection).strip("_")
    return stripped or collection
