"""An acknowledged write has its runs: when they cannot be queued, the writer is told so."""

from __future__ import annotations

from tests.functions.conftest import InProcess, MakeFn
from tests.http.helpers import behind_the_servers_back


async def _break_the_job_queue(env: InProcess) -> None:
    """Take the job table away under the running server, as a failing disk or an operator would."""
    await behind_the_servers_back(
        env.server, "ALTER TABLE sb.fn_jobs RENAME TO fn_jobs_gone", "ALTER TABLE fn_jobs RENAME TO fn_jobs_gone"
    )


async def test_a_write_whose_runs_cannot_be_queued_is_not_a_silent_success(make_fn: MakeFn) -> None:
    async with make_fn() as env:
        fn = env.api
        col = "lostruns"
        await fn.add_ok("onupdate", f"db-{col}", "function handle(c, t, d) { log(t); }")
        user = await fn.register()
        r = await fn.request("POST", f"/db/{col}", user.jwt, json={"v": 1})
        assert r.status_code == 201, r.text
        doc = r.json()
        await fn.settled("onupdate", 1)  # the create's run: the queue works
        await _break_the_job_queue(env)
        r = await fn.request("PUT", f"/db/{col}/{doc['id']}", user.jwt, json={"v": 2})
        assert r.status_code == 503, r.text
        assert (
            r.text
            == "the write was saved, but the functions it triggers will not run: they could not be written to the store\n"
        )
        # the write itself stands, as the answer says
        r = await fn.request("GET", f"/db/{col}/{doc['id']}", user.jwt)
        assert r.status_code == 200 and r.json()["v"] == 2, r.text
