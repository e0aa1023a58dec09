import cv2
import numpy as np
import pytest

from face_analysis.ops import scrfd
from tests.images import t1_path


@pytest.fixture(scope="module")
def reference_detector(shared_models):
    from insightface.model_zoo.scrfd import SCRFD

    det = SCRFD(str(shared_models / "det_500m.onnx"))
    det.prepare(-1, input_size=(640, 640))
    return det


@pytest.mark.parametrize(
    "n,strides,anchors,kps", [(6, 3, 2, False), (9, 3, 2, True), (10, 5, 1, False), (15, 5, 1, True)]
)
def test_layout_from_output_count(n, strides, anchors, kps):
    layout = scrfd.ScrfdLayout.from_output_count(n)
    assert (len(layout.strides), layout.num_anchors, layout.use_kps) == (strides, anchors, kps)


def test_layout_rejects_other_models():
    with pytest.raises(ValueError, match="not a SCRFD"):
        scrfd.ScrfdLayout.from_output_count(4)


def test_anchor_counts_match_det_500m_outputs():
    assert scrfd.ScrfdLayout.from_output_count(9).anchors_per_stride(640, 640) == [12800, 3200, 800]


def test_anchor_centres_are_row_major_and_repeated():
    c = scrfd.anchor_centers(2, 3, 8, 2)
    assert c.shape == (12, 2)
    assert c[:4].tolist() == [[0, 0], [0, 0], [8, 0], [8, 0]]
    assert c[6].tolist() == [0, 8]


@pytest.mark.parametrize("shape", [(886, 1280), (1280, 886), (640, 640), (100, 3000), (3000, 100)])
def test_letterbox_matches_insightface(shape):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    canvas, scale = scrfd.letterbox(img, (640, 640))
    # insightface's SCRFD._detect_candidates, inlined
    im_ratio = img.shape[0] / img.shape[1]
    if im_ratio > 1:
        nh, nw = 640, int(640 / im_ratio)
    else:
        nw, nh = 640, int(640 * im_ratio)
    ref = np.zeros((640, 640, 3), np.uint8)
    ref[:nh, :nw] = cv2.resize(img, (nw, nh))
    assert np.array_equal(canvas, ref)
    assert scale == pytest.approx(nh / img.shape[0])


def test_nms_matches_insightface(reference_detector):
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 500, (300, 2))
    wh = rng.uniform(10, 80, (300, 2))
    boxes = np.hstack([xy, xy + wh]).astype(np.float32)
    scores = rng.uniform(0, 1, 300).astype(np.float32)
    ref = reference_detector.nms(np.hstack([boxes, scores[:, None]]))
    assert scrfd.nms(boxes, scores, 0.4).tolist() == list(ref)


def test_nms_keeps_separate_boxes_and_drops_duplicates():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    keep = scrfd.nms(boxes, np.array([0.9, 0.8, 0.7], np.float32), 0.4)
    assert keep.tolist() == [0, 2]


def test_postprocess_matches_insightface_detect(reference_detector, shared_models):
    img = cv2.imread(str(t1_path()))
    canvas, scale = scrfd.letterbox(img, (640, 640))
    blob = cv2.dnn.blobFromImage(canvas, 1 / 128, (640, 640), (127.5,) * 3, swapRB=True)
    outs = reference_detector.session.run(reference_detector.output_names, {reference_detector.input_name: blob})
    heads = [(outs[i], outs[3 + i], outs[6 + i]) for i in range(3)]
    det = scrfd.postprocess(heads, scrfd.ScrfdLayout.from_output_count(9), (640, 640), scale, img.shape)
    ref_boxes, ref_kps = reference_detector.detect(img, input_size=(640, 640))
    assert len(det) == len(ref_boxes) == 6
    np.testing.assert_allclose(det.boxes, ref_boxes[:, :4], atol=1e-3)
    np.testing.assert_allclose(det.scores, ref_boxes[:, 4], atol=1e-6)
    np.testing.assert_allclose(det.landmarks, ref_kps, atol=1e-3)


def test_postprocess_with_no_candidates_is_empty():
    layout = scrfd.ScrfdLayout.from_output_count(9)
    heads = [
        (np.zeros((n, 1), np.float32), np.zeros((n, 4), np.float32), np.zeros((n, 10), np.float32))
        for n in layout.anchors_per_stride(640, 640)
    ]
    det = scrfd.postprocess(heads, layout, (640, 640), 1.0, (640, 640, 3))
    assert len(det) == 0 and det.boxes.shape == (0, 4) and det.landmarks.shape == (0, 5, 2)


def test_face_cap_keeps_large_central_faces_like_insightface():
    boxes = np.array([[0, 0, 10, 10], [40, 40, 60, 60], [45, 45, 55, 55], [90, 90, 100, 100]], np.float32)
    assert scrfd.select_faces(boxes, (100, 100, 3), 2).tolist() == [1, 2]
    assert scrfd.select_faces(boxes, (100, 100, 3), 0).tolist() == [0, 1, 2, 3]
