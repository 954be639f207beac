"""``backend users list | add | delete``: the users of the admin's account, with its session token."""

from __future__ import annotations

import argparse
from typing import Any

from sbserver.cli import output
from sbserver.cli.client import Client, command


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("users", help="manage the users of your account (session token)")
    usub = p.add_subparsers(dest="users_command", metavar="COMMAND", required=True)
    usub.add_parser("list", help="list the users of your account").set_defaults(run=list_users)
    c = usub.add_parser("add", help="add a user to your account")
    c.add_argument("email")
    c.add_argument("password")
    c.set_defaults(run=add)
    c = usub.add_parser("delete", help="delete a user of your account")
    c.add_argument("user_id", metavar="userId")
    c.set_defaults(run=delete)


@command
def list_users(args: argparse.Namespace, client: Client) -> int:
    users = client.call("GET", "/account/users", client.session()) or []
    output.count(len(users), "user(s)")
    rows = [(str(u.get("id", "")), str(u.get("email", "")), str(u.get("role", ""))) for u in users]
    if output.is_terminal():
        output.table(("ID", "EMAIL", "ROLE"), rows)
    else:
        for row in rows:
            print(" | ".join(row))
    return 0


@command
def add(args: argparse.Namespace, client: Client) -> int:
    body = {"email": args.email, "password": args.password}
    user = client.call("POST", "/account/users", client.session(), body) or {}
    print(f"User created: {user.get('id', '')} | {user.get('email', args.email)}")
    return 0


@command
def delete(args: argparse.Namespace, client: Client) -> int:
    client.call("DELETE", f"/account/users/{args.user_id}", client.session())
    print(f"User {args.user_id} has been deleted.")
    return 0
