"""What a client sends becoming checked image bytes: base64 and data URLs, format sniffing and header checks,
multipart parsing. Every refusal is an ApiError with a documented code and that code's documented status."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from control_plane.api.bodies import parse_multipart
from control_plane.core.errors import ERROR_CODES, ApiError
from control_plane.services.images import CheckedImage, check_image, decode_image_string
from tests.images import encode, jpeg_with_orientation, png_header_only

W, H = 40, 24  # stored width and height of the test picture
LIMIT = 40_000_000


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def png(picture) -> bytes:
    return encode(picture, ".png")


def pil_bytes(img_bgr: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img_bgr[:, :, ::-1])).save(out, fmt)
    return out.getvalue()


def refused(code: str, fn, *args, **kwargs) -> ApiError:
    """Call `fn`, expect an ApiError with `code` and that code's documented status; return it."""
    with pytest.raises(ApiError) as info:
        fn(*args, **kwargs)
    exc = info.value
    assert exc.code == code, (exc.code, exc.message)
    assert exc.status == ERROR_CODES[code]
    body = exc.body()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return exc


# --- decode_image_string ---------------------------------------------------------------------------------------


def test_plain_base64(png):
    assert decode_image_string(base64.b64encode(png).decode()) == png


def test_urlsafe_alphabet():
    data = bytes(range(256)) * 3  # every byte value: the encoding holds '+' and '/' in the standard alphabet
    std = base64.b64encode(data).decode()
    safe = base64.urlsafe_b64encode(data).decode()
    assert "+" in std and "/" in std and safe != std
    assert decode_image_string(safe) == data


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 100, 101, 102])
def test_padding_may_be_omitted(size):
    data = bytes(range(size))
    assert decode_image_string(base64.b64encode(data).decode().rstrip("=")) == data
    assert decode_image_string(base64.urlsafe_b64encode(data).decode().rstrip("=")) == data


def test_whitespace_and_newlines_are_ignored(png):
    mime = base64.encodebytes(png).decode()  # MIME style: a newline every 76 characters
    assert "\n" in mime
    assert decode_image_string(mime) == png
    spaced = " \t" + "\r\n ".join(base64.b64encode(png).decode()[i : i + 10] for i in range(0, 200, 10))
    assert decode_image_string(spaced) == png[:150]


@pytest.mark.parametrize("mime", ["image/png", "image/jpeg", "image/webp", "image/bmp", "IMAGE/PNG", "image/x-foo"])
def test_data_urls_of_images(png, mime):
    assert decode_image_string(f"data:{mime};base64," + base64.b64encode(png).decode()) == png


def test_data_url_with_parameters(png):
    value = "data:image/png;charset=utf-8;name=a.png;base64," + base64.b64encode(png).decode()
    assert decode_image_string(value) == png


@pytest.mark.parametrize(
    "prefix, media_type",
    [
        ("data:text/plain;base64,", "text/plain"),
        ("data:application/octet-stream;base64,", "application/octet-stream"),
        ("data:;base64,", ""),  # no type at all means text/plain
        ("data:text/plain,", "text/plain"),
    ],
)
def test_data_url_of_a_non_image_type(png, prefix, media_type):
    exc = refused("unsupported_media_type", decode_image_string, prefix + base64.b64encode(png).decode(), "image_b")
    assert exc.details == {"field": "image_b", "media_type": media_type}


def test_data_url_without_base64_marker():
    exc = refused("invalid_base64", decode_image_string, "data:image/png,%89PNG%0D%0A", "image_a")
    assert exc.details == {"field": "image_a"}


@pytest.mark.parametrize(
    "value",
    ["not base64 at all!", "A", "AAAAA", "QUJD*RA==", "data:image/png;base64,%%%%", "QQ==QQ==QQ", "\x00\x01"],
)
def test_garbage_is_invalid_base64(value):
    exc = refused("invalid_base64", decode_image_string, value, "images[3]")
    assert exc.details == {"field": "images[3]"}
    assert value not in exc.message


@pytest.mark.parametrize("value", ["", "   ", "\n", "data:image/png;base64,"])
def test_empty_is_invalid_image(value):
    exc = refused("invalid_image", decode_image_string, value)
    assert exc.details == {"field": "image"}


@pytest.mark.parametrize("value", ["héllo", "QUJD\u00a0RA==", "data:image/png;base64,QUJD€", "😀😀😀😀"])
def test_non_ascii_is_invalid_base64(value):
    refused("invalid_base64", decode_image_string, value)


def test_non_string_is_invalid_image():
    refused("invalid_image", decode_image_string, None)  # type: ignore[arg-type]


# --- check_image -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, make",
    [
        ("jpeg", lambda img: encode(img, ".jpg")),
        ("png", lambda img: encode(img, ".png")),
        ("webp", lambda img: encode(img, ".webp")),
        ("bmp", lambda img: encode(img, ".bmp")),
        ("png", lambda img: pil_bytes(img, "PNG")),
        ("webp", lambda img: pil_bytes(img, "WEBP")),
    ],
)
def test_supported_formats(picture, fmt, make):
    data = make(picture)
    checked = check_image(data, LIMIT)
    assert checked == CheckedImage(data, fmt, W, H)
    assert checked.info() == {"format": fmt, "width": W, "height": H}


@pytest.mark.parametrize("orientation, size", [(1, (W, H)), (3, (W, H)), (5, (H, W)), (6, (H, W)), (8, (H, W))])
def test_exif_orientation(picture, orientation, size):
    checked = check_image(jpeg_with_orientation(picture, orientation), LIMIT)
    assert checked.format == "jpeg"
    assert (checked.width, checked.height) == size


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_gif_and_tiff_are_unsupported(picture, fmt):
    exc = refused("unsupported_media_type", check_image, pil_bytes(picture, fmt), LIMIT, "image_a")
    assert exc.details == {"field": "image_a"}
    assert fmt in exc.message


def test_big_endian_tiff_is_unsupported(picture):
    refused("unsupported_media_type", check_image, b"MM\x00*" + bytes(64), LIMIT)


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_are_invalid_image(seed):
    data = b"\x00" + np.random.default_rng(seed).bytes(4096)  # the leading zero rules out a lucky signature
    exc = refused("invalid_image", check_image, data, LIMIT, "images[0]")
    assert exc.details == {"field": "images[0]"}


def test_empty_bytes_are_invalid_image():
    refused("invalid_image", check_image, b"", LIMIT)


@pytest.mark.parametrize("cut", [8, 12, 20, 29])
def test_truncated_png_header_is_invalid_image(png, cut):
    refused("invalid_image", check_image, png[:cut], LIMIT)


def test_signature_only_jpeg_is_invalid_image():
    refused("invalid_image", check_image, b"\xff\xd8\xff" + bytes(13), LIMIT)


def test_bomb_above_pillows_own_ceiling_is_image_too_large():
    # 900 Mpx: past Pillow's DecompressionBombError threshold, refused from the header alone with full details
    exc = refused("image_too_large", check_image, png_header_only(30000, 30000), LIMIT, "image_b")
    assert exc.details == {"field": "image_b", "width": 30000, "height": 30000, "max_pixels": LIMIT}


def test_bomb_below_pillows_ceiling_is_image_too_large():
    exc = refused("image_too_large", check_image, png_header_only(10000, 10000), LIMIT)
    assert exc.details == {"field": "image", "width": 10000, "height": 10000, "max_pixels": LIMIT}


def test_pixel_limit_is_inclusive(png):
    assert check_image(png, W * H).width == W
    exc = refused("image_too_large", check_image, png, W * H - 1)
    assert exc.details == {"field": "image", "width": W, "height": H, "max_pixels": W * H - 1}


def test_pixel_limit_uses_the_stored_size_whatever_the_orientation(picture):
    data = jpeg_with_orientation(picture, 6)
    assert (check_image(data, W * H).width, check_image(data, W * H).height) == (H, W)
    refused("image_too_large", check_image, data, W * H - 1)


# --- parse_multipart ---------------------------------------------------------------------------------------------


def multipart(files=None, data=None) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://api/", files=files, data=data)
    return request.read(), request.headers["content-type"]


def test_two_file_parts(png):
    body, ctype = multipart(files=[("image_a", ("a.png", png, "image/png")), ("image_b", ("b.bin", b"\r\n--x", None))])
    parts = parse_multipart(body, ctype)
    assert [(p.name, p.filename, bytes(p.data)) for p in parts] == [
        ("image_a", "a.png", png),
        ("image_b", "b.bin", b"\r\n--x"),
    ]
    assert parts[0].content_type == "image/png"


def test_file_and_text_field(png):
    body, ctype = multipart(files={"image": ("t.png", png, "image/png")}, data={"max_faces": "3"})
    parts = {p.name: p for p in parse_multipart(body, ctype)}
    assert set(parts) == {"image", "max_faces"}
    assert bytes(parts["image"].data) == png and parts["image"].filename == "t.png"
    assert parts["max_faces"].data.decode() == "3" and parts["max_faces"].filename is None


def test_repeated_file_parts_keep_their_order():
    body, ctype = multipart(files=[("images", (f"{i}.bin", bytes([i]) * 10, "image/png")) for i in range(4)])
    assert [bytes(p.data) for p in parse_multipart(body, ctype)] == [bytes([i]) * 10 for i in range(4)]


@pytest.mark.parametrize(
    "ctype", ["multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; charset=x"]
)
def test_no_boundary_is_invalid_request(png, ctype):
    body, _ = multipart(files={"image": ("t.png", png, "image/png")})
    refused("invalid_request", parse_multipart, body, ctype)


@pytest.mark.parametrize(
    "body",
    [
        b"garbage",
        b"--b\r\ngarbage\r\n\r\nabc\r\n--b--\r\n",
        b"--bX\r\n",
        b"--b\r\n: x\r\n\r\nabc\r\n--b--\r\n",
        b"--b\r\nContent-Disposition: form-data\r\n\r\nabc\r\n--b\r\n\x00\r\n",
    ],
)
def test_garbage_is_invalid_request(body):
    exc = refused("invalid_request", parse_multipart, body, "multipart/form-data; boundary=b")
    assert exc.message.startswith("malformed multipart body")


def test_non_ascii_part_headers_do_not_crash():
    body = (
        b'--b\r\nContent-Disposition: form-data; name="image"; filename="\xe9t\xe9.png"\r\n'
        b"Content-Type: image/\xff\xfe\r\n\r\nabc\r\n--b--\r\n"
    )
    (part,) = parse_multipart(body, "multipart/form-data; boundary=b")
    assert part.name == "image" and bytes(part.data) == b"abc"
