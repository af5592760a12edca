"""Helpers for the attachment suites (63-attachments.py, 62-message-push.py):
uploads, and files to upload.

Images come from two places: PNGs made here with zlib (any size, no PIL),
and the small JPEG, GIF and WebP seeds of the attachment fuzz target
(tests/fuzz/corpus/fuzz_attachment/), whose files are a Content-Type line,
an X-Filename line, then the image.
"""

import os
import struct
import urllib.parse
import zlib

import rest
from rest import API
from parley_test import request

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus", "fuzz_attachment")


def upload(user, data, content_type=None, name=None, headers=None):
    """POST /attachments with data as the raw body; the raw response."""
    hdrs = dict(headers or {})
    if content_type is not None:
        hdrs["Content-Type"] = content_type
    if name is not None:
        hdrs["X-Filename"] = urllib.parse.quote(name, safe="")
    return request("POST", API + "/attachments", body=data, token=user.token, headers=hdrs, timeout=60)


def uploaded(user, data, content_type=None, name=None):
    """upload(), expecting 201; the attachment object."""
    return rest.expect(upload(user, data, content_type, name), 201, "upload")


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)


def png_header(width, height, idat=b"", color_type=2):
    """A PNG of the given size whose pixel data is idat, as it is."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png(width, height, seed=0):
    """A valid RGB PNG with a gradient (seed makes each one's bytes its own)."""
    co = zlib.compressobj(6)
    parts = []
    for y in range(height):
        row = bytes((x * 7 + y * 3 + seed) & 255 for x in range(width * 3))
        parts.append(co.compress(b"\0" + row))
    parts.append(co.flush())
    return png_header(width, height, b"".join(parts))


def flat_png(width, height):
    """A large grey RGB PNG that compresses to almost nothing."""
    co = zlib.compressobj(9)
    row = b"\0" + b"\x80" * (width * 3)
    return png_header(width, height, b"".join(co.compress(row) for _ in range(height)) + co.flush())


def seed(name):
    """The image of fuzz seed name (its two header lines dropped)."""
    with open(os.path.join(SEEDS, name), "rb") as f:
        data = f.read()
    return data.split(b"\n", 2)[2]
