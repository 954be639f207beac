"""Spec 10 item 92: ``backend function run --use-root-token`` and the history it reads back.

The real ``backend`` CLI runs as a subprocess against ``live`` with an explicit ``--config`` file
naming a fresh app (``region`` = the server URL), so it does not need port 8099; ``login --dev``
itself is exercised by ``test_tutorial``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from tests.functions.support import FnApi

BACKEND = Path(sys.executable).parent / "backend"
CODE = 'function handle(body) { log("x is", body.x); log(JSON.stringify(body)); }'


def write_config(path: Path, fn: FnApi, auth_token: str = "") -> Path:
    path.write_text(
        f"pubKey: {fn.pk}\nregion: {fn.url}\nrootToken: {fn.root}\nemail: \npassword: \nauthToken: {auth_token}\n"
    )
    return path


async def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PUBKEY", "REGION", "ROOTTOKEN", "AUTHTOKEN")}
    env["HOME"] = str(config.parent)

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BACKEND), "--config", str(config), *args],
            cwd=config.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return await asyncio.to_thread(run)


async def test_f92_sudoexec_run_is_the_last_history_entry_within_2s(live_fn: FnApi) -> None:
    await live_fn.add_ok("f92", "web", CODE)
    r = await live_fn.sudo_exec("f92", {"x": 1})
    assert r.status_code == 200 and r.content == b"", r.text
    history = await live_fn.runs("f92", 1, timeout=2.0)  # fails past 2 s
    assert history[-1]["output"] == ["Function started", "x is1", '{"x":1}', "Function completed"], history


async def test_f92_backend_function_run_with_the_root_token(live_fn: FnApi, tmp_path: Path) -> None:
    await live_fn.add_ok("f92cli", "web", CODE)
    config = write_config(tmp_path / "cfg.yml", live_fn)
    done = await cli(config, "function", "run", "f92cli", "--use-root-token", "--data", '{"x":1}')
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "SUCCESS ▶ Function f92cli executed successfully" in done.stdout, done.stdout
    assert "==== RUN OUTPUT ====" in done.stdout, done.stdout
    tail = done.stdout.split("==== RUN OUTPUT ====", 1)[1].splitlines()
    assert '{"x":1}' in tail and "Function completed" in tail, done.stdout
    history = (await live_fn.info("f92cli"))["history"]
    assert len(history) == 1 and history[-1]["success"], history
    # and with a user session: the CLI signs in with nothing but the saved token
    user = await live_fn.register()
    write_config(config, live_fn, user.jwt)
    done = await cli(config, "function", "run", "f92cli", "--data", '{"x":2}')
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert '{"x":2}' in done.stdout, done.stdout
    info = await cli(config, "function", "info", "f92cli")
    assert info.returncode == 0 and info.stdout.count("version:1 | start:") == 2, info.stdout
