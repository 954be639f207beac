"""File providers: where uploaded bytes live. ``local`` (files under the data directory, served by
this server) is the embedded default; ``s3`` keeps them in a bucket of AWS S3 or any
S3-compatible server. Both implement ``base.FileProvider``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbserver.backends.files.base import FileProvider, FileStat, InvalidKey

if TYPE_CHECKING:
    from sbserver.settings import Settings


def create_file_provider(settings: Settings) -> FileProvider:
    """The provider the settings ask for (``settings.storage_provider``: ``local`` or ``s3``)."""
    if settings.storage_provider == "s3":
        from sbserver.backends.files.s3 import S3Files

        return S3Files(
            settings.s3_bucket,
            endpoint=settings.s3_endpoint,
            region=settings.s3_region,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            cdn_url=settings.s3_cdn_url,
            acl=settings.s3_acl or None,
            create_bucket=settings.s3_create_bucket,
        )
    if settings.storage_provider != "local":
        raise SystemExit(f"unsupported storage provider {settings.storage_provider!r}: use local or s3")
    from sbserver.backends.files.local import LocalFiles

    return LocalFiles(settings.files_dir)


__all__ = ["FileProvider", "FileStat", "InvalidKey", "create_file_provider"]
