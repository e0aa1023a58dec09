"""Turning what a client sent into checked image bytes, in memory only.

Order of checks, cheapest first: the string's size, base64 decoding, magic-byte sniffing, then the header's
declared pixel count (a decompression bomb is refused before any pixel is decoded, here and again in Triton).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from dataclasses import dataclass
from functools import cached_property

from PIL import Image

from control_plane.core.errors import ApiError
from face_analysis.ops.image import ImageError, read_header, sniff_format

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[\w.+-]+=[^;,]*)*)(?P<b64>;base64)?,", re.I)
_WHITESPACE = re.compile(rb"\s+")
# orientations 5-8 rotate by 90 degrees: the displayed image swaps width and height
_TRANSPOSED = {5, 6, 7, 8}


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    format: str
    width: int
    height: int
    field: str = "image"  # the request field it came from, named in errors about it

    @cached_property
    def sha256(self) -> str:
        """Hex digest of the bytes: the cache key's and the single-flight's name for the image (hashed once)."""
        return hashlib.sha256(self.data).hexdigest()

    def info(self) -> dict:
        return {"format": self.format, "width": self.width, "height": self.height}


def decode_image_string(value: str, field: str = "image") -> bytes:
    """Bytes from a base64 string or a base64 data URL; errors name the field."""
    if not isinstance(value, str) or not value:
        raise ApiError("invalid_image", f"`{field}` is empty", details={"field": field})
    payload = value
    match = _DATA_URL.match(value[:256])
    if match:
        mime = (match.group("mime") or "").lower()
        if not mime.startswith("image/"):
            raise ApiError(
                "unsupported_media_type",
                f"`{field}` is a data URL of type {mime or 'text/plain'!r}; send an image",
                details={"field": field, "media_type": mime},
            )
        if not match.group("b64"):
            raise ApiError("invalid_base64", f"`{field}` is a data URL without ;base64", details={"field": field})
        payload = value[match.end() :]
    try:
        raw = _WHITESPACE.sub(b"", payload.encode("ascii"))
        # urlsafe alphabets are accepted too; padding may be omitted
        raw = raw.replace(b"-", b"+").replace(b"_", b"/")
        raw += b"=" * (-len(raw) % 4)
        data = base64.b64decode(raw, validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise ApiError("invalid_base64", f"`{field}` is not valid base64", details={"field": field}) from None
    if not data:
        raise ApiError("invalid_image", f"`{field}` is empty", details={"field": field})
    return data


def check_image(data: bytes, max_pixels: int, field: str = "image") -> CheckedImage:
    """Sniff the format and read the header; refuse unknown formats and pixel counts above `max_pixels`."""
    try:
        fmt, width, height, orientation = read_header(data)
    except ImageError as exc:
        size = _declared_size(data) if exc.code == "image_too_large" else None
        if size is None:
            raise ApiError(exc.code, exc.message, details={"field": field}) from None
        raise _too_large(field, *size, max_pixels) from None
    if width * height > max_pixels:
        raise _too_large(field, width, height, max_pixels)
    if orientation in _TRANSPOSED:
        width, height = height, width
    return CheckedImage(data, fmt, width, height, field)


def _too_large(field: str, width: int, height: int, max_pixels: int) -> ApiError:
    return ApiError(
        "image_too_large",
        f"`{field}` is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
        details={"field": field, "width": width, "height": height, "max_pixels": max_pixels},
    )


_PILLOW_IDS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "bmp": "BMP"}


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """The header's width and height for an image past Pillow's own bomb ceiling (where `Image.open` refuses to
    say): the format's header parser alone, which reads no pixels."""
    try:
        Image.init()
        factory, _ = Image.OPEN[_PILLOW_IDS[sniff_format(data)]]
        with factory(io.BytesIO(data)) as im:
            return im.size
    except Exception:
        return None
