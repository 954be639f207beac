"""``backend llm js|node|go``: write a Markdown reference of a client library for AI assistants."""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path
from typing import Any

from sbserver.cli.client import error, success

FILES = {"js": "sb-js.md", "node": "sb-node.md", "go": "sb-go.md"}


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "llm", help="write sb-js.md / sb-node.md / sb-go.md: client docs for AI coding assistants"
    )
    p.add_argument("library", metavar="js|node|go")
    p.set_defaults(run=run)


def reference(library: str) -> str:
    """The client's own page, then the HTTP API every client speaks."""
    docs = resources.files("sbserver.cli") / "llmdocs"
    return (docs / f"{library}.md").read_text() + "\n" + (docs / "api.md").read_text()


def run(args: argparse.Namespace) -> int:
    dest = FILES.get(args.library)
    if dest is None:
        error(f'unknown library "{args.library}": use js, node or go')
        return 1
    try:
        Path(dest).write_text(reference(args.library))
    except OSError as exc:
        error(f"could not write {dest}: {exc.strerror or exc}")
        return 1
    success(f"written {dest}")
    return 0
