"""Decoding untrusted encoded images into BGR uint8 arrays, with the checks a public API needs.

The header is read before any pixel is decoded so a decompression bomb costs nothing; every failure is an
`ImageError` carrying a stable code (the control plane maps it to HTTP 4xx, the Triton step to INVALID_ARGUMENT).
"""

from __future__ import annotations

import io
import sys
import warnings

import cv2
import numpy as np
from PIL import Image

SUPPORTED_FORMATS = ("jpeg", "png", "webp", "bmp")
DEFAULT_MAX_PIXELS = 50_000_000

# EXIF orientation tag (0x0112) values -> the operation turning the stored pixels upright (as Pillow's
# ImageOps.exif_transpose does: 5 is a transpose, 7 a transverse).
_ORIENTATION_OPS = {
    2: lambda im: cv2.flip(im, 1),
    3: lambda im: cv2.rotate(im, cv2.ROTATE_180),
    4: lambda im: cv2.flip(im, 0),
    5: lambda im: cv2.transpose(im),
    6: lambda im: cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE),
    7: lambda im: cv2.flip(cv2.transpose(im), -1),
    8: lambda im: cv2.rotate(im, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


_HIGH_BYTE = 1 if sys.byteorder == "little" else 0  # of a native uint16


class ImageError(ValueError):
    """An image the pipeline cannot use; `code` is stable and part of the public API."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def sniff_format(data: bytes) -> str | None:
    """Name the container format from its magic bytes, or None when unknown."""
    head = bytes(data[:16])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"BM"):
        return "bmp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head[4:8] == b"ftyp":
        return "heif/avif"
    return None


def _jpeg_is_complete(data: bytes) -> bool:
    """True when an end-of-image marker follows the first top-level scan.

    OpenCV releases before 4.11 decode truncated JPEGs into half-grey pictures without failing (4.11 refuses them);
    walking the segment headers to the first scan (skipping EXIF thumbnails, which carry markers of their own) and
    finding EOI after it keeps the answer the same whatever OpenCV is installed.
    """
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA:  # start of scan: the rest must contain the end-of-image marker
            return data.find(b"\xff\xd9", pos + 2 + length) != -1
        pos += 2 + length
    return False


def read_header(data: bytes) -> tuple[str, int, int, int]:
    """Validate the signature and read (format, width, height, exif_orientation) without decoding pixels."""
    if len(data) == 0:
        raise ImageError("invalid_image", "the image is empty (0 bytes)")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageError(
            "invalid_image",
            "the bytes are not an image: no JPEG, PNG, WebP or BMP signature at the start of the data",
        )
    if fmt not in SUPPORTED_FORMATS:
        raise ImageError(
            "unsupported_media_type",
            f"{fmt.upper()} images are not supported; send JPEG, PNG, WebP or BMP",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                orientation = 1
                try:
                    orientation = int(im.getexif().get(0x0112, 1))
                except Exception:  # a broken EXIF block must not sink a decodable image
                    orientation = 1
    except Image.DecompressionBombError as exc:  # Pillow's own ceiling, far above ours: still a bomb
        raise ImageError("image_too_large", f"the image header declares too many pixels: {exc}") from None
    except Exception as exc:
        raise ImageError("invalid_image", f"the {fmt.upper()} header is corrupt: {exc}") from None
    return fmt, width, height, orientation


def _to_bgr8(img: np.ndarray) -> np.ndarray:
    """Bring any decoded layout (grey, grey+alpha, BGRA, 16-bit) to 3-channel BGR uint8."""
    if img.dtype == np.uint16:
        # the high byte of each sample: what OpenCV's own 16->8 bit conversion does (img >> 8), read through a view
        # (a tenth of the time and no 16-bit temporary: a 6000x6000 RGBA 16-bit PNG is 288 MB decoded)
        img = np.ascontiguousarray(np.ascontiguousarray(img).view(np.uint8)[..., _HIGH_BYTE::2])
    elif img.dtype != np.uint8:
        raise ImageError("unsupported_media_type", f"unsupported sample type {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    channels = img.shape[2]
    if channels == 1:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if channels == 2:  # grey + alpha
        return _composite_on_white(cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR), img[:, :, 1])
    if channels == 4:
        return _composite_on_white(img[:, :, :3], img[:, :, 3])
    return img


def _composite_on_white(bgr: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    # Pixels under full transparency hold arbitrary colours; show the image as a browser on a white page would.
    if alpha.min() == 255:
        return np.ascontiguousarray(bgr)
    # round((v * a + 255 * (255 - a)) / 255) in 16-bit integers (the largest sum is 255 * 255), a block of rows at a
    # time: exact, and a few MB of temporaries where float32 over the whole image took 2 GB and seconds at 36 Mpx
    out = np.empty(bgr.shape, np.uint8)
    step = max(1, (1 << 20) // max(1, bgr.shape[1]))
    for y in range(0, bgr.shape[0], step):
        a = alpha[y : y + step, :, None].astype(np.uint16)
        block = bgr[y : y + step].astype(np.uint16)
        block *= a
        block += (255 - a) * 255
        block += 127
        block //= 255
        out[y : y + step] = block
    return out


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels upright according to an EXIF orientation value (1..8; others leave it as is)."""
    op = _ORIENTATION_OPS.get(orientation)
    return op(img) if op else img


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded bytes into an upright BGR uint8 image of shape (H, W, 3).

    Raises `ImageError` with code `invalid_image`, `unsupported_media_type` or `image_too_large`.
    """
    fmt, width, height, orientation = read_header(data)
    if width <= 0 or height <= 0:
        raise ImageError("invalid_image", f"the image declares an empty size {width}x{height}")
    if width * height > max_pixels:
        raise ImageError(
            "image_too_large",
            f"the image is {width}x{height} ({width * height / 1e6:.1f} Mpx); the limit is {max_pixels / 1e6:.1f} Mpx",
        )
    buf = np.frombuffer(data, dtype=np.uint8)
    if fmt == "jpeg":
        if not _jpeg_is_complete(data):
            raise ImageError("invalid_image", "the JPEG data is truncated or corrupt (no end-of-image marker)")
        # IMREAD_COLOR converts CMYK and greyscale JPEGs; the orientation Pillow read is applied below, as for
        # every other format, so OpenCV must not apply it a second time.
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    else:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ImageError("invalid_image", f"the {fmt.upper()} data is corrupt and could not be decoded")
    img = _to_bgr8(img)
    if orientation != 1:
        img = apply_orientation(img, orientation)
    return np.ascontiguousarray(img)
