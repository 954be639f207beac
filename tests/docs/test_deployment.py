"""The deployment files (Dockerfile, compose.yaml, deploy/Caddyfile) are checked without Docker.

This machine has the Docker client but no daemon and no compose plugin, so these tests read the
files the way Docker would and check what would break a build or a start: instructions and their
continuation lines, a non-root user in the final stage, sources of COPY that exist in the build
context and are not excluded by .dockerignore, compose services wired to each other, environment
variables that the server really reads, and a proxy that names both server processes. The
multi-process behaviour itself (two peers on PostgreSQL and Redis) is what tests/*/test_cluster.py
run with real processes.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
    "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    steps: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\") if pending else stripped.removesuffix("\\")
        if stripped.endswith("\\"):
            continue
        word, _, rest = pending.partition(" ")
        steps.append((word.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return steps


def stages() -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for step in dockerfile():
        if step[0] == "FROM":
            out.append([])
        assert out, "the Dockerfile must start with FROM (or ARG before it)"
        out[-1].append(step)
    return out


def dockerignored(path: str) -> bool:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()]
    return any(p and not p.startswith("#") and fnmatch.fnmatch(path, p.removeprefix("**/")) for p in patterns)


def test_dockerfile_instructions_are_known_and_images_pinned() -> None:
    steps = dockerfile()
    assert {word for word, _ in steps} <= INSTRUCTIONS, [w for w, _ in steps if w not in INSTRUCTIONS]
    for word, args in steps:
        if word == "FROM":
            image = args.split()[0]
            assert ":" in image and not image.endswith(":latest"), f"pin the base image's tag: {image}"


def test_final_stage_runs_the_server_as_a_non_root_user() -> None:
    final = stages()[-1]
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    cmd = [args for word, args in final if word == "CMD"][-1]
    assert cmd.startswith("[") and yaml.safe_load(cmd)[:2] == ["backend", "server"], cmd
    assert ("EXPOSE", "8099") in final
    env = " ".join(args for word, args in final if word == "ENV")
    assert "APP_ENV=prod" in env and "SB_HOST=0.0.0.0" in env, env
    healthcheck = [args for word, args in final if word == "HEALTHCHECK"]
    assert healthcheck and "/ping" in healthcheck[0]


def test_copy_sources_exist_in_the_build_context() -> None:
    for stage in stages():
        for word, args in stage:
            if word not in ("COPY", "ADD") or "--from=" in args:
                continue
            *sources, _dest = shlex.split(args)
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file in the build context"
                assert not dockerignored(source), f"COPY {source}: excluded by .dockerignore"
    # what the image needs is in the context; what it must not carry is not
    assert dockerignored(".venv") and dockerignored(".sbdata") and dockerignored(".env")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def settings_variables() -> set[str]:
    """The environment variable names sbserver/settings.py reads."""
    source = (ROOT / "sbserver" / "settings.py").read_text()
    return set(re.findall(r"""["']([A-Z][A-Z0-9_]+)["']""", source))


def test_compose_runs_two_peers_on_postgresql_and_redis_behind_a_proxy() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "sbserver-1", "sbserver-2", "proxy"}
    known = settings_variables()
    for name in ("sbserver-1", "sbserver-2"):
        peer = services[name]
        assert peer["build"] == "."
        env = peer["environment"]
        assert set(env) <= known, f"{name} sets variables the server never reads: {set(env) - known}"
        assert env["DATA_STORE"] == "pg" and env["APP_ENV"] == "prod"
        assert env["DATABASE_URL"].startswith("postgresql://sbserver:") and env["DATABASE_URL"].endswith(
            "@postgres:5432/sbserver"
        )
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        for secret in ("JWT_SECRET", "APP_SECRET"):
            assert ":?" in env[secret], f"{secret} must be required, never defaulted"
        assert peer["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }
    pg = services["postgres"]["environment"]
    assert pg["POSTGRES_USER"] == "sbserver" and pg["POSTGRES_DB"] == "sbserver"
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"


def test_the_proxy_balances_both_processes_and_streams_sse() -> None:
    proxy = compose()["services"]["proxy"]
    mount = proxy["volumes"][0].split(":")
    assert (ROOT / mount[0]).is_file() and mount[1] == "/etc/caddy/Caddyfile"
    assert proxy["ports"] == ["${SB_PORT:-8099}:8099"]
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    upstreams = re.search(r"reverse_proxy ([^{]+)\{", caddyfile)
    assert upstreams and upstreams.group(1).split() == ["sbserver-1:8099", "sbserver-2:8099"]
    assert "flush_interval -1" in caddyfile  # an SSE stream is never buffered
    assert "health_uri /ping" in caddyfile
    assert caddyfile.count("{") == caddyfile.count("}")


def test_the_example_env_names_every_required_variable() -> None:
    required = set(re.findall(r"\$\{([A-Z_]+):\?", (ROOT / "compose.yaml").read_text()))
    example = {
        line.split("=", 1)[0] for line in (ROOT / "deploy" / "example.env").read_text().splitlines() if "=" in line
    }
    assert required and required <= example, required - example
