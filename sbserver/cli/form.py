"""``backend form list [name]``: form submissions, with the root token."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from sbserver.cli import output
from sbserver.cli.client import Client, command


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("form", help="view form submissions")
    fsub = p.add_subparsers(dest="form_command", metavar="COMMAND", required=True)
    c = fsub.add_parser("list", help="submissions of one form, or the latest of all forms")
    c.add_argument("name", nargs="?", default="")
    c.add_argument("-p", "--pretty", action="store_true", help="one field per line")
    c.set_defaults(run=list_forms)


@command
def list_forms(args: argparse.Namespace, client: Client) -> int:
    path = f"/form?name={quote(args.name)}" if args.name else "/form?"
    submissions = client.call("GET", path, client.root()) or []
    output.count(len(submissions))
    output.documents(submissions, args.pretty)
    return 0
