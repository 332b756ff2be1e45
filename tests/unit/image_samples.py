"""Real 1x1 images of every format the SDK accepts (made once with Pillow, which the
unit tests do not need), plus a PNG built by hand to show what the bytes are."""

import binascii
import struct
import zlib


def _png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def make_png(width=1, height=1):
    """An RGB PNG, every pixel black."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


PNG = make_png()
JPEG = binascii.unhexlify(
    "ffd8ffe000104a46494600010100000100010000ffdb00430002010101010102010101020202020204"
    "03020202020504040304060506060605060606070908060709070606080b08090a0a0a0a0a06080b0c"
    "0b0a0c090a0a0affc0000b080001000101011100ffc4001400010000000000000000000000000000000a"
    "ffc40014100100000000000000000000000000000000ffda0008010100003f003fefffd9"
)
GIF = binascii.unhexlify("47494638376101000100810000ff00000000000000000000002c000000000100010000080400010404003b")
WEBP = binascii.unhexlify("524946461c000000574542505650384c0f0000002f000000000710fd8ffe0722a2ff0100")
BMP = binascii.unhexlify(
    "424d3a0000000000000036000000280000000100000001000000010018000000000004000000c40e0000"
    "c40e000000000000000000000000ff00"
)

# format name → (bytes, extension, mime type)
SAMPLES = {
    "jpeg": (JPEG, "jpg", "image/jpeg"),
    "png": (PNG, "png", "image/png"),
    "gif": (GIF, "gif", "image/gif"),
    "webp": (WEBP, "webp", "image/webp"),
    "bmp": (BMP, "bmp", "image/bmp"),
}
