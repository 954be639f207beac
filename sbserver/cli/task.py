"""``backend task list | add | update | info | delete``."""

from __future__ import annotations

import argparse
from typing import Any

from sbserver.cli import output
from sbserver.cli.client import Client, command, success
from sbserver.cli.function import _when


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("task", help="manage scheduled tasks")
    tsub = p.add_subparsers(dest="task_command", metavar="COMMAND", required=True)
    tsub.add_parser("list", help="list tasks").set_defaults(run=list_tasks)
    c = tsub.add_parser("add", help="add a task")
    c.add_argument("--name", required=True)
    c.add_argument("--type", required=True, choices=["function", "message", "http"])
    c.add_argument("--value", required=True, help="function name, message type or URL")
    c.add_argument("--interval", required=True, help='cron in UTC, e.g. "30 6 * * *" or "@every 1m"')
    c.add_argument("--meta", default="", help='JSON text, e.g. \'{"channel":"c","data":"x"}\'')
    c.set_defaults(run=add)
    c = tsub.add_parser("update", help="change a task")
    c.add_argument("id")
    for flag in ("--name", "--type", "--value", "--interval", "--meta"):
        c.add_argument(flag, default=None)
    c.set_defaults(run=update)
    c = tsub.add_parser("info", help="a task and its meta")
    c.add_argument("id")
    c.set_defaults(run=info)
    c = tsub.add_parser("delete", help="delete a task")
    c.add_argument("id")
    c.set_defaults(run=delete)


def _last(value: str) -> str:
    return "never" if not value or value.startswith("0001-") else _when(value)


def _table(tasks: list[dict[str, Any]]) -> None:
    rows = [(t["id"], t["name"], t["type"], t["value"], t["interval"], _last(t.get("last", ""))) for t in tasks]
    output.table(("ID", "NAME", "TYPE", "VALUE", "INTERVAL", "LAST RUN"), rows)


@command
def list_tasks(args: argparse.Namespace, client: Client) -> int:
    tasks = client.call("GET", "/task", client.root()) or []
    print(f"{len(tasks)} result(s)")
    _table(tasks)
    return 0


@command
def add(args: argparse.Namespace, client: Client) -> int:
    body = {
        "name": args.name,
        "type": args.type.lower(),
        "value": args.value,
        "interval": args.interval,
        "meta": args.meta,
        "last": "0001-01-01T00:00:00Z",
    }
    task = client.call("POST", "/task", client.root(), body) or {}
    success(f"Task {args.name} created successfully")
    print(f"Task ID: {task.get('id', '')}")
    return 0


@command
def update(args: argparse.Namespace, client: Client) -> int:
    task = client.call("GET", f"/task/{args.id}", client.root()) or {}
    for key in ("name", "type", "value", "interval", "meta"):
        value = getattr(args, key)
        if value is not None:
            task[key] = value
    task = client.call("POST", f"/task/{args.id}", client.root(), task) or {}
    success(f"Task {task.get('name', args.id)} updated successfully")
    return 0


@command
def info(args: argparse.Namespace, client: Client) -> int:
    task = client.call("GET", f"/task/{args.id}", client.root()) or {}
    _table([task])
    if task.get("meta"):
        print("\nMETA")
        print(task["meta"])
    return 0


@command
def delete(args: argparse.Namespace, client: Client) -> int:
    client.call("DELETE", f"/task/{args.id}", client.root())
    success(f"Task {args.id} has been deleted")
    return 0
