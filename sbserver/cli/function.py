"""``backend function add | update | delete | info | list | run``."""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from sbserver.cli import output
from sbserver.cli.client import Client, CLIError, Unreachable, command, success


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("function", help="manage server-side functions")
    fsub = p.add_subparsers(dest="fn_command", metavar="COMMAND", required=True)
    for name in ("add", "update"):
        c = fsub.add_parser(name, help=f"{name} a function")
        c.add_argument("--name", required=True)
        c.add_argument("--trigger", required=True, help="web, a channel, db-<collection> or a message type")
        c.add_argument("--source", required=True, help="the JavaScript file")
        c.add_argument("--secrets", default=None, help='URL-encoded values, e.g. "API_KEY=x&B=y"')
        c.set_defaults(run=add if name == "add" else update)
    c = fsub.add_parser("delete", help="delete a function")
    c.add_argument("name")
    c.set_defaults(run=delete)
    c = fsub.add_parser("info", help="a function and its run history")
    c.add_argument("name")
    c.set_defaults(run=info)
    c = fsub.add_parser("list", help="list functions, optionally of one trigger")
    c.add_argument("trigger", nargs="?", default="")
    c.set_defaults(run=list_functions)
    c = fsub.add_parser("run", help="execute a function")
    c.add_argument("name")
    c.add_argument("--data", default="")
    c.add_argument("--data-file", default="")
    c.add_argument("--use-root-token", action="store_true")
    c.add_argument(
        "--output",
        nargs="?",
        const="true",
        default="true",
        choices=["true", "false"],
        help="show the run's output (default true; --output=false to skip)",
    )
    c.set_defaults(run=run_function)


def _where(name: str, trigger: str) -> str:
    if trigger == "web":
        return f"Function URL: [your_domain]/fn/exec/{name}"
    return f"Function will trigger on topic: {trigger}"


@command
def add(args: argparse.Namespace, client: Client) -> int:
    body = {"name": args.name, "trigger": args.trigger, "code": Path(args.source).read_text()}
    if args.secrets is not None:
        body["secrets"] = args.secrets
    client.call("POST", "/fn/add", client.root(), body)
    success(f"Function {args.name} created successfully")
    print(_where(args.name, args.trigger))
    return 0


@command
def update(args: argparse.Namespace, client: Client) -> int:
    current = client.call("GET", f"/fn/info/{args.name}", client.root()) or {}
    body = {
        "id": current.get("id", ""),
        "name": args.name,
        "trigger": args.trigger,
        "code": Path(args.source).read_text(),
    }
    if args.secrets is not None:
        body["secrets"] = args.secrets
    client.call("POST", "/fn/update", client.root(), body)
    success(f"Function {args.name} updated successfully")
    print(_where(args.name, args.trigger))
    return 0


@command
def delete(args: argparse.Namespace, client: Client) -> int:
    # the server (as upstream's) answers 200 for a name it does not have: ask first
    try:
        client.call("GET", f"/fn/info/{args.name}", client.root())
    except Unreachable:
        raise
    except CLIError as exc:
        raise CLIError(f"no function named {args.name}: nothing deleted") from exc
    client.call("GET", f"/fn/del/{args.name}", client.root())
    success(f"the function {args.name} has been deleted")
    return 0


def _when(value: str) -> str:
    try:
        d = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return f"{d.year:04d}/{d.month:02d}/{d.day:02d} {d.hour:02d}:{d.minute:02d}"


def _table(fns: list[dict[str, Any]]) -> None:
    rows = [(f["name"], str(f["version"]), f["trigger"], _when(f.get("lastRun", ""))) for f in fns]
    output.table(("NAME", "VERSION", "TRIGGER", "LAST RUN"), rows)


@command
def list_functions(args: argparse.Namespace, client: Client) -> int:
    fns = client.call("GET", "/fn", client.root()) or []
    if args.trigger:
        fns = [f for f in fns if f.get("trigger", "").lower() == args.trigger.lower()]
    print(f"{len(fns)} result(s)")
    _table(fns)
    return 0


def _duration(a: str, b: str) -> str:
    try:
        start = datetime.fromisoformat(a.replace("Z", "+00:00"))
        end = datetime.fromisoformat(b.replace("Z", "+00:00"))
        return f"{(end - start).total_seconds() * 1000:.3f}ms"
    except ValueError:
        return "?"


@command
def info(args: argparse.Namespace, client: Client) -> int:
    fn = client.call("GET", f"/fn/info/{args.name}", client.root()) or {}
    _table([fn])
    print("\n==== RUN HISTORY ====")
    for run in list(reversed(fn.get("history") or []))[:100]:
        print(
            f"version:{run['version']} | start:{_when(run['started'])} | "
            f"execution time:{_duration(run['started'], run['completed'])}"
        )
        for line in run.get("output") or []:
            print(f"\t{line}")
        print("------------------")
    return 0


@command
def run_function(args: argparse.Namespace, client: Client) -> int:
    try:
        raw = Path(args.data_file).read_bytes() if args.data_file else (args.data or "null").encode()
    except OSError as exc:
        raise CLIError(f"cannot read --data-file {args.data_file}: {exc.strerror or exc}") from exc
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        flag = "--data-file" if args.data_file else "--data"
        raise CLIError(f"{flag} is not valid JSON: {exc}") from exc
    started = datetime.utcnow().isoformat()
    if args.use_root_token:
        client.call("POST", f"/fn/sudoexec/{args.name}", client.root(), raw=raw)
    else:
        client.call("POST", f"/fn/exec/{args.name}", client.session(), raw=raw)
    success(f"Function {args.name} executed successfully")
    if args.output != "true" or not client.cfg.rootToken:
        return 0
    for _ in range(10):
        fn = client.call("GET", f"/fn/info/{args.name}", client.root()) or {}
        history = fn.get("history") or []
        if history and history[-1]["started"].rstrip("Z") >= started:
            print("==== RUN OUTPUT ====")
            for line in history[-1].get("output") or []:
                print(line)
            return 0
        time.sleep(0.2)
    return 0
