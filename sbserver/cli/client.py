"""The CLI's HTTP calls, with StaticBackend's conventions and its output decoration."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import httpx

from sbserver.cli.config import Config, load


class CLIError(Exception):
    pass


class Unreachable(CLIError):
    """No answer from the server at all (nothing listens there, DNS, a timeout)."""


def success(msg: str) -> None:
    print(f"SUCCESS ▶ {msg}")


def warning(msg: str) -> None:
    print(f"WARNING ▶ {msg}", file=sys.stderr)


def error(msg: str) -> None:
    print(f"ERROR ▶ {msg}", file=sys.stderr)


class Client:
    def __init__(self, cfg: Config, timeout: float = 30.0) -> None:
        self.cfg = cfg
        self.http = httpx.Client(base_url=cfg.host, timeout=timeout)

    def call(self, method: str, path: str, token: str = "", body: Any = None, raw: bytes | None = None) -> Any:
        headers = {"SB-PUBLIC-KEY": self.cfg.pubKey, "Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            resp = self.http.request(method, path, headers=headers, json=body if raw is None else None, content=raw)
        except httpx.HTTPError as exc:
            raise Unreachable(
                f"cannot reach the server at {self.cfg.host} ({exc}); is it running? "
                "`backend login --host <url>` (or REGION=<url>) points the CLI at another address"
            ) from exc
        if resp.status_code > 299:
            raise CLIError(f"error returned by the backend: {resp.text.strip()}")
        if resp.headers.get("content-type") == "application/json":
            return resp.json()
        return None

    def root(self) -> str:
        if not self.cfg.rootToken:
            raise CLIError("missing rootToken: run `backend login` (or `backend login --dev`) first")
        return self.cfg.rootToken

    def session(self) -> str:
        """The saved session token, refreshed with the saved email/password when it no longer works."""
        if self.cfg.authToken:
            try:
                self.call("GET", "/me", self.cfg.authToken)
                return self.cfg.authToken
            except CLIError:
                pass
        if not self.cfg.email:
            raise CLIError("missing authToken: run `backend login` first")
        token = self.call("POST", "/login", body={"email": self.cfg.email, "password": self.cfg.password})
        self.cfg.authToken = str(token or "")
        self.cfg.save()
        return self.cfg.authToken


Command = Callable[[argparse.Namespace, Client], int]


def command(fn: Command) -> Callable[[argparse.Namespace], int]:
    """A subcommand run with a client for the loaded config; failures print ``ERROR ▶`` and exit 1."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            return int(fn(args, Client(load(args.config))))
        except (CLIError, OSError) as exc:
            error(str(exc))
            return 1

    return wrapped
