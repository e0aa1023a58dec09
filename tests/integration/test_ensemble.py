"""The `face_analysis` ensemble on the real embedded Triton with the test pack's real model files."""

import cv2
import numpy as np
import pytest

from face_analysis.client import EnsembleError
from tests.images import encode, face_mosaic, jpeg_with_orientation, png_header_only, skimage_image, t1_path
from tests.integration.helpers import match, read

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def t1():
    return read(t1_path())


@pytest.fixture(scope="module")
def mosaic_sources(client, t1):
    sources = []
    for img in (t1, read(skimage_image("astronaut.png"))):
        sources.append((img, client.analyze(encode(img)).boxes))
    return sources


def test_t1_has_six_confident_faces(client):
    result = client.analyze(t1_path().read_bytes())
    assert len(result) == 6
    assert (result.scores > 0.8).all()
    assert result.boxes.shape == (6, 4) and result.landmarks.shape == (6, 5, 2)
    assert result.embeddings.shape == (6, 128)
    np.testing.assert_allclose(np.linalg.norm(result.embeddings, axis=1), 1.0, atol=1e-5)
    assert result.gender is None and result.age is None  # the test pack has no attribute model
    # six different people: no two embeddings alike
    sims = result.embeddings @ result.embeddings.T
    assert (sims[~np.eye(6, dtype=bool)] < 0.5).all()


def test_an_image_without_faces_succeeds_with_zero_rows(client):
    result = client.analyze(skimage_image("coffee.png").read_bytes())
    assert len(result) == 0
    assert result.boxes.shape == (0, 4) and result.landmarks.shape == (0, 5, 2)
    assert result.embeddings.shape == (0, 128) and result.scores.shape == (0,)


@pytest.mark.parametrize("shape", [(1, 1), (2, 3000), (3000, 2), (7, 5)])
def test_tiny_and_extreme_images_are_answered(client, shape):
    img = np.random.default_rng(0).integers(0, 256, shape + (3,), dtype=np.uint8)
    assert len(client.analyze(encode(img))) == 0


@pytest.mark.parametrize(
    "make,code",
    [
        (lambda: b"this is not an image", "invalid_image"),
        (lambda: t1_path().read_bytes()[:40000], "invalid_image"),
        (lambda: skimage_image("no_time_for_that_tiny.gif").read_bytes(), "unsupported_media_type"),
        (lambda: png_header_only(30000, 30000), "image_too_large"),
        (lambda: b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "invalid_image"),
    ],
    ids=["garbage", "truncated-jpeg", "gif", "png-bomb", "corrupt-png"],
)
def test_bad_images_are_invalid_argument_with_a_stable_code(client, make, code):
    with pytest.raises(EnsembleError) as err:
        client.analyze(make())
    assert err.value.status == "StatusCode.INVALID_ARGUMENT"
    assert err.value.code == code
    assert err.value.is_client_error and len(err.value.message) > 10


def test_the_server_keeps_serving_after_bad_input(client):
    with pytest.raises(EnsembleError):
        client.analyze(b"\xff\xd8\xff garbage")
    assert len(client.analyze(t1_path().read_bytes())) == 6


def test_exif_rotated_jpeg_gives_the_upright_faces(client, t1):
    upright = client.analyze(jpeg_with_orientation(t1, 1))
    # stored turned a quarter left; the tag (6) says "turn right to view"
    rotated = client.analyze(jpeg_with_orientation(np.ascontiguousarray(np.rot90(t1, 1)), 6))
    assert len(upright) == len(rotated) == 6
    for i, j, overlap in match(upright.boxes, rotated.boxes):
        assert overlap > 0.9
        assert np.abs(upright.landmarks[i] - rotated.landmarks[j]).max() < 3.0


def test_a_hundred_faces_in_one_image(client, mosaic_sources):
    result = client.analyze(encode(face_mosaic(mosaic_sources, 100)))
    assert len(result) == 100
    assert result.embeddings.shape == (100, 128)
    assert len(client.analyze(encode(face_mosaic(mosaic_sources, 100)), max_faces=10)) == 10


def test_the_face_cap_bounds_crowds(client, mosaic_sources):
    crowd = encode(face_mosaic(mosaic_sources, 150, tile=96))
    assert len(client.analyze(crowd, max_faces=1000)) == client.pack_info().max_faces == 128


def test_threshold_is_per_request(client):
    data = t1_path().read_bytes()
    default = client.analyze(data)
    strict = client.analyze(data, threshold=0.87)
    assert 0 < len(strict) < len(default)
    assert (strict.scores >= 0.87).all()
    for bad in ({"threshold": 1.5}, {"threshold": 0.0}, {"threshold": float("nan")}, {"max_faces": -1}):
        with pytest.raises(EnsembleError) as err:
            client.analyze(data, **bad)
        assert err.value.code == "invalid_argument", bad


def test_large_images_are_detected_at_full_resolution(client, t1):
    small = client.analyze(encode(t1, ".jpg", IMWRITE_JPEG_QUALITY=95))
    big = client.analyze(
        encode(cv2.resize(t1, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC), ".jpg", IMWRITE_JPEG_QUALITY=95)
    )
    assert len(big) == len(small) == 6
    pairs = match(small.boxes * 4, big.boxes)
    assert all(overlap > 0.9 for _, _, overlap in pairs)
    # crops come from the full-resolution pixels: the same people
    sims = [float(small.embeddings[i] @ big.embeddings[j]) for i, j, _ in pairs]
    assert min(sims) > 0.8


@pytest.mark.parametrize("variant", ["grey-png", "rgba-png", "16bit-png", "webp", "bmp"])
def test_image_variants(client, t1, variant):
    make = {
        "grey-png": lambda: encode(cv2.cvtColor(t1, cv2.COLOR_BGR2GRAY)),
        "rgba-png": lambda: encode(np.dstack([t1, np.full(t1.shape[:2], 255, np.uint8)])),
        "16bit-png": lambda: encode(t1.astype(np.uint16) * 257),
        "webp": lambda: encode(t1, ".webp", IMWRITE_WEBP_QUALITY=95),
        "bmp": lambda: encode(t1, ".bmp"),
    }[variant]
    result = client.analyze(make())
    assert len(result) == 6


def test_pack_info_describes_the_served_pack(client):
    info = client.pack_info()
    assert (info.pack, info.embedding_size, info.attributes) == ("test", 128, False)
