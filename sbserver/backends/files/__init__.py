"""File providers: where uploaded bytes live. ``local`` (files under the data directory, served by
this server) is the embedded default; the contract (``base.FileProvider``) is what an S3 provider
implements next."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbserver.backends.files.base import FileProvider, FileStat, InvalidKey

if TYPE_CHECKING:
    from sbserver.settings import Settings


def create_file_provider(settings: Settings) -> FileProvider:
    """The provider the settings ask for (``settings.storage_provider``; only ``local`` for now)."""
    if settings.storage_provider != "local":
        raise ValueError(f"unsupported storage provider {settings.storage_provider!r}: use local")
    from sbserver.backends.files.local import LocalFiles

    return LocalFiles(settings.files_dir)


__all__ = ["FileProvider", "FileStat", "InvalidKey", "create_file_provider"]
