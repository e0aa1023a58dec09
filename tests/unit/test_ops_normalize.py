import cv2
import numpy as np

from face_analysis.ops.normalize import Normalizer, decode_genderage, l2_normalize


def _images(n=3, size=(112, 96)):
    return np.random.default_rng(0).integers(0, 256, (n, size[0], size[1], 3), dtype=np.uint8)


def test_uniform_std_is_bit_identical_to_insightface_blob():
    x = _images()
    ref = cv2.dnn.blobFromImages(list(x), 1.0 / 127.5, (96, 112), (127.5,) * 3, swapRB=True)
    assert np.array_equal(Normalizer([127.5] * 3, [127.5] * 3)(x), ref)


def test_per_channel_imagenet_normalisation():
    x = _images()
    mean, std = np.array([0.485, 0.456, 0.406]) * 255, np.array([0.229, 0.224, 0.225]) * 255
    ref = ((x[..., ::-1].astype(np.float64) - mean) / std).transpose(0, 3, 1, 2)
    got = Normalizer(mean, std)(x)
    assert got.dtype == np.float32 and got.shape == (3, 3, 112, 96)
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_bgr_networks_keep_channel_order():
    x = _images(1)
    got = Normalizer([0, 0, 0], [1, 1, 1], rgb=False)(x[0])
    assert np.array_equal(got[0, 0], x[0, :, :, 0].astype(np.float32))


def test_l2_normalize_rows_and_zero_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], np.float32)
    np.testing.assert_allclose(l2_normalize(x), [[0.6, 0.8], [0.0, 0.0]])
    assert l2_normalize(np.zeros((0, 128), np.float32)).shape == (0, 128)


def test_decode_genderage_follows_insightface_coding():
    gender, age = decode_genderage(np.array([[0.9, 0.1, 0.234], [0.2, 0.7, 0.316]], np.float32))
    assert gender.tolist() == [0, 1] and age.tolist() == [23, 32]
    assert gender.dtype == np.int32 and age.dtype == np.int32
