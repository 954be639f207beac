"""Uploaded files: store the bytes with the file provider and a record per file in the base.

A file belongs to the account of the user who uploaded it. A user lists and measures their
account's files; the app's root lists them all and is the only one who deletes (spec 02 §6.2).
Keys are built here, never from client text: ``<base>/<accountId>/<id><ext>``, so a name cannot
steer where bytes go. An upload is all or nothing: a refused or broken upload leaves no bytes and
no record, and a record is written only once its bytes are whole.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sbserver.backends.files import FileProvider, FileStat, InvalidKey
from sbserver.backends.files.base import key_parts
from sbserver.backends.storage import Store
from sbserver.backends.storage.files.base import SORTS, FileRecord
from sbserver.errors import BadRequest, NotFound, StoreError
from sbserver.ids import new_id, now_iso
from sbserver.services.documents import Page
from sbserver.services.tenancy import TenancyService
from sbserver.settings import Settings
from sbserver.types import Base, Identity

log = logging.getLogger("sbserver.files")

MAX_NAME = 255
_EXT = re.compile(r"\.[A-Za-z0-9]{1,16}")
# Types a browser would run as a page (scripts, styles, markup): always sent as a download.
_ACTIVE = re.compile(r"text/html|application/xhtml|image/svg|text/xml|application/xml|javascript|ecmascript|text/css")


@dataclass
class Upload:
    """One uploaded file as the HTTP layer hands it over: the name the client gave the file, its
    bytes, and the text fields of the form (complete once ``chunks`` is exhausted, since they may
    follow the file)."""

    filename: str
    chunks: AsyncIterator[bytes]
    fields: dict[str, str] = field(default_factory=dict)


def _base_name(filename: str) -> str:
    """The last segment of a client's file name (some browsers send a whole path)."""
    return re.split(r"[/\\]", filename)[-1].strip()


def extension(filename: str) -> str:
    """The extension a key keeps: ``.`` and 1-16 letters or digits, else none."""
    ext = os.path.splitext(_base_name(filename))[1]
    return ext if _EXT.fullmatch(ext) else ""


def check_name(name: str) -> str:
    """A display name: 1-255 characters, no path separators, no control characters."""
    if len(name) > MAX_NAME:
        raise BadRequest(f"invalid name: at most {MAX_NAME} characters")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise BadRequest('invalid name: it may not contain "/" or "\\" nor be "." or ".."')
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise BadRequest("invalid name: it may not contain control characters")
    return name


def content_type(key: str) -> str:
    guessed = mimetypes.guess_type("f" + os.path.splitext(key)[1], strict=False)[0]
    return guessed or "application/octet-stream"


def is_active_content(ctype: str) -> bool:
    """Whether a browser would run this type as a page (it must then be downloaded, not shown)."""
    return bool(_ACTIVE.search(ctype))


class FileService:
    def __init__(self, store: Store, provider: FileProvider, tenancy: TenancyService, settings: Settings) -> None:
        self.store = store
        self.provider = provider
        self.tenancy = tenancy
        self.max_bytes = settings.upload_max_bytes
        self.public_url = settings.local_storage_url

    def too_large(self) -> BadRequest:
        return BadRequest(f"file size exeeded your limit: the limit is {self.max_bytes} bytes (SB_UPLOAD_MAX_BYTES)")

    async def upload(self, base: Base, caller: Identity, upload: Upload, request_url: str) -> FileRecord:
        """Store an upload for the caller's account. ``request_url``: the server's URL as the
        request reached it, for links when ``LOCAL_STORAGE_URL`` is not set."""
        file_id = new_id()
        key = f"{base.name}/{caller.account_id}/{file_id}{extension(upload.filename)}"
        names: list[str] = []

        async def checked() -> AsyncIterator[bytes]:
            size = 0
            async for chunk in upload.chunks:
                size += len(chunk)
                if size > self.max_bytes:
                    raise self.too_large()
                yield chunk
            if size == 0:
                raise BadRequest('the file is empty: send its bytes in the multipart part named "file"')
            # the form is complete now: a bad name stops the put before anything is kept
            raw = upload.fields.get("name", "").strip()
            names.append(check_name(raw) if raw else check_name(_base_name(upload.filename)) or file_id)

        size = await self.provider.put(key, checked(), content_type(key))
        return await self._record(base, caller, file_id, key, names[0], size, request_url)

    async def save(
        self, base: Base, caller: Identity, data: bytes, ext: str, name: str, request_url: str
    ) -> FileRecord:
        """Store bytes the server made (a resized image, a rendered page) as a file of the caller's
        account: ``ext`` (``.png``) ends the key and sets the content type, ``name`` is checked as
        an upload's is (empty: the file's id), and the record holds the real size."""
        if not _EXT.fullmatch(ext):
            raise ValueError(f"invalid extension {ext!r}")
        if not data:
            raise ValueError("no bytes to store")
        file_id = new_id()
        key = f"{base.name}/{caller.account_id}/{file_id}{ext}"
        shown = check_name(name.strip()) or file_id

        async def chunks() -> AsyncIterator[bytes]:
            yield data

        size = await self.provider.put(key, chunks(), content_type(key))
        return await self._record(base, caller, file_id, key, shown, size, request_url)

    async def _record(
        self, base: Base, caller: Identity, file_id: str, key: str, name: str, size: int, request_url: str
    ) -> FileRecord:
        """Write the record of bytes just stored under ``key``; without a record, no bytes stay."""
        record = FileRecord(
            id=file_id,
            account_id=caller.account_id,
            name=name,
            key=key,
            url=self.provider.url(key, self.public_url or request_url),
            size=size,
            uploaded=now_iso(),
        )
        try:
            await self.store.add_file(base, record)
        except BaseException:
            await self.provider.delete(key)
            raise
        return record

    async def delete(self, base: Base, file_id: str) -> None:
        """Remove a file's record, then its bytes (root only; the caller checked)."""
        record = await self.store.delete_file(base, file_id)
        if record is None:
            raise NotFound(f"file not found: no file of this app has the id {file_id[:64]!r}")
        try:
            await self.provider.delete(record.key)
        except (OSError, StoreError) as exc:  # the record is gone, so the bytes are not served: log, go on
            log.warning("file %s: record deleted but its bytes were not: %s", record.key, exc)

    def _scope(self, caller: Identity) -> str | None:
        return None if caller.is_root else caller.account_id

    async def files(self, base: Base, caller: Identity, page: Page) -> dict[str, Any]:
        """One page of the caller's account's files (every file for root), by upload time or size."""
        records, count = await self.of_app(base, self._scope(caller), page)
        return page.result([r.public() for r in records], count)

    async def of_app(self, base: Base, account_id: str | None, page: Page) -> tuple[list[FileRecord], int]:
        """One page of the app's files (of one account's when ``account_id`` is set), by upload
        time or size, and how many there are in all."""
        sort = page.sort or "uploaded"
        if sort not in SORTS:
            raise BadRequest(f"invalid sort {sort[:40]!r}: use {' or '.join(SORTS)}")
        count, _ = await self.store.file_usage(base, account_id)
        offset = (page.page - 1) * page.size
        records = await self.store.files(base, account_id, sort, page.desc, page.size, offset) if offset < count else []
        return records, count

    async def record(self, base: Base, file_id: str) -> FileRecord:
        """The record of one file of this app; ``NotFound`` otherwise."""
        record = await self.store.file(base, file_id)
        if record is None:
            raise NotFound(f"file not found: no file of this app has the id {file_id[:64]!r}")
        return record

    async def usage(self, base: Base, caller: Identity) -> dict[str, Any]:
        """Bytes and number of files of the caller's account."""
        count, size = await self.store.file_usage(base, caller.account_id)
        return {"bytes": size, "gb": size / 1_000_000_000, "count": count}

    async def has_files(self, base: Base) -> bool:
        count, _ = await self.store.file_usage(base, None)
        return count > 0

    async def served(self, key: str) -> tuple[FileRecord, FileStat]:
        """The record and stored bytes a public file URL names: only a key some app's record
        holds is served (``NotFound`` otherwise, whatever is on disk); nothing when the provider's
        files are served elsewhere (S3)."""
        if not self.provider.serves_files:
            raise NotFound("not found")
        try:
            app, _, leaf = key_parts(key)
        except InvalidKey:
            raise NotFound("not found") from None
        try:
            base = await self.tenancy.base_by_name(app)
        except NotFound:
            raise NotFound("not found") from None
        record = await self.store.file(base, os.path.splitext(leaf)[0])
        stat = await self.provider.stat(key) if record is not None and record.key == key else None
        if record is None or stat is None:
            raise NotFound("not found")
        return record, stat

    def read(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        return self.provider.get(key, start, end)
