"""``backend login [--dev]``: check the root token, sign in, write ``.backend.yml``."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from sbserver.cli.client import Client, CLIError, Unreachable, error, success
from sbserver.cli.config import Config, load

DEV = {
    "pubKey": "dev_memory_pk",
    "region": "dev",
    "rootToken": "safe-to-use-in-dev-root-token",
    "email": "admin@dev.com",
    "password": "devpw1234",
}


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("login", help="save the credentials of an app in .backend.yml")
    p.add_argument("--dev", action="store_true", help="use the local development server's well-known values")
    p.add_argument(
        "--host",
        default="",
        help="the server's URL (default: http://localhost:8099 with --dev; REGION in the environment works too)",
    )
    p.set_defaults(run=run)


def _ask(prompt: str, secret: bool = False) -> str:
    if secret and sys.stdin.isatty():
        return getpass.getpass(prompt).strip()
    print(prompt, end="", flush=True)
    return sys.stdin.readline().strip()


def run(args: argparse.Namespace) -> int:
    existing = load(args.config)
    cfg = Config(path=existing.path)
    if args.dev:
        for key, value in DEV.items():
            setattr(cfg, key, value)
        cfg.region = args.host or os.environ.get("REGION", "").strip() or "dev"
    else:
        cfg.pubKey = _ask("Public key: ")
        cfg.region = args.host or _ask("Host URL (dev for http://localhost:8099): ") or "dev"
        cfg.rootToken = _ask("Root token: ", secret=True)
        cfg.email = _ask("Admin email: ")
        cfg.password = _ask("Admin password: ", secret=True)
    client = Client(cfg)
    try:
        client.call("GET", "/sudolistall", cfg.rootToken)
    except Unreachable as exc:
        error(str(exc))
        return 1
    except CLIError as exc:
        error(f"invalid root token: {exc}")
        return 1
    try:
        cfg.authToken = str(client.call("POST", "/login", body={"email": cfg.email, "password": cfg.password}) or "")
    except CLIError as exc:
        error(f"login failed: {exc}")
        cfg.authToken = ""
    cfg.save()
    success(f"{cfg.path} file has been set up for {cfg.host}")
    return 0
