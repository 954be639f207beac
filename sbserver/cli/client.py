"""The CLI's HTTP calls, with StaticBackend's conventions and its output decoration."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import httpx
import yaml

from sbserver.cli import output
from sbserver.cli.config import Config, load


class CLIError(Exception):
    pass


class Unreachable(CLIError):
    """No answer from the server at all (nothing listens there, DNS, a timeout)."""


def success(msg: str) -> None:
    output.banner("SUCCESS", msg, sys.stdout)


def warning(msg: str) -> None:
    output.banner("WARNING", msg, sys.stderr)


def error(msg: str) -> None:
    output.banner("ERROR", msg, sys.stderr)


def missing(cfg: Config, what: str) -> str:
    """Why there are no credentials: no config file at all, or one without this key."""
    if cfg.path.is_file():
        return f"missing {what} in {cfg.path}"
    return f"no {cfg.path.name} here or in ~/.config/backend/ (nor a --config file), so no {what}"


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
            text = " ".join(resp.text.split())[:500] or f"status {resp.status_code}"
            raise CLIError(f"error returned by the backend: {text}")
        if resp.headers.get("content-type") == "application/json":
            return resp.json()
        return None

    def root(self) -> str:
        if not self.cfg.rootToken:
            raise CLIError(f"{missing(self.cfg, 'rootToken')}: run `backend login` (or `backend login --dev`) first")
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
            raise CLIError(f"{missing(self.cfg, 'authToken')}: run `backend login` first")
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
        except yaml.YAMLError as exc:
            error(f"cannot read the config file: {' '.join(str(exc).split())}")
            return 1
        except KeyboardInterrupt:
            return 130

    return wrapped
