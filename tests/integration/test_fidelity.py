"""Our pipeline against the `insightface` package's own classes on the same model files.

Detection: `insightface.model_zoo.scrfd.SCRFD`. Embeddings: InsightFace's `face_align.norm_crop` + onnxruntime on
the original (fixed-batch) recognizer file with the pack's normalisation written out independently here.
Attributes: `insightface.model_zoo.attribute.Attribute` on a genderage-signature model with seeded weights (see
tests/genderage_model.py): it checks the crop, colour order, normalisation and decoding, not accuracy.
"""

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from face_analysis.client import FaceAnalysisClient
from tests.images import encode, face_mosaic, skimage_image, t1_path
from tests.integration.helpers import match, read

pytestmark = pytest.mark.integration

IMAGES = {
    "t1": lambda: read(t1_path()),
    "astronaut": lambda: read(skimage_image("astronaut.png")),
    "camera-grey": lambda: read(skimage_image("camera.png")),
    "portrait": lambda: cv2.rotate(read(t1_path())[200:560, 380:680], cv2.ROTATE_90_CLOCKWISE),
}


@pytest.fixture(scope="module")
def scrfd(shared_models):
    from insightface.model_zoo.scrfd import SCRFD

    det = SCRFD(str(shared_models / "det_500m.onnx"))
    det.prepare(-1, input_size=(640, 640), det_thresh=0.5)
    return det


@pytest.fixture(scope="module")
def recognizer(shared_models):
    return ort.InferenceSession(str(shared_models / "mobilefacenet.onnx"), providers=["CPUExecutionProvider"])


def _reference_embedding(recognizer, img, landmarks):
    from insightface.utils import face_align

    crop = face_align.norm_crop(img, landmarks, 112)
    mean, std = np.array([0.485, 0.456, 0.406]) * 255, np.array([0.229, 0.224, 0.225]) * 255
    x = ((crop[:, :, ::-1] - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)
    e = recognizer.run(None, {"input0": x})[0][0]
    return e / np.linalg.norm(e)


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_detection_matches_insightface_scrfd(client, scrfd, name):
    img = IMAGES[name]()
    ours = client.analyze(encode(img))  # lossless PNG: both sides see identical pixels
    ref_boxes, ref_kps = scrfd.detect(img, input_size=(640, 640))
    assert len(ours) == len(ref_boxes) > 0
    for i, j, overlap in match(ours.boxes, ref_boxes[:, :4]):
        assert overlap >= 0.99
        assert abs(ours.scores[i] - ref_boxes[j, 4]) < 1e-4
        assert np.abs(ours.landmarks[i] - ref_kps[j]).max() <= 1.0


def test_detection_matches_on_a_crowd(client, scrfd):
    t1 = read(t1_path())
    img = face_mosaic([(t1, client.analyze(encode(t1)).boxes)], 64)
    ours = client.analyze(encode(img))
    ref_boxes, ref_kps = scrfd.detect(img, input_size=(640, 640))
    assert len(ours) == len(ref_boxes) == 64
    assert min(o for _, _, o in match(ours.boxes, ref_boxes[:, :4])) >= 0.99


@pytest.mark.parametrize("name", ["t1", "astronaut", "portrait"])
def test_embeddings_match_reference_crop_and_onnxruntime(client, recognizer, name):
    img = IMAGES[name]()
    ours = client.analyze(encode(img))
    for i in range(len(ours)):
        ref = _reference_embedding(recognizer, img, ours.landmarks[i])
        assert float(ours.embeddings[i] @ ref) >= 0.999


def test_attributes_match_insightface_attribute(attr_triton, attr_pack_dir, scrfd):
    from insightface.app.common import Face
    from insightface.model_zoo.attribute import Attribute

    reference = Attribute(model_file=str(attr_pack_dir / "genderage.onnx"))
    assert (reference.input_mean, reference.input_std, reference.taskname) == (127.5, 128.0, "genderage")
    genders, ages = [], []
    with FaceAnalysisClient(attr_triton.grpc_url) as client:
        info = client.pack_info()
        assert info.attributes and info.pack == "test_attributes"
        for name in ("t1", "astronaut", "portrait"):
            img = IMAGES[name]()
            ours = client.analyze(encode(img))
            assert ours.gender.shape == ours.age.shape == (len(ours),)
            assert ours.gender.dtype == ours.age.dtype == np.int32
            for i in range(len(ours)):
                gender, age = reference.get(img, Face(bbox=ours.boxes[i], kps=ours.landmarks[i]))
                assert (int(ours.gender[i]), int(ours.age[i])) == (int(gender), int(age))
                genders.append(int(gender))
                ages.append(int(age))
    # the seeded weights give different answers for different faces, so the comparison has teeth
    assert len(set(ages)) > 2


def test_attribute_pack_detects_and_embeds_like_the_plain_pack(attr_triton, client):
    data = t1_path().read_bytes()
    plain = client.analyze(data)
    with FaceAnalysisClient(attr_triton.grpc_url) as attr_client:
        with_attrs = attr_client.analyze(data)
    np.testing.assert_array_equal(plain.boxes, with_attrs.boxes)
    np.testing.assert_allclose(plain.embeddings, with_attrs.embeddings, atol=1e-5)


def test_zero_faces_with_attributes(attr_triton):
    with FaceAnalysisClient(attr_triton.grpc_url) as client:
        result = client.analyze(skimage_image("coffee.png").read_bytes())
    assert len(result) == 0 and result.gender.shape == (0,) and result.age.shape == (0,)
