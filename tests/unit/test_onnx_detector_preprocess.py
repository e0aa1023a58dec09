"""The detector's normalisation moved into its graph (uint8 BGR [B,H,W,3] in): on det_500m with real images, and
per-channel constants and channel order on a tiny graph."""

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from face_analysis.ops import scrfd
from face_analysis.ops.normalize import Normalizer
from face_analysis.repository.build import BuildError, build_repository
from face_analysis.repository.onnx_tools import (
    add_detector_preprocessing,
    check_detector_preprocessing,
    has_detector_preprocessing,
    make_detector_batched,
    signature,
)
from tests.images import t1_path

MEAN, STD = [127.5] * 3, [128.0] * 3  # SCRFD's, as the pack manifests give them
LAYOUT = scrfd.ScrfdLayout.from_output_count(9)


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def detector(shared_models):
    """(batched float detector, the same with the uint8 prefix); the prefix runs its own verification."""
    batched = make_detector_batched(onnx.load(str(shared_models / "det_500m.onnx")))
    return batched, add_detector_preprocessing(batched, MEAN, STD, rgb=True)


@pytest.fixture(scope="module")
def canvases():
    """Three real BGR images letterboxed to 640 (t1: six faces, a black band at the bottom; scikit-image's square
    astronaut; t1 mirrored and cropped), with their scales and original shapes."""
    import skimage.data

    t1 = cv2.imread(str(t1_path()))
    astronaut = np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])
    t1_crop = np.ascontiguousarray(t1[40:, ::-1][:, 150:])
    images = [t1, astronaut, t1_crop]
    boxed, scales = zip(*(scrfd.letterbox(img, (640, 640)) for img in images))
    return np.stack(boxed), scales, [img.shape for img in images]


def test_the_input_keeps_its_name_and_takes_uint8_nhwc(detector):
    batched, pre = detector
    assert not has_detector_preprocessing(batched) and has_detector_preprocessing(pre)
    inp = pre.graph.input[0]
    assert inp.name == "input.1" and inp.type.tensor_type.elem_type == TensorProto.UINT8
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[3].dim_value == 3
    assert not dims[1].HasField("dim_value") and not dims[2].HasField("dim_value")  # H, W free as in the source
    assert signature(pre)[0][0].shape == (None, None, None, 3)
    assert [(o.name, o.shape) for o in signature(pre)[1]] == [(o.name, o.shape) for o in signature(batched)[1]]
    assert [n.op_type for n in pre.graph.node[:5]] == ["Cast", "Transpose", "Gather", "Sub", "Mul"]
    assert [(o.domain, o.version) for o in pre.opset_import] == [("", 11)]  # det_500m's opset, kept
    # only the prefix reads the uint8 input; the first conv reads the prefix's NCHW float tensor
    assert [n.op_type for n in pre.graph.node if "input.1" in n.input] == ["Cast"]
    assert pre.graph.node[5].input[0] == pre.graph.node[4].output[0]


def test_real_canvases_give_what_the_float_model_gives_on_normalised_blobs(detector, canvases):
    batched, pre = detector
    x, scales, shapes = canvases
    assert x.dtype == np.uint8 and x.shape == (3, 640, 640, 3)
    names = [o.name for o in _session(pre).get_outputs()]
    got = _session(pre).run(names, {"input.1": x})
    expected = _session(batched).run(names, {"input.1": Normalizer(MEAN, STD, rgb=True)(x)})
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.shape[0] == 3
        np.testing.assert_allclose(g, e, atol=1e-4, rtol=0)
    assert max(float(np.max(np.abs(g - e))) for g, e in zip(got, expected)) <= 1e-5  # std 128: ~exact
    assert check_detector_preprocessing(batched, pre, MEAN, STD, rgb=True, canvases=x) <= 1e-4
    faces = scrfd.postprocess(
        [(got[i][0], got[3 + i][0], got[6 + i][0]) for i in range(3)], LAYOUT, (640, 640), scales[0], shapes[0]
    )
    assert len(faces) == 6  # the six faces of t1.jpg


def test_verification_catches_a_wrong_mean_and_a_wrong_channel_order(detector, canvases):
    batched, _ = detector
    x = canvases[0][:1]
    wrong_mean = add_detector_preprocessing(batched, [127.5, 127.5, 125.5], STD, rgb=True, verify=False)
    with pytest.raises(ValueError, match="the preprocessing in the graph is wrong"):
        check_detector_preprocessing(batched, wrong_mean, MEAN, STD, rgb=True, canvases=x)
    with pytest.raises(ValueError, match="the preprocessing in the graph is wrong"):
        check_detector_preprocessing(batched, wrong_mean, MEAN, STD, rgb=True)  # the default probe canvases
    bgr = add_detector_preprocessing(batched, MEAN, STD, rgb=False, verify=False)
    with pytest.raises(ValueError, match="the preprocessing in the graph is wrong"):
        check_detector_preprocessing(batched, bgr, MEAN, STD, rgb=True)


def test_a_model_already_taking_uint8_is_refused(detector):
    _, pre = detector
    with pytest.raises(ValueError, match="already takes uint8"):
        add_detector_preprocessing(pre, MEAN, STD)


def _tiny(height: int = 8, width: int = 12) -> onnx.ModelProto:
    """A 'detector' whose outputs are its input (and twice it): the prefix's result is visible as it is. The input
    has a fixed batch of 1 and two consumers; H != W so a swapped layout shows."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"]), helper.make_node("Add", ["x", "x"], ["z"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, height, width])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, height, width]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 3, height, width]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 6
    return model


@pytest.mark.parametrize("rgb", [False, True])
def test_per_channel_constants_and_channel_order_on_a_tiny_graph(rgb):
    mean, std = [10.0, 100.0, 200.0], [2.0, 64.0, 50.0]  # network channel order; 50 is no power of two
    model = add_detector_preprocessing(_tiny(), mean, std, rgb=rgb)  # verified on the default probe canvases
    assert signature(model)[0][0].shape == (1, 8, 12, 3)
    assert sum(n.op_type == "Gather" for n in model.graph.node) == int(rgb)
    canvas = np.random.default_rng(1).integers(0, 256, (1, 8, 12, 3), dtype=np.uint8)
    canvas[0, 0, 0] = (0, 128, 255)  # B, G, R
    y, z = _session(model).run(None, {"x": canvas})
    net = canvas[..., ::-1] if rgb else canvas  # the network's channel order
    inv_std = (1 / np.asarray(std, np.float64)).astype(np.float32)
    expected = ((net.astype(np.float32) - np.asarray(mean, np.float32)) * inv_std).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(z, 2 * expected)
    first = [(0 - 10) / 2, (128 - 100) / 64, (255 - 200) / 50] if not rgb else [(255 - 10) / 2, 28 / 64, -200 / 50]
    np.testing.assert_allclose(y[0, :, 0, 0], first, rtol=1e-6)
    assert check_detector_preprocessing(_tiny(), model, mean, std, rgb=rgb, canvases=canvas) <= 1e-6
    with pytest.raises(ValueError, match="the preprocessing in the graph is wrong"):
        check_detector_preprocessing(_tiny(), model, mean, std, rgb=not rgb, canvases=canvas)
    with pytest.raises(ValueError, match="the preprocessing in the graph is wrong"):
        check_detector_preprocessing(_tiny(), model, mean, [2.0, 64.0, 64.0], rgb=rgb, canvases=canvas)


def test_build_refuses_a_detector_that_already_takes_uint8(tmp_path, test_pack, shared_models, detector):
    _, pre = detector
    onnx.save(pre, str(tmp_path / "det_500m.onnx"))
    (tmp_path / "mobilefacenet.onnx").symlink_to(shared_models / "mobilefacenet.onnx")
    with pytest.raises(BuildError, match="already takes uint8"):
        build_repository(test_pack, tmp_path, tmp_path / "out")
