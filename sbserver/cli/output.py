"""What the CLI prints: banners, tables and documents.

On a terminal the output goes through ``rich`` (coloured banners, boxed tables; ``NO_COLOR`` keeps
the boxes and drops the colours). Anywhere else (a pipe, a file, a test) it is plain text in the
StaticBackend CLI's format: ``SUCCESS ▶ msg`` banners, tables padded with two spaces, documents as
``{ key: value, ... }``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import orjson

if TYPE_CHECKING:
    from rich.console import Console

BANNERS = {"SUCCESS": "bold green", "WARNING": "bold yellow", "ERROR": "bold red"}


def _console(stream: TextIO) -> Console | None:
    """A rich console when ``stream`` is a terminal, else None (plain text)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return None
    if not tty:
        return None
    from rich.console import Console

    return Console(file=stream, highlight=False, soft_wrap=True)


def is_terminal() -> bool:
    return _console(sys.stdout) is not None


def banner(kind: str, msg: str, stream: TextIO | None = None) -> None:
    out = stream or (sys.stderr if kind != "SUCCESS" else sys.stdout)
    console = _console(out)
    if console is None:
        print(f"{kind} ▶ {msg}", file=out)
        return
    from rich.markup import escape

    console.print(f"[{BANNERS[kind]}]{kind} ▶[/] {escape(msg)}")


def count(n: object, what: str = "result(s)") -> None:
    """``<n> result(s)`` (the number in bold on a terminal), then a blank line."""
    console = _console(sys.stdout)
    if console is None:
        print(f"{n} {what}\n")
    else:
        console.print(f"[bold]{n}[/] {what}\n")


def heading(text: str) -> None:
    console = _console(sys.stdout)
    if console is None:
        print(text)
    else:
        from rich.markup import escape

        console.print(f"[bold]{escape(text)}[/]")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded with two spaces; a rich table on a terminal."""
    console = _console(sys.stdout)
    if console is None:
        all_rows = [list(headers), *[list(r) for r in rows]]
        widths = [max(len(r[i]) for r in all_rows) for i in range(len(headers))]
        for r in all_rows:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        return
    from rich import box
    from rich.table import Table

    t = Table(box=box.SIMPLE_HEAD, header_style="bold")
    for h in headers:
        t.add_column(h, overflow="fold")
    for row in rows:
        t.add_row(*row)
    console.print(t)


def value(v: Any) -> str:
    """A field as text: strings as they are, anything else as compact JSON (``true``, ``3``, ``{"a":1}``)."""
    if isinstance(v, str):
        return v
    try:
        return orjson.dumps(v).decode()
    except TypeError:
        return str(v)


def field_names(doc: Mapping[str, Any], fields: Sequence[str]) -> list[str]:
    """The ``--fields`` the document has, in that order; without ``--fields`` all keys, sorted."""
    if fields:
        return [f for f in fields if f in doc]
    return sorted(doc)


def document(doc: Mapping[str, Any], pretty: bool = False, fields: Sequence[str] = (), trailing: str = "") -> str:
    """``{ k: v, ... }`` on one line, or with ``pretty`` one ``\\tk: v`` line per field."""
    keys = field_names(doc, fields)
    if not pretty:
        return "{ " + ", ".join(f"{k}: {value(doc[k])}" for k in keys) + " }"
    return "\n".join(["{", *(f"\t{k}: {value(doc[k])}{trailing}" for k in keys), "}"])


def documents(docs: Sequence[Mapping[str, Any]], pretty: bool = False, fields: Sequence[str] = ()) -> None:
    for i, doc in enumerate(docs):
        if pretty and i:
            print()
        print(document(doc, pretty, fields))
