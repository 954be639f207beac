"""``backend account create <email> | portal``."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from sbserver.cli import output
from sbserver.cli.client import Client, command, success


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("account", help="create an account, open the billing portal")
    asub = p.add_subparsers(dest="account_command", metavar="COMMAND", required=True)
    c = asub.add_parser("create", help="create an account (a tenant and its first app) for an email")
    c.add_argument("email")
    c.set_defaults(run=create)
    asub.add_parser("portal", help="the URL of your billing portal").set_defaults(run=portal)


@command
def create(args: argparse.Namespace, client: Client) -> int:
    # needs no credentials: the host comes from .backend.yml or REGION (default http://localhost:8099)
    answer = str(client.call("GET", f"/account/init?email={quote(args.email)}") or "")
    if answer.startswith(("http://", "https://")):  # a hosted server with billing: finish there
        output.heading("Your account has been created and your 14-day trial is almost ready.")
        print("To complete your registration follow this link:")
        output.heading(answer)
        print("\n\nYour account will unlock once you add a payment method.")
        return 0
    success(f"the account for {args.email} has been created")
    print(
        f"Its public key, root token and admin password go to {args.email} "
        "(a server in dev mode prints them in its terminal)."
    )
    if answer:
        print(f"The server says: {answer}")
    return 0


@command
def portal(args: argparse.Namespace, client: Client) -> int:
    link = client.call("GET", "/account/portal", client.root())
    print("You may access your billing portal via this URL:")
    print(link or "")
    return 0
