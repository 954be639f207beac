"""A worker that cannot cap its memory says so and runs nothing, unless that is allowed."""

from __future__ import annotations

import pytest

from tests.functions.conftest import MakeFn

CODE = 'function handle() { log("ran"); }'


async def test_a_worker_without_its_memory_cap_refuses_to_run_functions(
    make_fn: MakeFn, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SB_WORKER_MAX_BYTES", str(2**70))  # no address-space limit can hold it
    async with make_fn() as env:
        fn = env.api
        r = await fn.add("capped", "web", CODE)  # saving checks the code in a worker: refused too
        assert r.status_code == 500
        assert r.text.startswith("functions are not run: SB_WORKER_MAX_BYTES='1180591620717411303424' is not")
        assert "SB_ALLOW_UNCAPPED_WORKERS=1" in r.text
    assert "sbserver function worker: SB_WORKER_MAX_BYTES=" in capfd.readouterr().err


async def test_running_without_the_cap_can_be_allowed(make_fn: MakeFn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SB_WORKER_MAX_BYTES", "not-a-number")
    monkeypatch.setenv("SB_ALLOW_UNCAPPED_WORKERS", "1")
    async with make_fn() as env:
        fn = env.api
        await fn.add_ok("uncapped", "web", CODE)
        user = await fn.register()
        run = await fn.exec_ok("uncapped", user.jwt, {})
        assert run["success"] is True and "ran" in run["output"], run
