"""Fresh QuickJS contexts with only the built-ins a function's code can reach.

Every run gets a new context, and most of what a new context costs is installing built-ins a
short function never touches (typed arrays alone are a quarter of it). ``leanctx.c`` stands in
for the engine's ``JS_NewContext`` in a worker process: it is loaded, with its symbols global,
before the engine's binding, so the binding's call lands there, and it installs the set chosen
here from the code's text. A global is only reachable by its name, so code that never names
``Map`` cannot need Map/Set; code that can compute a global's name (``globalThis``, ``eval``,
``Function``, ``this``, ``with``, ``Reflect``, ``constructor``) gets everything, as does code
run where the library is missing (``SB_LEAN_CONTEXTS=0`` turns it off). Language features that
need a built-in without naming it are matched by their syntax: ``async``/``await`` (Promise),
BigInt literals.

Only the worker imports this module; the server process never loads the library.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
from functools import lru_cache

# Bits of sb_lean_select's mask, in leanctx.c's order.
BASE, DATE, EVAL, NORMALIZE, REGEXP, JSON, PROXY, MAPSET, TYPED_ARRAYS, PROMISE, BIGINT = (1 << i for i in range(11))
EVERYTHING = 0  # the engine's own JS_NewContext
ALWAYS = BASE | DATE | EVAL | NORMALIZE | REGEXP | JSON

# Code that can reach a global by a computed name (the worker gives it every helper, too).
COMPUTES_NAMES = re.compile(r"\beval\b|\bFunction\b|globalThis|\bthis\b|\bwith\b|\bReflect\b|\bconstructor\b")
_WANTS = (
    (re.compile(r"\bProxy\b"), PROXY),
    (re.compile(r"\b(?:Weak)?(?:Map|Set)\b"), MAPSET),
    (
        re.compile(
            r"\b(?:(?:Int8|Uint8|Uint8Clamped|Int16|Uint16|Int32|Uint32|Float32|Float64|BigInt64|BigUint64)Array"
            r"|ArrayBuffer|SharedArrayBuffer|DataView|Atomics)\b"
        ),
        TYPED_ARRAYS | BIGINT,
    ),
    (re.compile(r"\b(?:Promise|async|await)\b"), PROMISE),
    (re.compile(r"\bBigInt\b|\b\d[\d_]*n\b|\b0[xXoObB][\da-fA-F_]+n\b"), BIGINT),
)


@lru_cache(maxsize=256)
def builtins_for(code: str) -> int:
    """The mask of built-ins a context for ``code`` needs (EVERYTHING when it cannot be told)."""
    if COMPUTES_NAMES.search(code):
        return EVERYTHING
    mask = ALWAYS
    for pattern, bits in _WANTS:
        if pattern.search(code):
            mask |= bits
    return mask


def _load_library() -> ctypes.CDLL | None:
    if os.environ.get("SB_LEAN_CONTEXTS", "1") == "0":
        return None
    spec = importlib.util.find_spec("sbserver.runtime._leanctx")
    if spec is None or not spec.origin:
        return None
    try:
        lib = ctypes.CDLL(spec.origin, mode=os.RTLD_GLOBAL | os.RTLD_NOW)
    except OSError:
        return None
    lib.sb_lean_select.argtypes = [ctypes.c_ulonglong]
    lib.sb_lean_select.restype = None
    lib.sb_lean_state.restype = ctypes.c_int
    return lib


_library = _load_library()

import quickjs  # noqa: E402  (after the library, so the binding's JS_NewContext is ours)


def _working() -> bool:
    """True when contexts really are lean: the library is in place of the engine's function."""
    if _library is None:
        return False
    _library.sb_lean_select(BASE | EVAL)
    try:
        return bool(quickjs.Context().eval('typeof Map === "undefined"'))
    finally:
        _library.sb_lean_select(EVERYTHING)


LEAN = _working()


def new_context(builtins: int = EVERYTHING) -> quickjs.Context:
    """A context with the ``builtins`` mask (every built-in where contexts cannot be lean)."""
    if not LEAN or builtins == EVERYTHING:
        return quickjs.Context()
    assert _library is not None
    _library.sb_lean_select(builtins)
    try:
        return quickjs.Context()
    finally:
        _library.sb_lean_select(EVERYTHING)
