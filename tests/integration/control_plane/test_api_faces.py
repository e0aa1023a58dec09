"""The face endpoints on real images, through the real ensemble, in JSON and multipart form."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from tests.images import encode, skimage_image, t1_path

pytestmark = pytest.mark.integration


def data_url(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def t1() -> bytes:
    return t1_path().read_bytes()


def crop_face(image: bytes, box: dict, margin: float = 0.6, scale: float = 2.0) -> bytes:
    """One face with some context, resized: a different image of the same person."""
    img = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    w, h = box["x2"] - box["x1"], box["y2"] - box["y1"]
    x1, y1 = int(max(0, box["x1"] - margin * w)), int(max(0, box["y1"] - margin * h))
    x2, y2 = int(min(img.shape[1], box["x2"] + margin * w)), int(min(img.shape[0], box["y2"] + margin * h))
    crop = img[y1:y2, x1:x2]
    return encode(cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC), ".png")


async def test_detect_matches_the_ensemble(api, client, t1):
    key = await api.new_key()
    r = await api.client.post("/v1/faces/detect", json={"image": data_url(t1)}, headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    body = r.json()
    direct = client.analyze(t1)
    assert body["pack"] == "test"
    assert body["image"] == {"format": "jpeg", "width": 1280, "height": 886}
    assert body["face_count"] == len(direct) == 6
    for face, box, score, lms in zip(body["faces"], direct.boxes, direct.scores, direct.landmarks):
        assert [face["box"][k] for k in ("x1", "y1", "x2", "y2")] == pytest.approx(box.tolist(), abs=1e-3)
        assert face["score"] == pytest.approx(float(score), abs=1e-6)
        assert np.allclose(face["landmarks"], lms, atol=1e-3)
        # the test pack has no attribute model: nothing is invented, and detect carries no embedding
        assert set(face) == {"box", "score", "landmarks"}
    assert r.headers["X-Cache"] == "miss"
    assert r.headers["RateLimit-Limit"] == "50"


async def test_multipart_and_plain_base64_give_the_same_answer(api, t1):
    key = await api.new_key()
    h = {"Authorization": f"Bearer {key}"}
    as_json = await api.client.post("/v1/faces/detect", json={"image": base64.b64encode(t1).decode()}, headers=h)
    as_form = await api.client.post(
        "/v1/faces/detect", files={"image": ("t1.jpg", t1, "image/jpeg")}, data={"max_faces": "3"}, headers=h
    )
    assert as_json.status_code == as_form.status_code == 200, as_form.text
    assert as_form.json()["face_count"] == 3
    assert all(face in as_json.json()["faces"] for face in as_form.json()["faces"])


async def test_analyze_returns_embeddings_on_request(api, client, t1):
    key = await api.new_key()
    h = {"X-API-Key": key}
    r = await api.client.post("/v1/faces/analyze", json={"image": data_url(t1), "return_embedding": True}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["attributes"] is False and body["embedding_size"] == 128
    emb = np.array([f["embedding"] for f in body["faces"]])
    assert emb.shape == (6, 128)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)
    assert np.allclose(emb, client.analyze(t1).embeddings, atol=1e-6)
    assert all(f["gender"] is None and f["age"] is None for f in body["faces"])
    without = await api.client.post("/v1/faces/analyze", json={"image": data_url(t1)}, headers=h)
    assert "embedding" not in without.json()["faces"][0]


async def test_attributes_where_the_pack_has_them(make_api, attr_triton, t1):
    api = await make_api(triton_url=attr_triton.grpc_url)
    key = await api.new_key()
    for route in ("/v1/faces/detect", "/v1/faces/analyze"):
        r = await api.client.post(route, files={"image": ("t1.jpg", t1)}, headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        for face in r.json()["faces"]:
            assert face["gender"] in ("female", "male")
            assert 0 <= face["age"] <= 100
    assert r.json()["attributes"] is True and r.json()["pack"] == "test_attributes"


async def test_astronaut_has_one_face(api):
    key = await api.new_key()
    png = skimage_image("astronaut.png").read_bytes()
    r = await api.client.post(
        "/v1/faces/detect", json={"image": data_url(png, "image/png")}, headers={"X-API-Key": key}
    )
    assert r.status_code == 200 and r.json()["face_count"] == 1
    assert r.json()["image"]["format"] == "png"


async def test_compare_same_person_and_different_people(api, t1):
    key = await api.new_key()
    h = {"X-API-Key": key}
    faces = (await api.client.post("/v1/faces/detect", json={"image": data_url(t1)}, headers=h)).json()["faces"]
    areas = [(f["box"]["x2"] - f["box"]["x1"]) * (f["box"]["y2"] - f["box"]["y1"]) for f in faces]
    largest = int(np.argmax(areas))
    other = int(np.argsort(areas)[0])
    same = crop_face(t1, faces[largest]["box"])
    different = crop_face(t1, faces[other]["box"])

    r = await api.client.post(
        "/v1/faces/compare", json={"image_a": data_url(t1), "image_b": data_url(same, "image/png")}, headers=h
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["face_a"]["index"] == largest  # the largest face of each image by default
    assert body["faces_a"] == 6 and body["faces_b"] >= 1
    assert body["match"] is True and body["similarity"] > body["threshold"] == 0.4
    assert 50 < body["score"] <= 100
    assert "pairs" not in body

    r = await api.client.post(
        "/v1/faces/compare",
        files={"image_a": ("a.png", same), "image_b": ("b.png", different)},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["match"] is False and r.json()["score"] < 50

    # a stricter threshold than the pair's similarity turns the match off; the 0-100 score does not move
    strict = await api.client.post(
        "/v1/faces/compare",
        json={"image_a": data_url(t1), "image_b": data_url(same), "match_threshold": 0.999},
        headers=h,
    )
    assert strict.json()["match"] is False and strict.json()["score"] == body["score"]


async def test_compare_all_pairs(api, t1):
    key = await api.new_key()
    r = await api.client.post(
        "/v1/faces/compare",
        json={"image_a": data_url(t1), "image_b": data_url(t1), "mode": "all"},
        headers={"X-API-Key": key},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["pairs"]) == 36
    sims = [p["similarity"] for p in body["pairs"]]
    assert sims == sorted(sims, reverse=True)
    # every face is its own best match
    assert sum(p["face_a"]["index"] == p["face_b"]["index"] for p in body["pairs"][:6]) == 6
    assert body["similarity"] == pytest.approx(1.0, abs=1e-5)


async def test_compare_without_a_face_says_which_image(api, t1):
    key = await api.new_key()
    blank = encode(np.full((200, 200, 3), 200, np.uint8), ".png")
    r = await api.client.post(
        "/v1/faces/compare", files={"image_a": ("a.jpg", t1), "image_b": ("b.png", blank)}, headers={"X-API-Key": key}
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "no_face"
    assert r.json()["error"]["details"] == {"image": "image_b"}


async def test_batch_reports_bad_items_in_their_slots(api, t1):
    key = await api.new_key()
    faces = (
        await api.client.post("/v1/faces/detect", json={"image": data_url(t1)}, headers={"X-API-Key": key})
    ).json()["faces"]
    crop = crop_face(t1, faces[0]["box"])
    r = await api.client.post(
        "/v1/faces/batch",
        json={
            "images": [data_url(t1), data_url(crop, "image/png"), "not base64 !!", base64.b64encode(b"hello").decode()]
        },
        headers={"X-API-Key": key},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    ok = [item["ok"] for item in body["results"]]
    assert ok == [True, True, False, False]
    assert body["results"][2]["error"]["code"] == "invalid_base64"
    assert body["results"][3]["error"]["code"] == "invalid_image"
    n0 = body["results"][0]["result"]["face_count"]
    n1 = body["results"][1]["result"]["face_count"]
    assert len(body["faces"]) == n0 + n1 == len(body["similarity"])
    sim = np.array(body["similarity"])
    assert np.allclose(sim, sim.T) and np.allclose(np.diag(sim), 1, atol=1e-5)
    # the crop's face is found again among t1's faces, and it is face 0's best match there
    crop_row = next(i for i, ref in enumerate(body["faces"]) if ref["image"] == 1)
    best = int(np.argmax(sim[crop_row, :n0]))
    assert body["faces"][best] == {"image": 0, "face": 0}
    assert [best, crop_row] in body["matches"]


async def test_batch_multipart_and_size_cap(make_api, t1):
    api = await make_api(max_batch_images=2)
    key = await api.new_key()
    files = [("images", ("a.jpg", t1)), ("images", ("b.jpg", t1))]
    r = await api.client.post("/v1/faces/batch", files=files, headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    assert len(r.json()["faces"]) == 12 and r.json()["pack"] == "test"
    r = await api.client.post("/v1/faces/batch", files=files + [("images", ("c.jpg", t1))], headers={"X-API-Key": key})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_images"


async def test_info_and_openapi(api):
    info = (await api.client.get("/v1/info")).json()
    assert info["packs"][0]["pack"] == "test" and info["packs"][0]["embedding_size"] == 128
    doc = (await api.client.get("/openapi.json")).json()
    detect = doc["paths"]["/v1/faces/detect"]["post"]
    assert set(detect["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert "429" in detect["responses"] and "413" in detect["responses"]
    for path in ("/v1/faces/analyze", "/v1/faces/compare", "/v1/faces/batch", "/v1/usage", "/health/ready"):
        assert path in doc["paths"]
