"""The S3 provider: files as objects of one bucket on AWS S3 or any S3-compatible server (MinIO,
Ceph, R2, moto), with boto3. Keys are the server's keys, unchanged.

File URLs point at the objects themselves (``S3_CDN_URL/<key>``; without it the endpoint's
path-style URL, or the bucket's AWS URL): this server does not proxy S3 files, so ``serves_files``
is False and ``/localfs/`` answers 404 for them. Objects are written with ``acl`` (upstream's
``public-read`` by default; ``None`` sends no ACL, for buckets that refuse ACLs and are made
public by a bucket policy or a CDN).

The bucket must exist, unless ``create_bucket`` is set: ``open`` checks it at start (and creates
it then when allowed), so a wrong name or endpoint stops the start instead of the first upload.

boto3 blocks, so every call runs on a worker thread. ``put`` keeps at most ``PART_SIZE`` bytes
in hand plus ``PARALLEL_PARTS`` parts being sent: a file that fits in one part is one PutObject,
a larger one a multipart upload that is aborted on any error (the client going away included), so
no object and no unfinished upload is left. Either call makes the object appear whole or not at
all. Failures of the S3 service are ``StoreError`` (internal: a client sees a request id).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from sbserver.backends.aws import session
from sbserver.backends.files.base import FileProvider, FileStat, key_parts
from sbserver.errors import StoreError

PART_SIZE = 8 * 1024 * 1024  # S3 wants parts of at least 5 MiB (all but the last)
PARALLEL_PARTS = 2  # parts of one upload on their way while the next one is read
READ_CHUNK = 256 * 1024
_MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})

T = TypeVar("T")


def _missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code", "")) in _MISSING


class S3Files(FileProvider):
    kind = "s3"
    serves_files = False

    def __init__(
        self,
        bucket: str,
        *,
        endpoint: str = "",
        region: str = "",
        access_key: str = "",
        secret_key: str = "",
        session_token: str = "",
        cdn_url: str = "",
        acl: str | None = "public-read",
        create_bucket: bool = False,
        part_size: int = PART_SIZE,
    ) -> None:
        """``endpoint``: an S3-compatible server's URL (path-style addressing); empty: AWS.
        Credentials left empty come from boto3's chain (environment, profile, instance role)."""
        self.bucket, self.endpoint, self.region = bucket, endpoint.rstrip("/"), region or "us-east-1"
        self.cdn_url, self.acl, self.create_bucket = cdn_url.rstrip("/"), acl, create_bucket
        self.part_size = max(part_size, 5 * 1024 * 1024)
        config = Config(
            region_name=self.region,
            signature_version="s3v4",
            s3={"addressing_style": "path" if self.endpoint else "auto"},
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=32,
        )
        self.client: Any = session().client(
            "s3",
            endpoint_url=self.endpoint or None,
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            aws_session_token=session_token or None,
            config=config,
        )

    def _where(self) -> str:
        return f"bucket {self.bucket!r} at {self.endpoint or 'AWS ' + self.region}"

    async def _call(self, what: str, fn: Callable[..., T], /, **kw: Any) -> T:
        """``fn(**kw)`` on a worker thread; S3 failures become ``StoreError`` (missing keys are
        the caller's business: it gets the ``ClientError``)."""
        try:
            return await asyncio.to_thread(fn, **kw)
        except ClientError as exc:
            if _missing(exc):
                raise
            raise StoreError(f"S3 {what} failed on {self._where()}: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"S3 {what} failed on {self._where()}: {exc}") from exc

    async def open(self) -> None:
        """Check that the bucket answers; create it when missing and ``create_bucket`` is set."""
        try:
            await self._call("bucket check", self.client.head_bucket, Bucket=self.bucket)
            return
        except ClientError as exc:
            if not self.create_bucket:
                raise StoreError(f"S3 {self._where()} does not exist: create it, or set SB_S3_CREATE_BUCKET=1") from exc
        where: dict[str, Any] = {}
        if self.region != "us-east-1":
            where["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        await self._call("bucket creation", self.client.create_bucket, Bucket=self.bucket, **where)

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)

    def _acl(self) -> dict[str, str]:
        return {"ACL": self.acl} if self.acl else {}

    async def put(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int:
        key_parts(key)
        held: list[bytes] = []
        size = held_bytes = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        numbered = 0
        sending: set[asyncio.Task[None]] = set()

        async def send_part(number: int, body: bytes) -> None:
            answer = await self._call(
                "part upload",
                self.client.upload_part,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
            )
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})

        async def flush() -> None:
            nonlocal upload_id, held, held_bytes, numbered
            if upload_id is None:
                started = await self._call(
                    "multipart upload",
                    self.client.create_multipart_upload,
                    Bucket=self.bucket,
                    Key=key,
                    ContentType=content_type,
                    **self._acl(),
                )
                upload_id = started["UploadId"]
            body, held, held_bytes = b"".join(held), [], 0
            while len(sending) >= PARALLEL_PARTS:
                done, _ = await asyncio.wait(sending, return_when=asyncio.FIRST_COMPLETED)
                sending.difference_update(done)
                for task in done:
                    task.result()  # a failed part stops the upload
            numbered += 1
            sending.add(asyncio.create_task(send_part(numbered, body)))

        try:
            async for chunk in chunks:
                held.append(chunk)
                held_bytes += len(chunk)
                size += len(chunk)
                if held_bytes >= self.part_size:
                    await flush()
            if upload_id is None:
                await self._call(
                    "put",
                    self.client.put_object,
                    Bucket=self.bucket,
                    Key=key,
                    Body=b"".join(held),
                    ContentType=content_type,
                    **self._acl(),
                )
                return size
            if held_bytes:
                await flush()
            if sending:
                await asyncio.gather(*sending)
            parts.sort(key=lambda p: int(p["PartNumber"]))
            await self._call(
                "multipart completion",
                self.client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            return size
        except BaseException:
            if upload_id is not None:
                await asyncio.shield(self._abort(key, upload_id, sending))
            raise

    async def _abort(self, key: str, upload_id: str, sending: set[asyncio.Task[None]]) -> None:
        """Abort a multipart upload once the parts on their way have landed (a part that lands
        after the abort would be kept, and billed, by S3)."""
        await asyncio.gather(*sending, return_exceptions=True)
        with contextlib.suppress(ClientError, BotoCoreError):
            await asyncio.to_thread(self.client.abort_multipart_upload, Bucket=self.bucket, Key=key, UploadId=upload_id)

    async def stat(self, key: str) -> FileStat | None:
        key_parts(key)
        try:
            head = await self._call("stat", self.client.head_object, Bucket=self.bucket, Key=key)
        except ClientError:
            return None
        return FileStat(int(head["ContentLength"]), str(head["ETag"]))

    async def get(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        key_parts(key)
        if end is not None and end <= start:
            return
        wanted: dict[str, str] = {}
        if start > 0 or end is not None:
            wanted["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            answer = await self._call("get", self.client.get_object, Bucket=self.bucket, Key=key, **wanted)
        except ClientError as exc:
            raise FileNotFoundError(key) from exc
        except StoreError as exc:  # a start past the end: nothing to read
            if isinstance(exc.__cause__, ClientError) and exc.__cause__.response["Error"]["Code"] == "InvalidRange":
                return
            raise
        body = answer["Body"]
        try:
            while True:
                try:
                    data = await asyncio.to_thread(body.read, READ_CHUNK)
                except (BotoCoreError, OSError) as exc:
                    raise StoreError(f"S3 read of {key!r} failed on {self._where()}: {exc}") from exc
                if not data:
                    break
                yield data
        finally:
            await asyncio.to_thread(body.close)

    async def delete(self, key: str) -> bool:
        key_parts(key)
        if await self.stat(key) is None:
            return False
        await self._call("delete", self.client.delete_object, Bucket=self.bucket, Key=key)
        return True

    def url(self, key: str, public_base: str) -> str:
        if self.cdn_url:
            return f"{self.cdn_url}/{key}"
        if self.endpoint:
            return f"{self.endpoint}/{self.bucket}/{key}"
        return f"https://{self.bucket}.s3.{self.region}.amazonaws.com/{key}"
