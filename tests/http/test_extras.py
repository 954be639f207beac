"""``/extra/resizeimg`` and ``/extra/sms`` (spec 02 §8.1-8.2, items 110-111) on every store kind.

Resized images are read back through their URL and decoded: dimensions, format and content type
agree. Refusals (formats, bombs, sizes, widths, bodies) store nothing. SMS go to a local HTTP
server standing in for Twilio, which records the form and the credentials it was sent.
"""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import threading
import zlib
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from PIL import Image

from tests.http.conftest import Server
from tests.http.helpers import (
    ServerFactory,
    admin_token,
    assert_error,
    assert_json,
    auth,
    dev_base,
    extra_client,
    make_server,
    register,
)
from tests.http.test_documents_safety import second_app
from tests.http.test_storage import BOUNDARY, everything_stored, local_path, multipart

__all__ = ["make_server"]

CTYPE = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


# --- images ----------------------------------------------------------------------------------


def image_bytes(size: tuple[int, int], fmt: str, mode: str = "RGB", noise: bool = False, **save: Any) -> bytes:
    if noise:
        im = Image.frombytes(mode, size, os.urandom(size[0] * size[1] * len(mode)))
    else:
        drawn = "RGB" if mode == "P" else mode
        im = Image.new(drawn, size, (200, 30, 30, 128)[: len(drawn)] if drawn != "L" else 90)
        if size[0] > 2:  # a left half of another colour, to see that the picture scaled, not cropped
            im.paste((20, 40, 220, 255)[: len(drawn)] if drawn != "L" else 200, (0, 0, size[0] // 2, size[1]))
        if mode == "P":
            im = im.convert("P", palette=Image.Palette.ADAPTIVE)
    out = io.BytesIO()
    im.save(out, format=fmt, **save)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A small PNG that declares ``width`` x ``height`` pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width + 1) * 4)  # a few rows of what would be gigabytes
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


async def resize(
    c: httpx.AsyncClient, token: str, data: bytes, filename: str, width: str | None = "100", name: str | None = None
) -> httpx.Response:
    parts: list[tuple[str, str | None, bytes]] = [("file", filename, data)]
    if width is not None:
        parts.append(("width", None, width.encode()))
    if name is not None:
        parts.append(("name", None, name.encode()))
    body, headers = multipart(*parts)
    return await c.post("/extra/resizeimg", content=body, headers={**headers, **auth(token)})


async def stored_image(server: Server, url: str) -> tuple[Image.Image, str, bytes]:
    r = await server.client.get(local_path(url))
    assert r.status_code == 200, r.text
    im = Image.open(io.BytesIO(r.content))
    im.load()
    return im, r.headers["content-type"], r.content


async def test_110_resizeimg_refuses_a_gif_and_resizes_a_one_megabyte_png(server: Server) -> None:
    c = server.client
    token = await register(c)
    before = await everything_stored(server)
    gif = image_bytes((40, 40), "GIF", "L")
    assert_error(await resize(c, token, gif, "anim.gif"), 500, "invalid image format: .gif")
    assert await everything_stored(server) == before

    png = image_bytes((600, 600), "PNG", noise=True)
    assert 1_000_000 <= len(png) < 3_000_000
    body = assert_json(await resize(c, token, png, "photo.png", "100"))
    assert set(body) == {"id", "url"}
    im, ctype, data = await stored_image(server, body["url"])
    assert (im.format, im.size, ctype) == ("PNG", (100, 100), "image/png")
    record = await server.services.store.file(await dev_base(server), body["id"])
    assert record is not None and record.size == len(data) and record.name == "photo.png"
    assert record.key.endswith(f"/{body['id']}.png")


@pytest.mark.parametrize(
    ("filename", "fmt", "mode", "source", "width", "expected", "ctype"),
    [
        ("wide.png", "PNG", "RGBA", (400, 200), "100", (100, 50), "image/png"),
        ("tall.jpg", "JPEG", "RGB", (300, 400), "150", (150, 200), "image/jpeg"),
        ("Tall.JPEG", "JPEG", "L", (300, 400), "75.9", (75, 100), "image/jpeg"),
        ("pic.webp", "WEBP", "RGBA", (640, 480), "320", (320, 240), "image/webp"),
        ("odd.png", "PNG", "P", (333, 77), "1000", (1000, 231), "image/png"),  # upscaled, ratio rounded
    ],
)
async def test_resize_keeps_the_aspect_ratio_and_the_format(
    server: Server,
    filename: str,
    fmt: str,
    mode: str,
    source: tuple[int, int],
    width: str,
    expected: tuple[int, int],
    ctype: str,
) -> None:
    c = server.client
    token = await register(c)
    data = image_bytes(source, fmt, mode)
    body = assert_json(await resize(c, token, data, filename, width, name="resized"))
    im, served_type, stored = await stored_image(server, body["url"])
    assert (im.format, im.size, served_type) == (fmt, expected, ctype)
    if mode == "RGBA":  # alpha survives in the formats that have it
        assert im.mode == "RGBA" and im.getpixel((expected[0] - 1, 0))[3] == 128
    # the picture was scaled, not cropped: the left half keeps its colour, the right half its own
    left, right = (
        im.convert("RGB").getpixel((2, expected[1] // 2)),
        im.convert("RGB").getpixel((expected[0] - 3, expected[1] // 2)),
    )
    assert left != right
    record = await server.services.store.file(await dev_base(server), body["id"])
    assert record is not None and record.name == "resized" and record.size == len(stored)
    assert record.key.endswith(filename[filename.rindex(".") :].lower())


async def test_resize_applies_the_exif_orientation_and_drops_metadata(server: Server) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° when shown
    exif[0x010F] = "Camera maker"
    data = image_bytes((300, 100), "JPEG", exif=exif.tobytes())
    body = assert_json(await resize(server.client, await register(server.client), data, "phone.jpg", "50"))
    im, _, _ = await stored_image(server, body["url"])
    assert im.size == (50, 150)
    assert dict(im.getexif()) == {}


async def test_decompression_bombs_and_oversized_results_are_refused_before_decoding(server: Server) -> None:
    c = server.client
    token = await register(c)
    before = await everything_stored(server)
    bomb = png_header_only(50_000, 50_000)
    assert len(bomb) < 2000
    assert_error(await resize(c, token, bomb, "bomb.png"), 400, startswith="image too large:")
    line = assert_error(await resize(c, token, png_header_only(8000, 8000), "big.png"), 400)
    assert line == "image too large: 8000x8000 is 64000000 pixels, over the 40000000-pixel limit (SB_IMAGE_MAX_PIXELS)"
    thin = image_bytes((10, 20_000), "PNG", "L")  # 200,000 pixels; at 4000 wide it would be 8,000,000,000
    line = assert_error(await resize(c, token, thin, "thin.png", "4000"), 400)
    assert line.startswith("image too large: the result would be 4000x8000000 pixels")
    assert await everything_stored(server) == before


async def test_size_and_width_limits_are_settings(make_server: ServerFactory) -> None:
    async with make_server(image_max_bytes=50_000, image_max_width=64, image_max_pixels=10_000) as server:
        c = server.client
        token = await register(c)
        before = await everything_stored(server)
        big = image_bytes((200, 200), "PNG", noise=True)
        line = assert_error(await resize(c, token, big, "big.png", "10"), 400)
        assert line == "file size exeeded your limit: images may have at most 50000 bytes (SB_IMAGE_MAX_BYTES)"
        small = image_bytes((50, 50), "PNG")
        assert_error(
            await resize(c, token, small, "s.png", "65"),
            400,
            "invalid width '65': at most 64 pixels (SB_IMAGE_MAX_WIDTH)",
        )
        assert_error(
            await resize(c, token, image_bytes((101, 100), "PNG"), "p.png", "10"),
            400,
            startswith="image too large: 101x100",
        )
        assert await everything_stored(server) == before
        body = assert_json(await resize(c, token, small, "s.png", "64"))
        im, _, _ = await stored_image(server, body["url"])
        assert im.size == (64, 64)


async def test_bad_resize_requests_store_nothing(server: Server) -> None:
    c = server.client
    token = await register(c)
    h = auth(token)
    png = image_bytes((40, 20), "PNG")
    before = await everything_stored(server)
    cases: list[tuple[bytes, dict[str, str], int, str]] = [
        (b"", CTYPE, 400, "the body is empty"),
        (b"x=1", {"Content-Type": "application/x-www-form-urlencoded"}, 400, "expected a multipart/form-data body"),
        (multipart(("width", None, b"10"))[0], CTYPE, 400, 'no part named "file"'),
        (multipart(("file", "e.png", b""), ("width", None, b"10"))[0], CTYPE, 400, "the file is empty"),
        (multipart(("file", "p.png", png))[0], CTYPE, 400, "missing width"),
        (multipart(("file", "p.png", png), close=False)[0], CTYPE, 400, "ends before its closing boundary"),
        (
            multipart(("file", "p.png", png), ("width", None, b"10"), ("name", None, b"../x"))[0],
            CTYPE,
            400,
            "invalid name",
        ),
        (multipart(("file", "p.txt", png), ("width", None, b"10"))[0], CTYPE, 500, "invalid image format: .txt"),
        (multipart(("file", "noext", png), ("width", None, b"10"))[0], CTYPE, 500, "invalid image format: the file"),
    ]
    for width in ("abc", "0", "-5", "0.5", "nan", "inf", "1e3", "", " "):
        cases.append((multipart(("file", "p.png", png), ("width", None, width.encode()))[0], CTYPE, 400, "width"))
    jpeg = image_bytes((40, 20), "JPEG")
    for filename, data, reason in (
        ("p.png", b"not an image at all", "not a readable PNG image"),
        ("p.png", jpeg, "not a readable PNG image"),
        ("p.jpg", png, "not a readable JPEG image"),
        ("p.webp", png, "not a readable WebP image"),
        ("p.png", png[: len(png) // 2], "invalid image"),
    ):
        cases.append((multipart(("file", filename, data), ("width", None, b"10"))[0], CTYPE, 400, reason))
    for raw, headers, status, reason in cases:
        line = assert_error(await c.post("/extra/resizeimg", content=raw, headers={**headers, **h}), status)
        assert reason in line, (raw[:100], line)
    assert await everything_stored(server) == before


async def test_oversized_images_are_refused_as_they_stream(server: Server) -> None:
    c = server.client
    token = await register(c)
    before = await everything_stored(server)
    line = assert_error(await resize(c, token, os.urandom(3_000_001), "huge.png"), 400)
    assert line.startswith("file size exeeded your limit")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while the body streams
        body, _ = multipart(("file", "huge.png", os.urandom(3_100_000)), ("width", None, b"10"))
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    r = await c.post("/extra/resizeimg", content=chunks(), headers={**CTYPE, **auth(token)})
    assert assert_error(r, 400).startswith("file size exeeded your limit")
    assert await everything_stored(server) == before


async def test_resize_needs_a_user_of_the_app_and_stores_in_the_callers_app(server: Server) -> None:
    c = server.client
    png = image_bytes((40, 20), "PNG")
    body, headers = multipart(("file", "p.png", png), ("width", None, b"20"))
    assert_error(await c.post("/extra/resizeimg", content=body, headers=headers), 401)
    async with extra_client(server) as anonymous:
        assert_error(await anonymous.post("/extra/resizeimg", content=body, headers=headers), 401)
    other = await second_app(c)
    dev_user = await register(c)
    async with extra_client(server, pk=other["pk"]) as o:
        # a user of the dev app with the other app's key: not a user there
        assert 400 <= (await resize(o, dev_user, png, "p.png")).status_code < 500
        mine = assert_json(await resize(o, other["rootToken"], png, "p.png", "20"))
        assert mine["url"].startswith(f"http://testserver/localfs/{other['pk']}/")
        assert assert_json(await o.get("/storage/files", headers=auth(other["rootToken"])))["total"] == 1
    # the dev app does not see the other app's file
    assert await server.services.store.file(await dev_base(server), mine["id"]) is None
    admin = await admin_token(server)
    mine_here = assert_json(await resize(c, admin, png, "p.png", "20"))
    listed = assert_json(await c.get("/storage/files", headers=auth(admin)))["results"]
    assert mine_here["id"] in {f["id"] for f in listed} and mine["id"] not in {f["id"] for f in listed}


# --- sms -------------------------------------------------------------------------------------


class TwilioStandIn:
    """Twilio's Messages API as far as /extra/sms uses it: records each request; answers 201 with
    a message, or, for the account SIDs ``ACfail``/``ACbig``, an error as Twilio words it."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size).decode()
                recorder.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "form": parse_qs(body, keep_blank_values=True),
                    }
                )
                if "/Accounts/ACfail/" in self.path:
                    status, answer = 401, json.dumps({"code": 20003, "message": "Authenticate", "status": 401})
                elif "/Accounts/ACbig/" in self.path:
                    status, answer = 400, "x\n" * 2000
                else:
                    status, answer = 201, json.dumps({"sid": "SM0123", "status": "queued"})
                data = answer.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def twilio() -> Iterator[TwilioStandIn]:
    stand_in = TwilioStandIn()
    try:
        yield stand_in
    finally:
        stand_in.close()


SMS = {"accountSID": "AC0123abcd", "authToken": "tok-secret", "toNumber": "+15551234567", "fromNumber": "+15557654321"}


async def test_111_sms_with_a_session_token_is_refused(make_server: ServerFactory, twilio: TwilioStandIn) -> None:
    async with make_server(twilio_api_url=twilio.url) as server:
        token = await register(server.client)
        r = await server.client.post("/extra/sms", json={**SMS, "body": "hello"}, headers=auth(token))
        assert_error(r, 400)
        # the refusal is complete: a root's message sent after it is the only one Twilio sees
        r = await server.client.post("/extra/sms", json={**SMS, "body": "root"}, headers=auth(server.dev.root_token))
        assert assert_json(r) is True
        assert [req["form"]["Body"] for req in twilio.requests] == [["root"]]


async def test_sms_sends_the_form_with_basic_auth(make_server: ServerFactory, twilio: TwilioStandIn) -> None:
    async with make_server(twilio_api_url=twilio.url) as server:
        text = "Your code is 123456 — é"
        r = await server.client.post("/extra/sms", json={**SMS, "body": text}, headers=auth(server.dev.root_token))
        assert assert_json(r) is True
        [req] = twilio.requests
        assert req["path"] == "/2010-04-01/Accounts/AC0123abcd/Messages.json"
        assert req["headers"]["content-type"] == "application/x-www-form-urlencoded"
        assert req["headers"]["authorization"] == "Basic " + base64.b64encode(b"AC0123abcd:tok-secret").decode()
        assert req["form"] == {"To": ["+15551234567"], "From": ["+15557654321"], "Body": [text]}


async def test_sms_passes_twilio_errors_through(make_server: ServerFactory, twilio: TwilioStandIn) -> None:
    async with make_server(twilio_api_url=twilio.url) as server:
        root = auth(server.dev.root_token)
        r = await server.client.post("/extra/sms", json={**SMS, "accountSID": "ACfail", "body": "x"}, headers=root)
        assert_error(r, 500, 'error returned by Twilio: {"code": 20003, "message": "Authenticate", "status": 401}')
        r = await server.client.post("/extra/sms", json={**SMS, "accountSID": "ACbig", "body": "x"}, headers=root)
        line = assert_error(r, 500, startswith="error returned by Twilio: x x x")
        assert len(line) == len("error returned by Twilio: ") + 500
        assert len(twilio.requests) == 2


async def test_sms_when_twilio_cannot_be_reached(make_server: ServerFactory, twilio: TwilioStandIn) -> None:
    dead = TwilioStandIn()
    dead.close()  # a port nobody listens on any more
    async with make_server(twilio_api_url=dead.url) as server:
        r = await server.client.post("/extra/sms", json={**SMS, "body": "x"}, headers=auth(server.dev.root_token))
        assert_error(r, 500, startswith="cannot reach Twilio: ConnectError")


async def test_bad_sms_requests_are_refused_before_twilio(make_server: ServerFactory, twilio: TwilioStandIn) -> None:
    async with make_server(twilio_api_url=twilio.url) as server:
        c = server.client
        root = auth(server.dev.root_token)
        good = {**SMS, "body": "hi"}
        cases: list[tuple[Any, str]] = [
            ({**good, "accountSID": ""}, "missing accountSID"),
            ({**good, "accountSID": "AC/../../x"}, "invalid accountSID"),
            ({**good, "accountSID": "AC?x=1"}, "invalid accountSID"),
            ({**good, "authToken": ""}, "missing authToken"),
            ({**good, "authToken": "a\nb"}, "invalid authToken"),
            ({**good, "toNumber": ""}, "missing toNumber"),
            ({**good, "toNumber": "call me"}, "invalid toNumber"),
            ({**good, "toNumber": "+1555\r\n"}, "invalid toNumber"),
            ({**good, "fromNumber": ""}, "missing fromNumber"),
            ({**good, "fromNumber": "not a sender!"}, "invalid fromNumber"),
            ({**good, "body": ""}, "missing body"),
            ({**good, "body": "   "}, "missing body"),
            ({**good, "body": "x" * 1601}, "invalid body: at most 1600 characters"),
            ({**good, "body": 5}, 'invalid field "body": expected a string'),
            ({**good, "toNumber": ["+1555"]}, 'invalid field "toNumber": expected a string'),
            ([good], "expected an object"),
        ]
        for body, reason in cases:
            line = assert_error(await c.post("/extra/sms", json=body, headers=root), 400)
            assert reason in line, (body, line)
        assert_error(
            await c.post("/extra/sms", content=b"{not json", headers=root), 400, startswith="invalid JSON body"
        )
        assert_error(await c.post("/extra/sms", json=good), 401)
        assert twilio.requests == []
        # the looser sender shapes Twilio takes
        for sender in ("MyShop", "whatsapp:+15557654321", "MG0123abcd", "+1 (555) 765-4321"):
            assert assert_json(await c.post("/extra/sms", json={**good, "fromNumber": sender}, headers=root)) is True
        assert [r["form"]["From"] for r in twilio.requests] == [
            ["MyShop"],
            ["whatsapp:+15557654321"],
            ["MG0123abcd"],
            ["+1 (555) 765-4321"],
        ]
