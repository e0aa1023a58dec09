"""Real test images (shipped by the insightface and scikit-image wheels) and encoders for variants of them."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def insightface_image(name: str) -> Path:
    import insightface

    return Path(insightface.__file__).parent / "data" / "images" / name


def skimage_image(name: str) -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data" / name


def t1_path() -> Path:
    """A group photo of six faces."""
    return insightface_image("t1.jpg")


def encode(img_bgr: np.ndarray, ext: str = ".png", **params) -> bytes:
    flags = []
    for k, v in params.items():
        flags += [getattr(cv2, k), v]
    ok, buf = cv2.imencode(ext, img_bgr, flags)
    assert ok
    return buf.tobytes()


def jpeg_with_orientation(img_bgr: np.ndarray, orientation: int, quality: int = 95) -> bytes:
    """JPEG bytes holding `img_bgr`'s pixels as stored and an EXIF orientation tag."""
    im = Image.fromarray(np.ascontiguousarray(img_bgr[:, :, ::-1]))
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality, exif=exif)
    return out.getvalue()


def face_mosaic(sources: list[tuple[np.ndarray, np.ndarray]], count: int, tile: int = 128, seed: int = 0) -> np.ndarray:
    """A grid of `count` face tiles cut from (image, boxes) sources, each face centred in its own tile,
    varied by mirroring and small brightness changes."""
    rng = np.random.default_rng(seed)
    faces = []
    for img, boxes in sources:
        for x1, y1, x2, y2 in boxes:
            cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * 1.7
            m = np.array([[tile / side, 0, tile / 2 - cx * tile / side], [0, tile / side, tile / 2 - cy * tile / side]])
            faces.append(cv2.warpAffine(img, m, (tile, tile), borderMode=cv2.BORDER_REPLICATE))
    cols = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / cols))
    canvas = np.full((rows * tile, cols * tile, 3), 255, np.uint8)
    for i in range(count):
        face = faces[i % len(faces)]
        if (i // len(faces)) % 2:
            face = face[:, ::-1]
        face = np.clip(face.astype(np.int16) + int(rng.integers(-20, 21)), 0, 255).astype(np.uint8)
        r, c = divmod(i, cols)
        canvas[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = face
    return canvas


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height over a few bytes of pixel data: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
