"""The ``backend`` command: ``backend server`` runs the server; the others talk to one, as StaticBackend's CLI does."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Sequence

from sbserver import __version__
from sbserver.cli import account, backup, db, form, function, llm, login, proxy, server, task, transfer, users


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backend", description="sbserver: a StaticBackend-compatible backend")
    parser.add_argument("-v", "--version", action="version", version=f"sbserver {__version__}")
    parser.add_argument("--config", default=None, help="the config file (default ./.backend.yml)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    server.add_parser(sub)
    login.add_parser(sub)
    db.add_parser(sub)
    users.add_parser(sub)
    function.add_parser(sub)
    task.add_parser(sub)
    form.add_parser(sub)
    account.add_parser(sub)
    proxy.add_parser(sub)
    llm.add_parser(sub)
    backup.add_parsers(sub)
    transfer.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in ("server", "proxy") and hasattr(signal, "SIGPIPE"):
        # `backend task list | head` ends quietly; never for the server, whose sockets would kill it
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    result: int = args.run(args)
    return result
