"""Lean engine contexts (sbserver/runtime/contexts.py, leanctx.c): which built-ins a context gets.

That user code sees every built-in it uses is tested through real runs in test_execution.py
(test_every_builtin_the_code_uses_is_there); here, the choice itself and that the library really
takes the engine's place in a worker process.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from sbserver.runtime.contexts import (
    ALWAYS,
    BIGINT,
    EVERYTHING,
    MAPSET,
    PROMISE,
    PROXY,
    TYPED_ARRAYS,
    builtins_for,
)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ('function handle(b) { create("x", {a: JSON.parse(b.data), t: new Date()}); }', ALWAYS),
        ("function handle() { return /a+/.test('aa') && 'x'.normalize(); }", ALWAYS),
        ("function handle() { return new Map(); }", ALWAYS | MAPSET),
        ("function handle() { return new WeakSet(); }", ALWAYS | MAPSET),
        ("function handle() { return new Uint8Array(2); }", ALWAYS | TYPED_ARRAYS | BIGINT),
        ("function handle() { return new DataView(new ArrayBuffer(1)); }", ALWAYS | TYPED_ARRAYS | BIGINT),
        ("function handle() { return Array.isArray([]); }", ALWAYS),
        ("function handle() { return new Proxy({}, {}); }", ALWAYS | PROXY),
        ("async function handle() { await 1; }", ALWAYS | PROMISE),
        ("function handle() { return Promise.resolve(1); }", ALWAYS | PROMISE),
        ("function handle() { return 10n; }", ALWAYS | BIGINT),
        ("function handle() { return 0xffn; }", ALWAYS | BIGINT),
        ("function handle() { return BigInt(1); }", ALWAYS | BIGINT),
        ("function handle() { return 10; }", ALWAYS),
    ],
)
def test_a_context_gets_the_builtins_its_code_names(code: str, expected: int) -> None:
    assert builtins_for(code) == expected


@pytest.mark.parametrize(
    "code",
    [
        "function handle() { return globalThis['Ma' + 'p']; }",
        "function handle() { return eval('Map'); }",
        "function handle() { return Function('return Map')(); }",
        "function handle() { return (function () { return this; })()['Map']; }",
        "function handle() { return Reflect.get; }",
        "function handle() { return handle.constructor('return 1')(); }",
        "function handle() { with ({}) { return 1; } }",
    ],
)
def test_code_that_can_compute_a_global_name_gets_everything(code: str) -> None:
    assert builtins_for(code) == EVERYTHING


PROBE = (
    "from sbserver.runtime import contexts as c; "
    "print(c.LEAN, c.new_context(c.ALWAYS).eval('typeof Map + typeof Uint8Array + typeof JSON'), "
    "c.new_context(c.ALWAYS | c.MAPSET).eval('typeof Map'), c.new_context(c.EVERYTHING).eval('typeof Map'))"
)


def probe(**env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


BUILT = importlib.util.find_spec("sbserver.runtime._leanctx") is not None


def test_worker_contexts_are_lean_where_the_library_is_built() -> None:
    """The library is optional (a C compiler builds it at install); a worker loads it before the
    engine, so a context for plain code has no Map or typed arrays. Without it every context is
    a full one and functions run the same, only slower to start. CI has a compiler: there the
    library must have been built."""
    if os.environ.get("CI"):
        assert BUILT, "CI installs with gcc: sbserver/runtime/leanctx.c should have been built"
    if BUILT:
        assert probe() == "True undefinedundefinedobject function function"
    else:
        assert probe() == "False functionfunctionobject function function"


def test_lean_contexts_can_be_turned_off() -> None:
    assert probe(SB_LEAN_CONTEXTS="0") == "False functionfunctionobject function function"
