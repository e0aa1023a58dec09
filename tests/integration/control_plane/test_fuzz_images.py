"""Hostile and generated images through /v1/faces/detect: the real app (in process), the real ensemble.

- generated valid images (1..2000 px a side; JPEG, PNG, WebP, BMP; grey, RGB, RGBA; 8- and 16-bit PNG), sent as a
  multipart upload and as a JSON data URL: always 200 (or 413 `payload_too_large` where the body passes the limit);
- corrupted real images (t1.jpg, scikit-image's astronaut.png, and WebP/BMP encodings of t1): truncated, flipped,
  wrong magic bytes, garbage inserted; and broken base64 / data URLs: 200 or a documented 4xx, never a 5xx;
- a named corpus of hostile files that test_api_errors.py does not already hold, each with its expected answer.

Every response is also checked for the error shape and its time (< 10 s); the module checks the process's peak RSS
growth (the app runs in this process). Hypothesis draws compact recipes (sizes, offsets, seeds) and the test builds the
bytes, so a failure report stays readable; it runs derandomized, without an example database and without shrinking."""

from __future__ import annotations

import base64
import collections
import io
import resource
import struct
import time
import zlib

import cv2
import httpx
import hypothesis
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from control_plane.core.errors import ERROR_CODES
from control_plane.core.settings import DEFAULT_TIERS, RateTier
from tests.fuzzing import fuzz_settings
from tests.images import jpeg_with_orientation, skimage_image, t1_path

pytestmark = pytest.mark.integration

DETECT = "/v1/faces/detect"
NO_LIMIT = {"rate_tiers": {**DEFAULT_TIERS, "fuzz": RateTier(burst=10**9, per_minute=10**9)}, "default_tier": "fuzz"}
MAX_REQUEST_S = 10.0
MAX_RSS_GROWTH = 1536 << 20
# what a hostile image may be answered with, by status
IMAGE_REFUSALS = {
    400: {"invalid_image", "invalid_base64", "invalid_argument"},
    413: {"image_too_large", "payload_too_large"},
    415: {"unsupported_media_type"},
}


# --- bookkeeping: time per request, status counts, peak RSS -------------------------------------------------------

STATS: dict = {"cases": 0, "statuses": collections.defaultdict(collections.Counter), "max_ms": 0.0, "slowest": ""}


def _peak_rss() -> int:
    """VmHWM of this process in bytes (ru_maxrss where /proc is missing)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _current_rss() -> int:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return _peak_rss()


@pytest.fixture(scope="module", autouse=True)
def bounded_memory():
    """The peak RSS growth over the module: the peak is reset first where Linux allows it (clear_refs 5), so what
    earlier tests of the session allocated does not hide this module's peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    baseline = _current_rss()
    start = time.perf_counter()
    yield
    growth = _peak_rss() - baseline
    print(
        f"\n[fuzz images] {STATS['cases']} requests in {time.perf_counter() - start:.1f} s; "
        f"slowest {STATS['max_ms']:.0f} ms ({STATS['slowest']}); peak RSS growth {growth / 2**20:.0f} MiB"
    )
    for kind, statuses in sorted(STATS["statuses"].items()):
        counts = dict(sorted(statuses.items()))
        print(f"[fuzz images]   {kind:10s} {sum(statuses.values()):4d} requests; statuses {counts}")
    assert growth < MAX_RSS_GROWTH, f"peak RSS grew by {growth / 2**20:.0f} MiB"


@pytest.fixture
async def fuzz(make_api):
    api = await make_api(**NO_LIMIT)
    return api, {"X-API-Key": await api.new_key(tier="fuzz")}


async def post(api, headers, what: str, *, data: bytes | None = None, json_image: str | None = None, **kw):
    """One detect request, as multipart (`data`) or JSON (`json_image`), timed and checked for the common rules."""
    start = time.perf_counter()
    if data is not None:
        r = await api.client.post(
            DETECT, files={"image": ("upload", data, "application/octet-stream")}, headers=headers
        )
    elif json_image is not None:
        r = await api.client.post(DETECT, json={"image": json_image}, headers=headers)
    else:
        r = await api.client.post(DETECT, headers=headers, **kw)
    elapsed = time.perf_counter() - start
    if elapsed * 1000 > STATS["max_ms"]:
        STATS["max_ms"], STATS["slowest"] = elapsed * 1000, what
    STATS["cases"] += 1
    STATS["statuses"][what.split(" ", 1)[0]][r.status_code] += 1  # by kind: the first word
    assert elapsed < MAX_REQUEST_S, f"{what}: {elapsed:.1f} s"
    assert r.status_code < 500, f"{what}: {r.status_code} {r.text[:500]}"
    assert r.headers.get("x-request-id"), what
    if r.status_code >= 400:
        body = r.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
        assert ERROR_CODES.get(body["error"]["code"]) == r.status_code, body
    return r


def expect_image_answer(r: httpx.Response, what: str) -> None:
    """200 with a well-formed result, or a refusal documented for images."""
    if r.status_code == 200:
        body = r.json()
        assert body["face_count"] == len(body["faces"]) >= 0, body
        assert body["image"]["width"] >= 1 and body["image"]["height"] >= 1, body
        return
    code = r.json()["error"]["code"]
    assert code in IMAGE_REFUSALS.get(r.status_code, ()), f"{what}: {r.status_code} {code}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def data_url(data: bytes, media: str = "image/jpeg") -> str:
    return f"data:{media};base64,{b64(data)}"


# --- sources ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.imread(str(t1_path()))


@pytest.fixture(scope="module")
def sources(photo) -> dict[str, bytes]:
    """Real images to corrupt: the JPEG and PNG files as shipped, WebP and BMP encodings of a crop of t1."""
    crop = photo[:200, :300]
    return {
        "t1.jpg": t1_path().read_bytes(),
        "astronaut.png": skimage_image("astronaut.png").read_bytes(),
        "t1.webp": cv2.imencode(".webp", crop)[1].tobytes(),
        "t1.bmp": cv2.imencode(".bmp", crop)[1].tobytes(),
    }


# --- 1. generated valid images ------------------------------------------------------------------------------------

LAYOUTS = {
    "jpeg": ("grey", "rgb"),
    "png": ("grey", "rgb", "rgba"),
    "webp": ("grey", "rgb", "rgba"),
    "bmp": ("grey", "rgb", "rgba"),
}


@st.composite
def image_recipes(draw):
    fmt = draw(st.sampled_from(sorted(LAYOUTS)))
    return {
        "width": draw(st.integers(1, 2000)),
        "height": draw(st.integers(1, 2000)),
        "format": fmt,
        "layout": draw(st.sampled_from(LAYOUTS[fmt])),
        "bits": draw(st.sampled_from([8, 16])) if fmt == "png" else 8,
        "content": draw(st.sampled_from(["photo", "flat", "gradient"])),
        "alpha": draw(st.sampled_from(["opaque", "half", "ramp"])),
        "quality": draw(st.integers(1, 100)),  # JPEG and WebP quality, PNG compression level // 11
        "progressive": draw(st.booleans()),
    }


def _extreme(width, height, fmt, layout, bits=8, quality=50, content="photo"):
    recipe = {"width": width, "height": height, "format": fmt, "layout": layout, "bits": bits, "content": content}
    return recipe | {"alpha": "ramp", "quality": quality, "progressive": True}


def build_image(recipe: dict, photo: np.ndarray) -> bytes:
    w, h = recipe["width"], recipe["height"]
    if recipe["content"] == "photo":
        img = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
    elif recipe["content"] == "flat":
        img = np.full((h, w, 3), (recipe["quality"] * 2, 90, 200), np.uint8)
    else:
        ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :] + np.linspace(0, 255, h, dtype=np.float32)[:, None]
        img = cv2.cvtColor((ramp / 2).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    if recipe["layout"] == "grey":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    elif recipe["layout"] == "rgba":
        alpha = {"opaque": np.full((h, w), 255, np.uint8), "half": np.full((h, w), 128, np.uint8)}.get(recipe["alpha"])
        if alpha is None:
            alpha = np.tile(np.linspace(0, 255, w, dtype=np.uint8), (h, 1))
        img = np.dstack([img, alpha])
    if recipe["bits"] == 16:
        img = img.astype(np.uint16) * 257
    fmt, q = recipe["format"], recipe["quality"]
    params = {
        "jpeg": [cv2.IMWRITE_JPEG_QUALITY, q, cv2.IMWRITE_JPEG_PROGRESSIVE, int(recipe["progressive"])],
        "png": [cv2.IMWRITE_PNG_COMPRESSION, q // 11],
        "webp": [cv2.IMWRITE_WEBP_QUALITY, q],
        "bmp": [],
    }[fmt]
    ok, buf = cv2.imencode("." + fmt, img, params)
    assert ok
    return buf.tobytes()


@fuzz_settings(50)
@given(recipe=image_recipes())
# the extremes, always: a 16 MB BMP (its base64 passes the 20 MB body limit), an uncompressed 2000x2000 RGBA 16-bit
# PNG (32 MB: over the limit either way), 1-pixel-thin strips
@hypothesis.example(recipe=_extreme(2000, 2000, "bmp", "rgba"))
@hypothesis.example(recipe=_extreme(2000, 2000, "png", "rgba", bits=16, quality=0))
@hypothesis.example(recipe=_extreme(2000, 2000, "png", "rgba", bits=16, quality=99, content="gradient"))
@hypothesis.example(recipe=_extreme(2000, 1, "jpeg", "rgb"))
@hypothesis.example(recipe=_extreme(1, 2000, "webp", "grey"))
async def test_generated_valid_images(fuzz, photo, recipe):
    """Each image as a multipart upload and as a JSON data URL (the second answered from the cache: same bytes)."""
    api, key = fuzz
    data = build_image(recipe, photo)
    answers = []
    for transport in ("multipart", "json"):
        what = f"generated {recipe} via {transport}"
        if transport == "multipart":
            r, sent = await post(api, key, what, data=data), len(data)
        else:
            url = data_url(data, "image/" + recipe["format"])
            r, sent = await post(api, key, what, json_image=url), len(url)
        if r.status_code == 413:  # the encoded body is over FACE_API_MAX_BODY_BYTES: refused on purpose
            assert r.json()["error"]["code"] == "payload_too_large", r.text
            assert sent > api.settings.max_body_bytes - 1024, sent  # give or take the multipart/JSON framing
            continue
        assert r.status_code == 200, f"{what}: {r.text[:300]}"
        body = r.json()
        assert body["image"] == {"format": recipe["format"], "width": recipe["width"], "height": recipe["height"]}
        assert body["face_count"] == len(body["faces"]) >= 0
        answers.append(body)
    assert all(a == answers[0] for a in answers), "multipart and JSON disagree"


async def test_generated_image_both_transports_agree(fuzz, photo):
    """The same bytes as multipart and as a data URL: the same answer (the second from the cache)."""
    api, key = fuzz
    data = build_image(
        {"width": 640, "height": 480, "format": "png", "layout": "rgba", "bits": 16, "content": "photo"}
        | {"alpha": "ramp", "quality": 50, "progressive": False},
        photo,
    )
    a = await post(api, key, "generated (both transports) multipart", data=data)
    b = await post(api, key, "generated (both transports) json", json_image=data_url(data, "image/png"))
    assert a.status_code == b.status_code == 200 and a.json() == b.json()
    assert a.json()["face_count"] > 0


# --- 2. corrupted real images -------------------------------------------------------------------------------------

MAGICS = [
    b"GIF89a",
    b"II*\x00",
    b"\x00\x00\x00\x18ftypheic",
    b"%PDF-1.7",
    b"<svg ",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff\xe0",
    b"RIFF\x00\x00\x00\x00WEBP",
    b"BM",
    b"\x00\x00\x00\x00",
]


@st.composite
def corruptions(draw):
    """A source name and 1-3 operations, each a small tuple the test applies in order."""
    ops = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "magic", "insert", "segment"]))
        where = draw(st.floats(0, 1))  # a fraction of the current length, so the recipe fits any source
        if kind == "truncate":
            ops.append(("truncate", where))
        elif kind == "flip":
            ops.append(("flip", draw(st.integers(0, 2**32 - 1)), draw(st.integers(1, 16))))
        elif kind == "magic":
            ops.append(("magic", draw(st.sampled_from(range(len(MAGICS))))))
        elif kind == "insert":
            ops.append(("insert", where, draw(st.integers(0, 2**32 - 1)), draw(st.integers(1, 5000))))
        else:  # a well-framed but meaningless JPEG segment or PNG chunk
            ops.append(("segment", where, draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 3000))))
    return draw(st.sampled_from(["t1.jpg", "astronaut.png", "t1.webp", "t1.bmp"])), ops


def corrupt(data: bytes, ops: list[tuple]) -> bytes:
    out = bytearray(data)
    for op in ops:
        if op[0] == "truncate":
            del out[int(op[1] * len(out)) :]
        elif op[0] == "flip":
            rng = np.random.default_rng(op[1])
            for _ in range(op[2]):
                if out:
                    out[int(rng.integers(len(out)))] ^= int(rng.integers(1, 256))
        elif op[0] == "magic":
            magic = MAGICS[op[1]]
            out[: len(magic)] = magic
        elif op[0] == "insert":
            pos = int(op[1] * len(out))
            out[pos:pos] = np.random.default_rng(op[2]).bytes(op[3])
        else:
            pos = int(op[1] * len(out))
            junk = np.random.default_rng(op[2]).bytes(op[3])
            if out[:2] == b"\xff\xd8":
                seg = b"\xff" + bytes([0xE0 + op[2] % 16]) + struct.pack(">H", len(junk) + 2) + junk
            else:
                kind = bytes(np.random.default_rng(op[2] + 1).integers(97, 123, 4, dtype=np.uint8))
                seg = struct.pack(">I", len(junk)) + kind + junk + struct.pack(">I", zlib.crc32(kind + junk))
            out[pos:pos] = seg
    return bytes(out)


@fuzz_settings(200)
@given(recipe=corruptions(), transport=st.sampled_from(["multipart", "json"]))
async def test_corrupted_real_images(fuzz, sources, recipe, transport):
    api, key = fuzz
    source, ops = recipe
    data = corrupt(sources[source], ops)
    what = f"corrupted {source} {ops} via {transport}"
    if transport == "multipart":
        r = await post(api, key, what, data=data)
    else:
        r = await post(api, key, what, json_image=b64(data))
    expect_image_answer(r, what)


@st.composite
def broken_strings(draw):
    """(data URL prefix, edits of the base64 text): characters inserted or dropped, whitespace, truncation."""
    prefix = draw(
        st.sampled_from(
            [
                "",
                "data:image/jpeg;base64,",
                "data:image/png;base64,",  # the wrong image type: the bytes decide
                "DATA:IMAGE/JPEG;BASE64,",
                "data:image/jpeg;charset=utf-8;base64,",
                "data:;base64,",
                "data:text/plain;base64,",
                "data:application/octet-stream;base64,",
                "data:image/jpeg,",
                "data:image/jpeg;base32,",
                "data:base64,",
                "data:",
            ]
        )
    )
    edits = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["insert", "drop", "space", "truncate", "urlsafe"]),
                st.floats(0, 1),
                st.sampled_from(list("!@#$%^&*()é\x00=.-_ \n\t") + ["\u2603", "=="]),
            ),
            max_size=3,
        )
    )
    return prefix, edits


@fuzz_settings(80)
@given(recipe=broken_strings())
async def test_broken_base64_and_data_urls(fuzz, sources, recipe):
    api, key = fuzz
    prefix, edits = recipe
    text = b64(sources["t1.webp"])
    for kind, where, char in edits:
        pos = int(where * len(text))
        if kind == "insert":
            text = text[:pos] + char + text[pos:]
        elif kind == "drop":
            text = text[:pos] + text[pos + 1 :]
        elif kind == "space":
            text = text[:pos] + "\r\n " + text[pos:]
        elif kind == "truncate":
            text = text[:pos]
        else:
            text = text.replace("+", "-").replace("/", "_")
    what = f"base64 {prefix!r} {edits}"
    r = await post(api, key, what, json_image=prefix + text)
    expect_image_answer(r, what)
    # where the prefix alone decides
    code = r.json().get("error", {}).get("code")
    if prefix in ("data:;base64,", "data:text/plain;base64,", "data:application/octet-stream;base64,"):
        assert (r.status_code, code) == (415, "unsupported_media_type"), what
    # not data URLs (no `;base64` marker, or no media type and no marker): read as base64 text, with `:` and `,` in it
    if prefix in ("data:image/jpeg,", "data:image/jpeg;base32,", "data:base64,", "data:"):
        assert (r.status_code, code) == (400, "invalid_base64"), what
    intact = all(kind in ("space", "urlsafe") for kind, _, _ in edits)  # whitespace and the URL-safe alphabet pass
    if intact and (prefix == "" or prefix.lower().startswith("data:image/") and prefix.lower().endswith(";base64,")):
        assert r.status_code == 200 and r.json()["image"]["format"] == "webp", what


# --- 3. a named corpus ----------------------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_of_zeros(width: int, height: int, bit_depth: int = 8, colour_type: int = 0, channels: int = 1) -> bytes:
    """A valid PNG of zeros, compressed as it is streamed: a 30000x30000 1-bit one is ~110 KB."""
    row = 1 + (width * bit_depth * channels + 7) // 8
    z = zlib.compressobj(9)
    rows = max(1, (8 << 20) // row)
    block, parts, left = bytes(row * rows), [], height
    while left > 0:
        n = min(rows, left)
        parts.append(z.compress(block[: row * n]))
        left -= n
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def png_lying_ihdr(claimed: int, actual: int) -> bytes:
    raw = b"".join(b"\0" + bytes(actual * 3) for _ in range(actual))
    ihdr = struct.pack(">IIBBBBB", claimed, claimed, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def _pil(img_bgr: np.ndarray, fmt: str, mode: str | None = None, **params) -> bytes:
    im = Image.fromarray(np.ascontiguousarray(img_bgr[:, :, ::-1]))
    if mode:
        im = im.convert(mode)
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def _animation(face: np.ndarray, fmt: str) -> bytes:
    frames = [Image.fromarray(face[:, :, ::-1]), Image.fromarray(face[::-1, :, ::-1])]
    out = io.BytesIO()
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], loop=0, duration=100)
    return out.getvalue()


def _big_exif_jpeg(face: np.ndarray) -> bytes:
    exif = Image.Exif()
    exif[0x927C] = b"\x00maker" * 10_000  # MakerNote: ~60 KB, near the 64 KB ceiling of the APP1 segment
    exif[0x0112] = 6
    out = io.BytesIO()
    Image.fromarray(face[:, :, ::-1]).save(out, "JPEG", exif=exif)
    assert 55_000 < len(out.getvalue()) - len(_pil(face, "JPEG")) < 65_536
    return out.getvalue()


def _png16(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", img.astype(np.uint16) * 257)[1].tobytes()


ONE = np.full((1, 1, 3), 77, np.uint8)
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="640" height="480"><rect/></svg>'
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
FACE_SIZE = (320, 240)

# name -> (build(face) -> bytes, status, error code or None, (width, height) reported on success); `face` is t1
# scaled to FACE_SIZE
CORPUS = {
    "animated GIF": (lambda f: _animation(f, "GIF"), 415, "unsupported_media_type", None),
    "animated PNG (first frame)": (lambda f: _animation(f, "PNG"), 200, None, FACE_SIZE),
    "animated WebP (first frame)": (lambda f: _animation(f, "WEBP"), 200, None, FACE_SIZE),
    "CMYK JPEG": (lambda f: _pil(f, "JPEG", "CMYK"), 200, None, FACE_SIZE),
    "greyscale JPEG": (lambda f: _pil(f, "JPEG", "L"), 200, None, FACE_SIZE),
    "16-bit RGB PNG": (_png16, 200, None, FACE_SIZE),
    "16-bit grey PNG": (lambda f: _png16(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)), 200, None, FACE_SIZE),
    "16-bit RGBA PNG": (lambda f: _png16(cv2.cvtColor(f, cv2.COLOR_BGR2BGRA)), 200, None, FACE_SIZE),
    "palette PNG": (lambda f: _pil(f, "PNG", "P"), 200, None, FACE_SIZE),
    "1-bit PNG": (lambda f: _pil(f, "PNG", "1"), 200, None, FACE_SIZE),
    "1-bit BMP": (lambda f: _pil(f, "BMP", "1"), 200, None, FACE_SIZE),
    "JPEG, 60 KB EXIF block, orientation 6": (_big_exif_jpeg, 200, None, FACE_SIZE[::-1]),
    "JPEG, EXIF orientation 8": (lambda f: jpeg_with_orientation(f, 8), 200, None, FACE_SIZE[::-1]),
    "JPEG, EXIF orientation 9 (not a valid value)": (lambda f: jpeg_with_orientation(f, 9), 200, None, FACE_SIZE),
    "30000x30000 PNG, real zeros (~110 KB)": (lambda f: png_of_zeros(30000, 30000, 1), 413, "image_too_large", None),
    "7000x7000 PNG of zeros, just over the limit": (lambda f: png_of_zeros(7000, 7000), 413, "image_too_large", None),
    "6000x6000 RGBA 16-bit transparent PNG of zeros (bomb under the limits)": (
        lambda f: png_of_zeros(6000, 6000, 16, 6, 4),
        200,
        None,
        (6000, 6000),
    ),
    "6300x6300 RGB PNG of zeros (bomb under the limits)": (
        lambda f: png_of_zeros(6300, 6300, 8, 2, 3),
        200,
        None,
        (6300, 6300),
    ),
    "1x1 JPEG": (lambda f: cv2.imencode(".jpg", ONE)[1].tobytes(), 200, None, (1, 1)),
    "1x1 WebP": (lambda f: cv2.imencode(".webp", ONE)[1].tobytes(), 200, None, (1, 1)),
    "1x1 BMP": (lambda f: cv2.imencode(".bmp", ONE)[1].tobytes(), 200, None, (1, 1)),
    "1x1 16-bit grey PNG": (lambda f: _png16(ONE[:, :, 0]), 200, None, (1, 1)),
    "PNG whose IHDR claims more pixels than its data": (lambda f: png_lying_ihdr(100, 10), 400, "invalid_image", None),
    "PNG whose IHDR claims fewer pixels than its data": (lambda f: png_lying_ihdr(10, 100), 200, None, (10, 10)),
    "PNG whose IHDR declares 0 wide": (lambda f: png_lying_ihdr(0, 10), 400, "invalid_image", None),
    "JPEG of only SOI and EOI": (lambda f: b"\xff\xd8\xff\xd9", 400, "invalid_image", None),
    "JPEG of only SOI": (lambda f: b"\xff\xd8\xff", 400, "invalid_image", None),
    "SVG": (lambda f: SVG, 400, "invalid_image", None),
    "PDF": (lambda f: PDF, 400, "invalid_image", None),
}


@pytest.mark.parametrize("name", list(CORPUS))
async def test_named_corpus(fuzz, photo, name):
    api, key = fuzz
    build, status, code, size = CORPUS[name]
    data = build(cv2.resize(photo, FACE_SIZE, interpolation=cv2.INTER_AREA))
    for transport in ("multipart", "json"):
        what = f"corpus {name} via {transport}"
        if transport == "multipart":
            r = await post(api, key, what, data=data)
        else:
            r = await post(api, key, what, json_image=data_url(data))
        assert r.status_code == status, f"{what}: {r.text[:300]}"
        if code:
            assert r.json()["error"]["code"] == code, f"{what}: {r.text[:300]}"
        else:
            assert (r.json()["image"]["width"], r.json()["image"]["height"]) == size, what


@pytest.mark.parametrize(
    "content, content_type, status, code",
    [
        (b"", None, 415, "unsupported_media_type"),
        (b"", "multipart/form-data; boundary=xyz", 422, "invalid_request"),
        (b"--xyz--\r\n", "multipart/form-data; boundary=xyz", 422, "invalid_request"),
        (b'{"image": "data:base64,AAAA"}', "application/json", 400, "invalid_base64"),  # not a data URL
        (b'{"image": "data:image/jpeg;base64,"}', "application/json", 400, "invalid_image"),
    ],
)
async def test_empty_bodies_and_images(fuzz, content, content_type, status, code):
    api, key = fuzz
    headers = {**key, **({"Content-Type": content_type} if content_type else {})}
    r = await post(api, headers, f"empty {content!r} {content_type}", content=content)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
