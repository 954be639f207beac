"""Resized images (``/extra/resizeimg``, spec 02 §8.1): an uploaded PNG, JPEG or WebP scaled to a
width with its aspect ratio kept, stored as a file of the caller's account.

Contract, and where it departs from upstream (each on purpose):

- The file name's extension picks the format, case-insensitively: ``.png``, ``.jpg``, ``.jpeg``
  and ``.webp``. Upstream refuses ``.jpeg`` (an accident of its switch) and has no WebP; we take
  both. Any other extension answers 500 ``invalid image format: <ext>`` exactly as upstream
  (spec 09 item 110), the only 500 here. The bytes must then be an image of that format (a PNG
  named ``.jpg`` is refused with 400).
- The result keeps the source's format: PNG stays PNG (lossless, alpha kept), JPEG stays JPEG
  (quality 90), WebP stays WebP. Upstream always writes JPEG at quality 100 under the original
  extension, so its ``.png`` keys can hold JPEG bytes; here a key's extension, the content type it
  is served with and the bytes always agree. The EXIF orientation is applied, then metadata is
  dropped (a photo's location does not travel into the copy); the colour profile is kept.
- ``width``: a positive number of pixels (a decimal is rounded down), at most
  ``SB_IMAGE_MAX_WIDTH``; anything else is a 400 (upstream: a 500 with the parser's text). The
  height follows the source's ratio (at least 1 pixel), Lanczos resampling.
- Limits, each a 400 with the reason before anything is stored: the upload's size
  (``SB_IMAGE_MAX_BYTES``, default 3,000,000 bytes: upstream refuses from 3 decimal MB, "more than
  2 MB" rounded down), and pixels (``SB_IMAGE_MAX_PIXELS``) of the source as its header declares
  them, checked before any pixel is decoded (a small file declaring 50000x50000 is refused
  unread), and of the result.
- Decoding, resizing and encoding run on a worker thread, a few images at a time, never on the
  event loop.
"""

from __future__ import annotations

import asyncio
import io
import math
import re
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from sbserver.backends.storage.files.base import FileRecord
from sbserver.errors import BadRequest, SBError
from sbserver.services.files import FileService, Upload, check_name, extension
from sbserver.settings import Settings
from sbserver.types import Base, Identity

AT_ONCE = 2  # images decoded at once per process: each may take its pixels' memory a few times over
JPEG_QUALITY = 90
WEBP_QUALITY = 90


@dataclass(frozen=True)
class Format:
    pillow: str  # Pillow's name for the decoder and encoder
    label: str  # for messages


FORMATS = {
    ".png": Format("PNG", "PNG"),
    ".jpg": Format("JPEG", "JPEG"),
    ".jpeg": Format("JPEG", "JPEG"),
    ".webp": Format("WEBP", "WebP"),
}
ACCEPTED = ", ".join(FORMATS)
_NUMBER = re.compile(r"\s*[+]?(\d+(\.\d*)?|\.\d+)\s*")


class InvalidFormat(SBError):
    """An extension the resizer does not decode: 500, as upstream answers (spec 09 item 110)."""

    status = 500


def parse_width(raw: str, max_width: int) -> int:
    """The target width of a form's ``width`` field: a positive decimal number, rounded down."""
    shown = raw.strip()[:40]
    if not shown:
        raise BadRequest('missing width: send the width in pixels in the form field "width"')
    if not _NUMBER.fullmatch(raw):
        raise BadRequest(f"invalid width {shown!r}: expected a positive number of pixels")
    width = math.floor(float(raw))
    if width < 1:
        raise BadRequest(f"invalid width {shown!r}: expected at least 1 pixel")
    if width > max_width:
        raise BadRequest(f"invalid width {shown!r}: at most {max_width} pixels (SB_IMAGE_MAX_WIDTH)")
    return width


def _too_many_pixels(what: str, max_pixels: int) -> BadRequest:
    return BadRequest(f"image too large: {what}, over the {max_pixels}-pixel limit (SB_IMAGE_MAX_PIXELS)")


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info


def _encodable(im: Image.Image, fmt: Format) -> Image.Image:
    """``im`` in a mode its format's encoder writes and the resampler handles (not palette)."""
    if fmt.pillow == "JPEG":
        return im if im.mode in ("RGB", "L", "CMYK") else im.convert("RGB")
    keep = ("RGB", "RGBA", "L", "LA") if fmt.pillow == "PNG" else ("RGB", "RGBA")
    return im if im.mode in keep else im.convert("RGBA" if _has_alpha(im) else "RGB")


def resize_image(data: bytes, fmt: Format, width: int, max_pixels: int) -> bytes:
    """``data`` (an image of ``fmt``) scaled to ``width`` pixels wide, encoded in ``fmt``.

    Blocking: run it on a thread. Raises ``BadRequest`` for bytes that are not such an image and
    for images past ``max_pixels`` (read from the header, before decoding)."""
    try:
        im = Image.open(io.BytesIO(data), formats=[fmt.pillow])
    except Image.DecompressionBombError:
        raise _too_many_pixels("its header declares far more pixels", max_pixels) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise BadRequest(f"invalid image: the file is not a readable {fmt.label} image") from None
    with im:
        w, h = im.size
        if w < 1 or h < 1:
            raise BadRequest(f"invalid image: it declares {w}x{h} pixels")
        if w * h > max_pixels:
            raise _too_many_pixels(f"{w}x{h} is {w * h} pixels", max_pixels)
        try:
            if fmt.pillow == "JPEG":  # decode at a reduced scale when shrinking a lot (much faster)
                im.draft(im.mode, (width, max(1, h * width // w)))
            upright = ImageOps.exif_transpose(im)  # loads the pixels
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise BadRequest(f"invalid image: the {fmt.label} data cannot be decoded ({exc})") from None
        w, h = upright.size
        height = max(1, round(h * width / w))
        if width * height > max_pixels:
            raise _too_many_pixels(f"the result would be {width}x{height} pixels", max_pixels)
        source = _encodable(upright, fmt)
        out = source.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
        options: dict[str, object] = {}
        if icc := im.info.get("icc_profile"):
            options["icc_profile"] = icc
        if fmt.pillow == "JPEG":
            options.update(quality=JPEG_QUALITY, optimize=True)
        elif fmt.pillow == "WEBP":
            options.update(quality=WEBP_QUALITY)
        buffer = io.BytesIO()
        out.save(buffer, format=fmt.pillow, **options)
        return buffer.getvalue()


class ImageService:
    def __init__(self, files: FileService, settings: Settings) -> None:
        self.files = files
        self.max_bytes = settings.image_max_bytes
        self.max_width = settings.image_max_width
        self.max_pixels = settings.image_max_pixels
        self._slots = asyncio.Semaphore(AT_ONCE)

    def too_large(self) -> BadRequest:
        return BadRequest(
            f"file size exeeded your limit: images may have at most {self.max_bytes} bytes (SB_IMAGE_MAX_BYTES)"
        )

    async def resize(self, base: Base, caller: Identity, upload: Upload, request_url: str) -> FileRecord:
        """Resize an uploaded image (fields ``width``, optional ``name``) and store it for the
        caller's account (module docstring). Nothing is stored unless all of it succeeds."""
        ext = extension(upload.filename).lower()
        fmt = FORMATS.get(ext)
        if fmt is None:
            if not ext:
                raise InvalidFormat(f"invalid image format: the file name has no extension (use {ACCEPTED})")
            raise InvalidFormat(f"invalid image format: {ext}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in upload.chunks:
            size += len(chunk)
            if size > self.max_bytes:
                raise self.too_large()
            chunks.append(chunk)
        if size == 0:
            raise BadRequest('the file is empty: send the image in the multipart part named "file"')
        width = parse_width(upload.fields.get("width", ""), self.max_width)
        name = check_name(upload.fields.get("name", "").strip() or re.split(r"[/\\]", upload.filename)[-1].strip())
        async with self._slots:
            data = await asyncio.to_thread(resize_image, b"".join(chunks), fmt, width, self.max_pixels)
        return await self.files.save(base, caller, data, ext, name, request_url)
