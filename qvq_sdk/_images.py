"""Image inputs → bytes with a filename and a content type, checked before any request.

An image may be a path (``str`` or ``os.PathLike``), ``bytes``/``bytearray``/
``memoryview``, a binary file object, a ``data:`` URI, an ``http(s)`` URL (fetched by a
callback the client supplies), or a PIL image. Its format is sniffed from its first
bytes; anything that is not JPEG, PNG, GIF, WEBP or BMP is refused.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import posixpath
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple
from urllib.parse import unquote, unquote_to_bytes, urlsplit

from .errors import InputError

# (extension, content type) by format.
FORMATS = {
    "jpeg": ("jpg", "image/jpeg"),
    "png": ("png", "image/png"),
    "gif": ("gif", "image/gif"),
    "webp": ("webp", "image/webp"),
    "bmp": ("bmp", "image/bmp"),
}
_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
_PIL_FORMATS = {"JPEG", "PNG", "GIF", "WEBP", "BMP"}

Fetch = Callable[[str, str], bytes]


@dataclass(frozen=True)
class Image:
    """An image ready to upload."""

    data: bytes
    filename: str
    mime_type: str

    def __repr__(self) -> str:
        return f"Image(filename={self.filename!r}, mime_type={self.mime_type!r}, size={len(self.data)})"

    def data_uri(self) -> str:
        """The image as a ``data:`` URI (what an OpenAI-compatible server takes)."""
        return f"data:{self.mime_type};base64,{base64.b64encode(self.data).decode('ascii')}"


def sniff_format(data: bytes) -> Optional[str]:
    """The image format whose full header starts ``data``, or None."""
    if data[:3] == b"\xff\xd8\xff" and len(data) >= 4:
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 13:
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and data[12:16] in (b"VP8 ", b"VP8L", b"VP8X"):
        return "webp"
    if data[:2] == b"BM" and len(data) >= 26 and int.from_bytes(data[14:18], "little") in _BMP_HEADER_SIZES:
        return "bmp"
    return None


def describe_url(url: str) -> str:
    """A URL without its credentials or query, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def _from_data_uri(uri: str, where: str) -> bytes:
    header, comma, payload = uri.partition(",")
    if not comma:
        raise InputError(f"{where} is a malformed data: URI (no comma before the data).", input=where)
    try:
        if header.endswith(";base64"):
            return base64.b64decode("".join(payload.split()), validate=True)
        return unquote_to_bytes(payload)
    except (binascii.Error, ValueError):
        raise InputError(f"{where} is a data: URI whose base64 data is malformed.", input=where) from None


def _from_path(path: str, where: str) -> bytes:
    if os.path.isdir(path):
        raise InputError(f"{where} is a directory, not an image file: {path!r}.", input=where)
    try:
        with open(path, "rb") as file:
            return file.read()
    except FileNotFoundError:
        raise InputError(f"{where}: no such image file: {path!r}.", input=where) from None
    except OSError as exc:
        raise InputError(f"{where}: cannot read the image file {path!r}: {exc.strerror}.", input=where) from None


def _from_pil(image: Any) -> Tuple[bytes, str]:
    buffer = io.BytesIO()
    kind = image.format if image.format in _PIL_FORMATS else "PNG"
    try:
        image.save(buffer, format=kind)
    except (OSError, ValueError, KeyError):
        buffer = io.BytesIO()
        kind = "PNG"
        image.convert("RGB").save(buffer, format=kind)
    return buffer.getvalue(), "image"


def _is_pil_image(value: Any) -> bool:
    return type(value).__module__.startswith("PIL.") and hasattr(value, "save") and hasattr(value, "format")


def load_image(source: Any, where: str, fetch: Fetch) -> Image:
    """Reads and checks one image source; ``fetch(url, where)`` downloads an http(s) URL."""
    name = "image"
    if isinstance(source, str) and source[:5].lower() == "data:":
        data = _from_data_uri(source, where)
        shown = "a data: URI"
    elif isinstance(source, str) and source.split("://", 1)[0].lower() in ("http", "https") and "://" in source:
        data = fetch(source, where)
        shown = describe_url(source)
        name = posixpath.basename(unquote(urlsplit(source).path)) or name
    elif isinstance(source, str) and "://" in source:
        raise InputError(
            f"{where} is a URL of a scheme this client cannot fetch ({describe_url(source)}); "
            "use an http(s) URL, a data: URI, a path or bytes.",
            input=where,
        )
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not isinstance(path, str):
            path = os.fsdecode(path)
        data = _from_path(path, where)
        shown = repr(path)
        name = os.path.basename(path) or name
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        shown = "bytes"
    elif _is_pil_image(source):
        data, name = _from_pil(source)
        shown = "a PIL image"
    elif callable(getattr(source, "read", None)):
        if isinstance(source, io.TextIOBase):
            raise InputError(f"{where} is a file opened in text mode; open it with 'rb'.", input=where)
        try:
            content = source.read()
        except OSError as exc:
            raise InputError(f"{where}: cannot read the file object: {exc}.", input=where) from None
        if not isinstance(content, (bytes, bytearray)):
            raise InputError(f"{where} is a file opened in text mode; open it with 'rb'.", input=where)
        data = bytes(content)
        file_name = getattr(source, "name", None)
        shown = repr(file_name) if isinstance(file_name, str) else "a file object"
        if isinstance(file_name, str):
            name = os.path.basename(file_name) or name
    else:
        raise InputError(
            f"{where} is a {type(source).__name__}; an image is a path, bytes, a binary file, "
            "a data: URI, an http(s) URL or a PIL image.",
            input=where,
        )
    if not data:
        raise InputError(f"{where} ({shown}) is empty.", input=where)
    kind = sniff_format(data)
    if kind is None:
        raise InputError(
            f"{where} ({shown}) is not a JPEG, PNG, GIF, WEBP or BMP image: it starts with {data[:8]!r}.",
            input=where,
        )
    extension, mime_type = FORMATS[kind]
    stem, suffix = os.path.splitext(name)
    if suffix.lower().lstrip(".") not in (extension, kind):
        name = f"{stem or 'image'}.{extension}"
    return Image(data=data, filename=name, mime_type=mime_type)
