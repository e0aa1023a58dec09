import cv2
import numpy as np
import pytest

from face_analysis.ops import align
from tests.images import t1_path


@pytest.fixture(scope="module")
def face_align():
    from insightface.utils import face_align

    return face_align


@pytest.mark.parametrize("size", [112, 224, 128])
def test_estimate_norm_matches_insightface(face_align, size):
    rng = np.random.default_rng(size)
    for _ in range(50):
        lmk = (
            align.ARCFACE_TEMPLATE * rng.uniform(0.5, 4) + rng.uniform(-50, 400, 2) + rng.normal(0, 3, (5, 2))
        ).astype(np.float32)
        # float32 landmarks: translations of ~100 px agree to 1e-4 px
        np.testing.assert_allclose(
            align.estimate_norm(lmk, size), face_align.estimate_norm(lmk, size), rtol=1e-5, atol=1e-4
        )


def test_umeyama_recovers_a_known_similarity():
    angle, scale, t = 0.3, 1.7, np.array([12.0, -4.0])
    r = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = np.random.default_rng(1).uniform(0, 100, (5, 2))
    m = align.umeyama(src, src @ r.T + t)
    np.testing.assert_allclose(m[:2, :2], r, atol=1e-9)
    np.testing.assert_allclose(m[:2, 2], t, atol=1e-9)


def test_norm_crop_matches_insightface(face_align):
    img = cv2.imread(str(t1_path()))
    lmk = np.array([[500, 320], [540, 318], [522, 345], [503, 370], [537, 368]], np.float32)
    ours, ref = align.norm_crop(img, lmk).astype(int), face_align.norm_crop(img, lmk).astype(int)
    # the matrices agree to 1e-4 px; bilinear sampling may then round a pixel the other way
    assert np.abs(ours - ref).max() <= 1 and (ours != ref).mean() < 0.01


def test_box_crop_matches_insightface_transform(face_align):
    img = cv2.imread(str(t1_path()))
    box = np.array([464.2, 266.7, 573.1, 415.3], np.float32)
    w, h = box[2] - box[0], box[3] - box[1]
    center = ((box[2] + box[0]) / 2, (box[3] + box[1]) / 2)
    ref, ref_m = face_align.transform(img, center, 96, 96 / (max(w, h) * 1.5), 0)
    np.testing.assert_allclose(align.box_crop_matrix(box, 96), ref_m, atol=1e-9)
    assert np.array_equal(align.box_crop(img, box, 96), ref)


def test_crop_size_must_fit_the_template():
    with pytest.raises(ValueError):
        align.estimate_norm(align.ARCFACE_TEMPLATE, 100)
