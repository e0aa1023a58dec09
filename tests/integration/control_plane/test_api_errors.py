"""Bad input through the real app, the real Redis and the real ensemble: every refusal a 4xx in the one error shape
with its documented code. Every response in this module is also checked (by a response hook) for: no 5xx, an
X-Request-ID header, the error shape on every 4xx, and no echo of the submitted image strings or bytes."""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from control_plane.core.errors import ERROR_CODES
from tests.images import encode, png_header_only, t1_path

pytestmark = pytest.mark.integration

DETECT = "/v1/faces/detect"
COMPARE = "/v1/faces/compare"
SMALL_BODY = 100_000


# --- checks applied to every response of the module -----------------------------------------------------------


def _submitted_secrets(request: httpx.Request) -> tuple[list[str], list[bytes]]:
    """Strings (from a JSON body) and byte runs (from any other body) that must not come back."""
    try:
        content = request.content
    except httpx.RequestNotRead:  # a streamed body: its chunks are checked by the test itself
        return [], []
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            payload = json.loads(content)
        except (ValueError, RecursionError):
            return [], [content[i : i + 32] for i in range(0, max(len(content) - 32, 1), 4096) if len(content) >= 64]
        strings: list[str] = []

        def walk(value):
            if isinstance(value, str) and len(value) >= 16:
                strings.extend({value, value[:40], value[-40:], value[len(value) // 2 :][:40]})
            elif isinstance(value, dict):
                for v in value.values():  # keys are field names: an error may name them
                    walk(v)
            elif isinstance(value, list):
                for v in value:
                    walk(v)

        walk(payload)
        return strings, []
    if len(content) < 64:
        return [], []
    runs = [content[i : i + 32] for i in range(0, len(content) - 32, max(len(content) // 16, 1))]
    return [base64.b64encode(r).decode()[:40] for r in runs], runs


async def _check_response(response: httpx.Response) -> None:
    await response.aread()
    request = response.request
    assert response.status_code < 500, f"{request.method} {request.url.path}: {response.status_code} {response.text}"
    assert response.headers.get("x-request-id"), f"no X-Request-ID on {request.url.path}"
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        assert set(body["error"]) == {"code", "message", "details"}, body
        assert ERROR_CODES[body["error"]["code"]] == response.status_code, body
        assert isinstance(body["error"]["details"], dict), body
    strings, runs = _submitted_secrets(request)
    text = response.text
    for s in strings:
        assert s not in text, f"the response echoes part of the submitted input: {text[:300]}"
    for r in runs:
        assert r not in response.content, f"the response echoes submitted bytes: {text[:300]}"


@pytest.fixture
def make_api(make_api):
    """The conftest's apps, every client with the module's response checks."""

    async def factory(**overrides):
        api = await make_api(**overrides)
        api.client.event_hooks["response"].append(_check_response)
        return api

    return factory


@pytest.fixture
async def key(api) -> dict:
    return {"X-API-Key": await api.new_key()}


# --- images ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def t1() -> bytes:
    return t1_path().read_bytes()


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (32, 48, 3), dtype=np.uint8)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def pil_bytes(img_bgr: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img_bgr[:, :, ::-1])).save(out, fmt)
    return out.getvalue()


def error(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["code"] == code, body
    return body


# --- the body: media type, JSON, schema --------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b'{"image": "abc"', b"{image: 1}", b"", b"\xff\xfe{}", b"[" * 100_000])
async def test_malformed_json(api, key, content):
    r = await api.client.post(DETECT, content=content, headers={**key, "Content-Type": "application/json"})
    assert error(r, 400, "invalid_json")["details"] == {}


@pytest.mark.parametrize("payload", [[], ["abc"], 42, "image", None, True])
async def test_json_that_is_not_an_object(api, key, payload):
    headers = {**key, "Content-Type": "application/json"}
    r = await api.client.post(DETECT, content=json.dumps(payload).encode(), headers=headers)
    assert error(r, 422, "invalid_request")["details"]["errors"]


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded", "image/jpeg"])
async def test_unsupported_content_type(api, key, t1, content_type):
    headers = {**key, **({"Content-Type": content_type} if content_type else {})}
    content = t1 if content_type == "image/jpeg" else json.dumps({"image": b64(t1)}).encode()
    r = await api.client.post(DETECT, content=content, headers=headers)
    assert r.request.headers.get("content-type") == content_type
    error(r, 415, "unsupported_media_type")


async def test_missing_image_json(api, key):
    r = await api.client.post(DETECT, json={"max_faces": 2}, headers=key)
    errors = error(r, 422, "invalid_request")["details"]["errors"]
    assert [(e["loc"], e["type"]) for e in errors] == [(["image"], "missing")]


async def test_missing_image_multipart(api, key, t1):
    r = await api.client.post(DETECT, data={"max_faces": "2"}, files={"picture": ("p.txt", b"hello")}, headers=key)
    assert error(r, 422, "invalid_request")["details"]["errors"][0]["loc"] == ["body", "image"]
    r = await api.client.post(COMPARE, files={"image_a": ("t1.jpg", t1)}, headers=key)
    assert error(r, 422, "invalid_request")["details"]["errors"][0]["loc"] == ["body", "image_b"]


async def test_unknown_field(api, key, t1):
    image = b64(t1)
    r = await api.client.post(DETECT, json={"image": image, "colour": "blue", "extra": image}, headers=key)
    errors = error(r, 422, "invalid_request")["details"]["errors"]
    assert sorted(e["loc"][0] for e in errors) == ["colour", "extra"]
    assert {e["type"] for e in errors} == {"extra_forbidden"}
    # the same in a form
    r = await api.client.post(DETECT, files={"image": ("t1.jpg", t1)}, data={"colour": "blue"}, headers=key)
    assert error(r, 422, "invalid_request")["details"]["errors"][0]["loc"] == ["colour"]


@pytest.mark.parametrize(
    "options, loc",
    [
        ({"detection_threshold": 2}, "detection_threshold"),
        ({"detection_threshold": 0}, "detection_threshold"),
        ({"detection_threshold": "high"}, "detection_threshold"),
        ({"max_faces": 0}, "max_faces"),
        ({"max_faces": -3}, "max_faces"),
        ({"max_faces": 1.5}, "max_faces"),
    ],
)
async def test_option_out_of_range(api, key, t1, options, loc):
    r = await api.client.post(DETECT, json={"image": b64(t1), **options}, headers=key)
    assert [e["loc"] for e in error(r, 422, "invalid_request")["details"]["errors"]] == [[loc]]
    form = {k: str(v) for k, v in options.items()}
    r = await api.client.post(DETECT, files={"image": ("t1.jpg", t1)}, data=form, headers=key)
    assert [e["loc"] for e in error(r, 422, "invalid_request")["details"]["errors"]] == [[loc]]


@pytest.mark.parametrize("value", [2**31, 2**63])
async def test_max_faces_past_int32(api, key, t1, value):
    r = await api.client.post(DETECT, json={"image": b64(t1), "max_faces": value}, headers=key)
    error(r, 422, "invalid_request")


@pytest.mark.parametrize("value", [12345, 1.5, ["abc"], {"data": "abc"}, None, True])
async def test_image_not_a_string(api, key, t1, value):
    r = await api.client.post(DETECT, json={"image": value}, headers=key)
    errors = error(r, 422, "invalid_request")["details"]["errors"]
    assert errors and all(e["loc"][0] == "image" for e in errors)


async def test_validation_errors_do_not_echo_the_input(api, key, t1):
    image = b64(t1)
    for payload in (
        {"image": [image]},
        {"image": {"nested": image}},
        {"image": image, "mode": image},
        {"image": image, "detection_threshold": image},
        {"image": image, "max_faces": image},
    ):
        r = await api.client.post(DETECT, json=payload, headers=key)
        error(r, 422, "invalid_request")
        assert image[:40] not in r.text and image[-40:] not in r.text
    # FastAPI's own body validation (the admin route) goes through the same scrubbing
    r = await api.client.post(
        "/v1/admin/keys",
        json={"name": image, "secret": image},
        headers={"Authorization": "Bearer admin-token-for-tests"},
    )
    error(r, 422, "invalid_request")
    assert image[:40] not in r.text


# --- the image: base64, data URLs, formats, sizes ----------------------------------------------------------------


@pytest.mark.parametrize("value", ["!!!not base64!!!", "A", "data:image/jpeg;base64,@@@@", "héllo wörld"])
async def test_bad_base64(api, key, value):
    r = await api.client.post(DETECT, json={"image": value}, headers=key)
    assert error(r, 400, "invalid_base64")["details"] == {"field": "image"}


async def test_data_url_without_base64_marker(api, key):
    r = await api.client.post(DETECT, json={"image": "data:image/png,%89PNG"}, headers=key)
    assert error(r, 400, "invalid_base64")["details"] == {"field": "image"}


async def test_data_url_of_text(api, key, t1):
    r = await api.client.post(DETECT, json={"image": "data:text/plain;base64," + b64(t1)}, headers=key)
    assert error(r, 415, "unsupported_media_type")["details"] == {"field": "image", "media_type": "text/plain"}


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
async def test_gif_and_tiff(api, key, picture, fmt):
    data = pil_bytes(picture, fmt) if fmt == "GIF" else encode(picture, ".tiff")
    assert Image.open(io.BytesIO(data)).format == fmt  # real, decodable files of that format
    r = await api.client.post(DETECT, json={"image": b64(data)}, headers=key)
    assert error(r, 415, "unsupported_media_type")["details"] == {"field": "image"}
    r = await api.client.post(DETECT, files={"image": (f"x.{fmt.lower()}", data, f"image/{fmt.lower()}")}, headers=key)
    error(r, 415, "unsupported_media_type")


async def test_truncated_jpeg(api, key, t1):
    half = t1[: len(t1) // 2]
    r = await api.client.post(DETECT, json={"image": b64(half)}, headers=key)
    error(r, 400, "invalid_image")
    r = await api.client.post(DETECT, files={"image": ("half.jpg", half, "image/jpeg")}, headers=key)
    error(r, 400, "invalid_image")


@pytest.mark.parametrize("seed", [0, 1])
async def test_random_bytes(api, key, seed):
    data = b"\x00" + np.random.default_rng(seed).bytes(20_000)
    r = await api.client.post(DETECT, json={"image": b64(data)}, headers=key)
    assert error(r, 400, "invalid_image")["details"] == {"field": "image"}
    r = await api.client.post(DETECT, files={"image": ("r.bin", data)}, headers=key)
    error(r, 400, "invalid_image")


async def test_empty_image(api, key):
    r = await api.client.post(DETECT, json={"image": ""}, headers=key)
    error(r, 400, "invalid_image")
    r = await api.client.post(DETECT, files={"image": ("e.png", b"", "image/png")}, headers=key)
    error(r, 400, "invalid_image")


async def test_one_pixel_png_is_valid(api, key):
    one = encode(np.full((1, 1, 3), 200, np.uint8), ".png")
    r = await api.client.post(DETECT, json={"image": b64(one)}, headers=key)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["face_count"] == 0 and body["faces"] == []
    assert body["image"] == {"format": "png", "width": 1, "height": 1}


@pytest.mark.parametrize("size", [30000, 10000])
async def test_bomb_header_refused_before_decoding(api, key, size):
    bomb = png_header_only(size, size)
    r = await api.client.post(DETECT, json={"image": b64(bomb)}, headers=key)
    details = error(r, 413, "image_too_large")["details"]
    assert details == {"field": "image", "width": size, "height": size, "max_pixels": api.settings.max_image_pixels}
    # refused before the rate limiter and the ensemble: nothing was charged
    assert "RateLimit-Remaining" not in r.headers
    r = await api.client.post(DETECT, files={"image": ("bomb.png", bomb, "image/png")}, headers=key)
    error(r, 413, "image_too_large")


# --- body size ---------------------------------------------------------------------------------------------------


async def test_body_over_the_limit_with_content_length(make_api):
    api = await make_api(max_body_bytes=SMALL_BODY)
    key = {"X-API-Key": await api.new_key()}
    big = b64(np.random.default_rng(0).bytes(SMALL_BODY))
    r = await api.client.post(DETECT, json={"image": big}, headers=key)
    assert int(r.request.headers["content-length"]) > SMALL_BODY
    assert error(r, 413, "payload_too_large")["details"] == {"limit": SMALL_BODY}
    r = await api.client.post(DETECT, files={"image": ("big.bin", big.encode())}, headers=key)
    error(r, 413, "payload_too_large")
    # just under the limit is read (and then refused for what it is, not for its size)
    r = await api.client.post(DETECT, json={"image": big[: SMALL_BODY - 100]}, headers=key)
    error(r, 400, "invalid_image")


@pytest.mark.parametrize("content_type", ["application/json", "multipart/form-data; boundary=xyz"])
async def test_streamed_body_over_the_limit(make_api, content_type):
    api = await make_api(max_body_bytes=SMALL_BODY)
    key = {"X-API-Key": await api.new_key()}
    sent = []
    chunk = b"A" * 8192

    async def body():
        yield b'{"image": "' if content_type == "application/json" else b"--xyz\r\n"
        for _ in range(1000):  # 8 MB if it were all read
            sent.append(len(chunk))
            yield chunk

    r = await api.client.post(DETECT, content=body(), headers={**key, "Content-Type": content_type})
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert error(r, 413, "payload_too_large")["details"] == {"limit": SMALL_BODY}
    assert sum(sent) < 2 * SMALL_BODY  # the app stopped reading soon after the limit
    assert "AAAAAAAAAAAAAAAA" not in r.text


# --- routing -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, path", [("GET", "/v1/nope"), ("POST", "/v1/faces/nope"), ("GET", "/")])
async def test_unknown_route(api, method, path):
    r = await api.client.request(method, path)
    error(r, 404, "not_found")


@pytest.mark.parametrize("method, path", [("GET", DETECT), ("PUT", COMPARE), ("DELETE", "/v1/faces/batch")])
async def test_wrong_method(api, key, method, path):
    r = await api.client.request(method, path, headers=key)
    error(r, 405, "method_not_allowed")
    assert "POST" in r.headers["allow"]


# --- compare: the bad image is named ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, status, code",
    [
        ("!!!", 400, "invalid_base64"),
        ("data:text/plain;base64,QUJD", 415, "unsupported_media_type"),
        (b64(b"\x00" + bytes(500)), 400, "invalid_image"),
        (b64(png_header_only(30000, 30000)), 413, "image_too_large"),
    ],
)
@pytest.mark.parametrize("field", ["image_a", "image_b"])
async def test_compare_names_the_bad_image(api, key, t1, bad, status, code, field):
    other = "image_b" if field == "image_a" else "image_a"
    r = await api.client.post(COMPARE, json={other: b64(t1), field: bad}, headers=key)
    assert error(r, status, code)["details"]["field"] == field


async def test_compare_multipart_names_the_bad_image(api, key, t1, picture):
    files = {"image_a": ("t1.jpg", t1, "image/jpeg"), "image_b": ("x.gif", pil_bytes(picture, "GIF"), "image/gif")}
    r = await api.client.post(COMPARE, files=files, headers=key)
    assert error(r, 415, "unsupported_media_type")["details"]["field"] == "image_b"


async def test_compare_names_the_image_the_ensemble_refused(api, key, t1):
    r = await api.client.post(COMPARE, json={"image_a": b64(t1), "image_b": b64(t1[: len(t1) // 2])}, headers=key)
    assert error(r, 400, "invalid_image")["details"].get("field") == "image_b"


# --- odd multipart -----------------------------------------------------------------------------------------------


async def test_multipart_without_boundary(api, key):
    r = await api.client.post(DETECT, content=b"--x\r\n", headers={**key, "Content-Type": "multipart/form-data"})
    error(r, 422, "invalid_request")


async def test_multipart_garbage(api, key):
    headers = {**key, "Content-Type": "multipart/form-data; boundary=xyz"}
    r = await api.client.post(DETECT, content=b"this is not multipart at all", headers=headers)
    error(r, 422, "invalid_request")


async def test_multipart_non_ascii_part_headers(api, key, t1):
    body = (
        b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="\xe9t\xe9.jpg"\r\n'
        b"Content-Type: image/\xff\xfe\r\n\r\n" + t1 + b"\r\n--xyz--\r\n"
    )
    r = await api.client.post(
        DETECT, content=body, headers={**key, "Content-Type": "multipart/form-data; boundary=xyz"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["face_count"] == 6


async def test_multipart_non_utf8_field(api, key, t1):
    r = await api.client.post(DETECT, files={"image": ("t1.jpg", t1), "max_faces": (None, b"\xff\xfe")}, headers=key)
    error(r, 422, "invalid_request")
