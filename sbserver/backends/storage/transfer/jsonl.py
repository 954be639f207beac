"""The JSON Lines stream of ``backend export`` / ``backend import``.

Line 1, the header: ``{"kind": "header", "format": "sbserver-export", "version": 1, "created":
..., "source": "sqlite"|"pg"|"upstream", "app": <public key or null>, "files": <bool>,
"counts": {kind: n}}``. Then one record per line (``records.py``), tenants and bases first;
with ``--with-files``, each ``file`` record is followed (in a later batch) by a ``file_data``
record ``{"kind": "file_data", "base", "key", "data": <base64>}``. Last line:
``{"kind": "end", "records": <lines between header and end>}``; a file without it is truncated.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import orjson

from sbserver.backends.storage.transfer.base import BATCH, Source
from sbserver.backends.storage.transfer.records import (
    FILE_DATA,
    FORMAT,
    VERSION,
    TransferError,
    check_record,
)


class JsonlWriter:
    """Writes the stream to ``path`` through a temporary file renamed at the end (never half a file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp = path.with_name(path.name + ".partial")
        self._f: IO[bytes] | None = None
        self.records = 0

    def open(self, header: dict[str, Any]) -> None:
        self._f = self._tmp.open("wb")
        self._line({"kind": "header", "format": FORMAT, "version": VERSION, **header})

    def _line(self, obj: dict[str, Any]) -> None:
        assert self._f is not None
        self._f.write(orjson.dumps(obj) + b"\n")

    def write(self, records: list[dict[str, Any]]) -> None:
        for rec in records:
            self._line(rec)
        self.records += len(records)

    def write_file(self, base: str, key: str, data: bytes) -> None:
        self.write([{"kind": FILE_DATA, "base": base, "key": key, "data": base64.b64encode(data).decode()}])

    def finish(self) -> None:
        assert self._f is not None
        self._line({"kind": "end", "records": self.records})
        self._f.close()
        self._f = None
        self._tmp.replace(self.path)

    def abort(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
        self._tmp.unlink(missing_ok=True)


def _file_data(rec: Any, line: int) -> dict[str, Any]:
    if not isinstance(rec, dict) or set(rec) != {"kind", "base", "key", "data"}:
        raise TransferError(f"line {line}: a file_data record has the fields kind, base, key and data")
    if not all(isinstance(rec[f], str) for f in ("base", "key", "data")):
        raise TransferError(f"line {line}: file_data fields must be strings")
    try:
        rec["bytes"] = base64.b64decode(rec["data"], validate=True)
    except ValueError:
        raise TransferError(f"line {line}: file_data is not valid base64") from None
    return rec


class JsonlSource(Source):
    """Records of an export file, checked line by line; the last batch comes only once the end
    line has confirmed the file is whole and its counts match the header."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f: IO[bytes] | None = None
        self.header: dict[str, Any] = {}

    async def open(self) -> None:
        try:
            self._f = self.path.open("rb")
        except OSError as exc:
            raise TransferError(f"cannot read {self.path}: {exc.strerror}") from exc
        first = self._f.readline()
        try:
            header = orjson.loads(first)
        except orjson.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or header.get("kind") != "header" or header.get("format") != FORMAT:
            raise TransferError(f"{self.path} is not an sbserver export (its first line is no {FORMAT} header)")
        if header.get("version") != VERSION:
            raise TransferError(
                f"{self.path} is format version {header.get('version')!r}; this sbserver reads {VERSION}"
            )
        if not isinstance(header.get("counts"), dict):
            raise TransferError(f"{self.path}: the header has no counts")
        self.header = header

    async def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    async def counts(self, app: str | None = None) -> dict[str, int]:
        return dict(self.header["counts"])

    async def records(self, app: str | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        if app is not None:
            raise TransferError("--app applies to export; an import takes the whole file")
        assert self._f is not None, "source is not open"
        seen: dict[str, int] = {}
        batch: list[dict[str, Any]] = []
        total, ended = 0, False
        for number, raw in enumerate(self._f, start=2):
            if ended:
                if raw.strip():
                    raise TransferError(f"line {number}: data after the end line")
                continue
            try:
                rec = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise TransferError(f"line {number}: not JSON ({exc})") from None
            if isinstance(rec, dict) and rec.get("kind") == "end":
                if rec.get("records") != total:
                    raise TransferError(f"line {number}: the end line counts {rec.get('records')} records, the file has {total}")  # fmt: skip
                ended = True
                continue
            if isinstance(rec, dict) and rec.get("kind") == FILE_DATA:
                rec = _file_data(rec, number)
            else:
                check_record(rec, number)
                seen[rec["kind"]] = seen.get(rec["kind"], 0) + 1
            total += 1
            if batch and (batch[0]["kind"] != rec["kind"] or len(batch) >= BATCH):
                yield batch
                batch = []
            batch.append(rec)
        if not ended:
            raise TransferError(f"{self.path} is truncated: no end line (export it again)")
        expected = {k: n for k, n in self.header["counts"].items() if n}
        if seen != expected:
            raise TransferError(f"{self.path}: records per kind {seen} differ from the header's {expected}")
        if batch:
            yield batch
