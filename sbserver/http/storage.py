"""File routes: /storage/upload (user), /storage/files and /storage/usage (user: the caller's
account; root: every file), /sudostorage/delete (root), and /localfs/<key>, where the local
provider's files are served (no credentials: the URL, with its random id, is the file's address).

Uploads are parsed as they arrive: the part named ``file`` streams to the provider chunk by chunk
(never whole in memory, never spooled), text fields (``name``) are collected on the way. The
general body limit (``SB_MAX_BODY_BYTES``) does not apply to uploads; ``SB_UPLOAD_MAX_BYTES`` does,
with 400 and the limit in the reason.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from sbserver.errors import BadRequest, SBError
from sbserver.http.request import root_of, services, user_or_root_of
from sbserver.http.responses import boolean, ok
from sbserver.services.documents import Page
from sbserver.services.files import Upload, content_type, is_active_content

OWN_LIMIT = frozenset({"/storage/upload"})  # paths the general body limit leaves alone
ENVELOPE = 64 * 1024  # bytes a multipart body may carry besides the file: boundaries, headers, fields
MAX_FIELD = 4096  # bytes of one text field
MAX_PARTS = 32
_NOT_MULTIPART = 'invalid upload: expected a multipart/form-data body with the file in a part named "file"'

Event = tuple[str, Any]


class _Multipart:
    """The events of a multipart body as it streams in: ``("headers", {name: value})``,
    ``("data", bytes)`` and ``("end", None)`` per part. Refuses (400) a body over ``max_total``
    bytes, a malformed one and one that stops before its closing boundary."""

    def __init__(self, stream: AsyncIterator[bytes], boundary: bytes, max_total: int, too_large: Callable[[], SBError]):
        self.stream = stream
        self.max_total = max_total
        self.too_large = too_large
        self.queue: deque[Event] = deque()
        self.headers: dict[str, str] = {}
        self.field = b""
        self.value = b""
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": lambda: self.queue.append(("headers", self.headers)),
                "on_part_data": lambda data, start, end: self.queue.append(("data", bytes(data[start:end]))),
                "on_part_end": lambda: self.queue.append(("end", None)),
            },
        )

    def _begin(self) -> None:
        self.headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def _header_end(self) -> None:
        self.headers[self.field.decode("latin-1").lower()] = self.value.decode("utf-8", "replace")
        self.field = self.value = b""

    async def events(self) -> AsyncIterator[Event]:
        seen = 0
        async for chunk in self.stream:
            seen += len(chunk)
            if seen > self.max_total:
                raise self.too_large()
            try:
                self.parser.write(chunk)
            except MultipartParseError as exc:
                raise BadRequest(f"invalid multipart body: {exc}") from exc
            while self.queue:
                yield self.queue.popleft()
        if seen == 0:
            raise BadRequest(f"{_NOT_MULTIPART} (the body is empty)")
        if self.parser.state != MultipartState.END:
            raise BadRequest("invalid multipart body: it ends before its closing boundary")


def _disposition(headers: dict[str, str]) -> tuple[str, str | None]:
    """(field name, file name or None) of a part."""
    _, params = parse_options_header(headers.get("content-disposition", ""))
    name = params.get(b"name", b"").decode("utf-8", "replace")
    filename = params.get(b"filename")
    return name, None if filename is None else filename.decode("utf-8", "replace")


async def _read_upload(events: AsyncIterator[Event]) -> Upload:
    """Collect the text fields up to the part named ``file``, then hand its bytes over as they
    come; the fields after it are collected once those are read."""
    fields: dict[str, str] = {}
    parts = 0
    current: str | None = None  # the text field being read; "" skips a part
    buffer = b""

    def take(kind: str, value: Any) -> None:
        nonlocal current, buffer, parts
        if kind == "headers":
            parts += 1
            if parts > MAX_PARTS:
                raise BadRequest(f"invalid upload: more than {MAX_PARTS} parts")
            name, filename = _disposition(value)
            current, buffer = ("" if filename is not None else name), b""
        elif kind == "data" and current:
            buffer += value
            if len(buffer) > MAX_FIELD:
                raise BadRequest(f"invalid upload: the field {current[:40]!r} is over {MAX_FIELD} bytes")
        elif kind == "end":
            if current:
                fields.setdefault(current, buffer.decode("utf-8", "replace"))
            current = None

    async for kind, value in events:
        if kind == "headers":
            name, filename = _disposition(value)
            if name == "file" and filename is not None:
                break
        take(kind, value)
    else:
        raise BadRequest('invalid upload: no part named "file" (send the file as multipart/form-data in "file")')

    async def chunks() -> AsyncIterator[bytes]:
        async for kind, value in events:
            if kind == "end":
                break
            if kind == "data" and value:
                yield value
        async for kind, value in events:  # the rest of the form; later file parts are ignored
            take(kind, value)

    return Upload(filename or "", chunks(), fields)


async def read_upload(request: Request, max_bytes: int, too_large: Callable[[], SBError]) -> Upload:
    """The multipart upload a request carries (the file in the part ``file``), as it streams in:
    refused with 400 when the body is not multipart, or with ``too_large()`` past ``max_bytes``
    (plus room for the form's other parts)."""
    media, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary", b"")
    if media != b"multipart/form-data" or not boundary:
        raise BadRequest(_NOT_MULTIPART)
    max_total = max_bytes + ENVELOPE
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_total:
        raise too_large()
    reader = _Multipart(request.stream(), boundary, max_total, too_large)
    return await _read_upload(reader.events())


async def upload(request: Request) -> Response:
    base, caller = await user_or_root_of(request)
    files = services(request).files
    received = await read_upload(request, files.max_bytes, files.too_large)
    record = await files.upload(base, caller, received, str(request.base_url).rstrip("/"))
    return ok({"id": record.id, "url": record.url})


async def list_files(request: Request) -> Response:
    base, caller = await user_or_root_of(request)
    q = request.query_params
    page = Page.parse(q.get("page"), q.get("size"), q.get("desc"), q.get("sort"))
    return ok(await services(request).files.files(base, caller, page))


async def usage(request: Request) -> Response:
    base, caller = await user_or_root_of(request)
    return ok(await services(request).files.usage(base, caller))


async def delete(request: Request) -> Response:
    base, _ = await root_of(request)
    file_id = request.query_params.get("id", "").strip()
    if not file_id:
        raise BadRequest("missing file id: use /sudostorage/delete?id=<file id>")
    await services(request).files.delete(base, file_id)
    return boolean(True)


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """[start, end) of a single-range ``Range`` header; None to ignore it (malformed, several
    ranges: RFC 9110 lets a server send the whole file); ``(size, size)`` when unsatisfiable."""
    m = _RANGE.fullmatch(header.strip())
    if m is None or not (m.group(1) or m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # the last N bytes
        n = int(last)
        return (max(0, size - n), size) if n > 0 and size > 0 else (size, size)
    start = int(first)
    if start >= size:
        return (size, size)
    end = min(size, int(last) + 1) if last else size
    return None if end <= start else (start, end)


def _etag_matches(header: str, etag: str) -> bool:
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag in tags


def _disposition_header(name: str, active: bool) -> str:
    fallback = re.sub(r"[^A-Za-z0-9._ ()-]", "_", name)[:200] or "file"
    return f"{'attachment' if active else 'inline'}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def serve(request: Request) -> Response:
    key = request.path_params["key"]
    files = services(request).files
    record, stat = await files.served(key)
    ctype = content_type(key)
    headers = {
        "ETag": stat.etag,
        "Cache-Control": "no-cache",  # revalidate (304 by ETag): a deleted file stops being served at once
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        "Content-Disposition": _disposition_header(record.name, is_active_content(ctype)),
    }
    if _etag_matches(request.headers.get("if-none-match", "") or "\0", stat.etag):
        return Response(status_code=304, headers=headers)
    start, end, status = 0, stat.size, 200
    wanted = request.headers.get("range", "")
    if_range = request.headers.get("if-range", "")
    if wanted and (not if_range or if_range == stat.etag):
        span = _byte_range(wanted, stat.size)
        if span is not None:
            if span[0] >= stat.size:
                return Response(
                    f"range not satisfiable: the file has {stat.size} bytes\n",
                    status_code=416,
                    media_type="text/plain",
                    headers={"Content-Range": f"bytes */{stat.size}", "X-Content-Type-Options": "nosniff"},
                )
            start, end, status = span[0], span[1], 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{stat.size}"
    headers["Content-Length"] = str(end - start)
    body = files.read(key, start, end) if request.method != "HEAD" else _nothing()
    return StreamingResponse(body, status_code=status, headers=headers, media_type=ctype)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""


routes = [
    Route("/storage/upload", upload, methods=["POST"]),
    Route("/storage/files", list_files, methods=["GET"]),
    Route("/storage/usage", usage, methods=["GET"]),
    Route("/sudostorage/delete", delete, methods=["GET", "DELETE"]),
    Route("/localfs/{key:path}", serve, methods=["GET", "HEAD"]),
]
