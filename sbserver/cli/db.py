"""``backend db repo | list | get | create | update | delete | query | count``: documents, with the root token."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from sbserver.cli import output
from sbserver.cli.client import Client, CLIError, command, success

OPERATORS = {"=": "==", "==": "==", "!=": "!=", "<>": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
LITERALS = {"true": True, "false": False, "null": None}

FILTER_HELP = (
    "filters as triples: field op value ... (op: = == != <> > >= < <=); values are sent as text "
    "(the server compares numeric text numerically) except true, false and null; quote a value as "
    "JSON ('\"true\"') to send it as text"
)


def _paging(c: argparse.ArgumentParser) -> None:
    c.add_argument("--page", type=int, default=1, help="page index (default 1)")
    c.add_argument("--size", type=int, default=50, help="documents per page (default 50)")
    c.add_argument("-d", "--descending", action="store_true", help="newest first")


def _format(c: argparse.ArgumentParser) -> None:
    c.add_argument("-p", "--pretty", action="store_true", help="one field per line")
    c.add_argument("--fields", action="append", default=[], help="only these comma-separated fields, in this order")


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("db", help="read and write documents (root token)")
    dsub = p.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    dsub.add_parser("repo", help="list the collections").set_defaults(run=repo)
    c = dsub.add_parser("list", help="list the documents of a collection")
    c.add_argument("repo")
    _paging(c)
    _format(c)
    c.set_defaults(run=list_documents)
    c = dsub.add_parser("get", help="one document")
    c.add_argument("repo")
    c.add_argument("id")
    _format(c)
    c.set_defaults(run=get)
    c = dsub.add_parser("create", help="create a document from a JSON object")
    c.add_argument("repo")
    c.add_argument("json", help="""the document, e.g. '{"title":"x","done":false}'""")
    c.set_defaults(run=create)
    c = dsub.add_parser("update", help="update fields of a document from a JSON object")
    c.add_argument("repo")
    c.add_argument("id")
    c.add_argument("json", help="""the fields to change, e.g. '{"done":true}'""")
    _format(c)
    c.set_defaults(run=update)
    c = dsub.add_parser("delete", help="delete a document")
    c.add_argument("repo")
    c.add_argument("id")
    c.set_defaults(run=delete)
    c = dsub.add_parser("query", help="documents matching filters", description=FILTER_HELP)
    c.add_argument("repo")
    c.add_argument("filters", nargs="+", metavar="field op value", help=FILTER_HELP)
    _paging(c)
    _format(c)
    c.set_defaults(run=query)
    c = dsub.add_parser("count", help="count documents, optionally matching filters", description=FILTER_HELP)
    c.add_argument("repo")
    c.add_argument("filters", nargs="*", metavar="field op value", help=FILTER_HELP)
    c.set_defaults(run=count)


def fields_of(args: argparse.Namespace) -> list[str]:
    """``--fields a,b --fields c`` -> ``[a, b, c]``: trimmed, empty and repeated names dropped."""
    seen: list[str] = []
    for chunk in args.fields:
        for name in chunk.split(","):
            name = name.strip()
            if name and name not in seen:
                seen.append(name)
    return seen


def filters(words: list[str]) -> list[list[Any]]:
    """``field op value ...`` -> ``[[field, op, value], ...]``; refuses an incomplete triple or an unknown op."""
    if len(words) % 3:
        raise CLIError(
            f"filters come in triples (field op value): got {len(words)} word(s), e.g. `done == true age >= 18`"
        )
    out: list[list[Any]] = []
    for i in range(0, len(words), 3):
        field, op, raw = words[i : i + 3]
        if op not in OPERATORS:
            allowed = " ".join(OPERATORS)
            raise CLIError(f'invalid filter: unknown operator "{op}" in clause {i // 3 + 1} (allowed: {allowed})')
        out.append([field, OPERATORS[op], _value(raw)])
    return out


def _value(raw: str) -> Any:
    if raw in LITERALS:
        return LITERALS[raw]
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        try:
            text = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
        return text
    return raw


def json_object(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise CLIError(f"the document is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise CLIError(f"the document must be a JSON object ({{...}}), not {type(value).__name__}: {text[:80]}")
    return value


def _page_query(args: argparse.Namespace) -> str:
    if args.page < 1 or args.size < 1:
        raise CLIError("--page and --size must be 1 or more")
    return f"?page={args.page}&size={args.size}" + ("&desc=true" if args.descending else "")


def _results(page: Any, args: argparse.Namespace) -> int:
    page = page or {}
    output.count(page.get("total", 0))
    output.documents(page.get("results") or [], args.pretty, fields_of(args))
    return 0


@command
def repo(args: argparse.Namespace, client: Client) -> int:
    names = client.call("GET", "/sudolistall", client.root()) or []
    print(f"{len(names)} repositories, repos using this format are reserved repositories\n")
    print("[")
    for name in names:
        print(f"\t{name}{' (reserved)' if name.startswith('sb_') else ''}, ")
    print("]")
    return 0


@command
def list_documents(args: argparse.Namespace, client: Client) -> int:
    return _results(client.call("GET", f"/sudo/{args.repo}{_page_query(args)}", client.root()), args)


@command
def get(args: argparse.Namespace, client: Client) -> int:
    doc = client.call("GET", f"/sudo/{args.repo}/{args.id}", client.root()) or {}
    print(output.document(doc, args.pretty, fields_of(args)))
    return 0


@command
def create(args: argparse.Namespace, client: Client) -> int:
    body = json_object(args.json)
    doc = client.call("POST", f"/sudo/{args.repo}", client.root(), body) or {}
    print(output.document(doc, pretty=True, trailing=", "))
    return 0


@command
def update(args: argparse.Namespace, client: Client) -> int:
    body = json_object(args.json)
    doc = client.call("PUT", f"/sudo/{args.repo}/{args.id}", client.root(), body) or {}
    print(output.document(doc, args.pretty, fields_of(args)))
    return 0


@command
def delete(args: argparse.Namespace, client: Client) -> int:
    deleted = client.call("DELETE", f"/sudo/{args.repo}/{args.id}", client.root())
    if deleted == 0:  # the server answers 200 with the number deleted
        raise CLIError(f"no document {args.id} in {args.repo}: nothing deleted")
    success(f"the document {args.id} has been deleted")
    return 0


@command
def query(args: argparse.Namespace, client: Client) -> int:
    body = filters(args.filters)
    page = client.call("POST", f"/sudoquery/{args.repo}{_page_query(args)}", client.root(), body)
    return _results(page, args)


@command
def count(args: argparse.Namespace, client: Client) -> int:
    body = orjson.dumps(filters(args.filters) or None)  # no filter: the body is `null`
    answer = client.call("POST", f"/db/count/{args.repo}", client.root(), raw=body) or {}
    print(answer.get("count", 0))
    return 0
