"""The SCRFD rewrite to batched heads ([B, A, C]) on the real det_500m / det_2.5g files and real images."""

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from face_analysis.ops import scrfd
from face_analysis.ops.normalize import Normalizer
from face_analysis.repository import onnx_tools
from face_analysis.repository.onnx_tools import (
    check_detector_batching,
    is_detector_batched,
    make_detector_batched,
    signature,
)
from tests.images import t1_path

DETECTORS = ["det_500m.onnx", "det_2.5g.onnx"]
LAYOUT = scrfd.ScrfdLayout.from_output_count(9)


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module", params=DETECTORS)
def detector(request, shared_models):
    """(original, batched, original session, batched session); the rewrite runs its own verification."""
    original = onnx.load(str(shared_models / request.param))
    batched = make_detector_batched(original)
    return original, batched, _session(original), _session(batched)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """Three different real BGR images: the t1 group photo, scikit-image's astronaut, and t1 mirrored and cropped."""
    import skimage.data

    t1 = cv2.imread(str(t1_path()))
    astronaut = np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])
    t1_crop = np.ascontiguousarray(t1[40:, ::-1][:, 150:])
    return [t1, astronaut, t1_crop]


def _blobs(images, size):
    canvases, scales = zip(*(scrfd.letterbox(img, (size, size)) for img in images))
    return Normalizer([127.5] * 3, [128.0] * 3, rgb=True)(list(canvases)), scales


def test_signature_has_a_batch_axis(detector):
    original, batched, _, _ = detector
    assert not is_detector_batched(original) and is_detector_batched(batched)
    inputs, outputs = signature(batched)
    assert inputs[0].shape == (None, 3, None, None)
    assert batched.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [o.name for o in outputs] == [o.name for o in original.graph.output]
    assert [o.shape for o in outputs] == [(None, None, c) for c in (1, 1, 1, 4, 4, 4, 10, 10, 10)]
    assert all(o.type.tensor_type.shape.dim[0].dim_param == "batch" for o in batched.graph.output)


@pytest.mark.parametrize("size", [640, 480])
def test_batched_real_images_match_one_at_a_time(detector, images, size):
    _, _, ref, new = detector
    x, scales = _blobs(images, size)
    assert x.shape == (3, 3, size, size)
    names = [o.name for o in new.get_outputs()]
    together = new.run(names, {"input.1": x})
    counts = LAYOUT.anchors_per_stride(size, size)
    assert [t.shape for t in together] == [(3, counts[i % 3], (1, 4, 10)[i // 3]) for i in range(9)]
    for b, img in enumerate(images):
        alone = ref.run(names, {"input.1": x[b : b + 1]})
        for t, a in zip(together, alone):
            np.testing.assert_allclose(t[b], a, atol=1e-4, rtol=0)
        mine = scrfd.postprocess(
            [(together[i][b], together[3 + i][b], together[6 + i][b]) for i in range(3)],
            LAYOUT,
            (size, size),
            scales[b],
            img.shape,
        )
        theirs = scrfd.postprocess(
            [(alone[i], alone[3 + i], alone[6 + i]) for i in range(3)], LAYOUT, (size, size), scales[b], img.shape
        )
        assert len(mine) == len(theirs)
        np.testing.assert_allclose(mine.boxes, theirs.boxes, atol=1e-3)
        np.testing.assert_allclose(mine.scores, theirs.scores, atol=1e-4)
        np.testing.assert_allclose(mine.landmarks, theirs.landmarks, atol=1e-3)
        if b == 0:
            assert len(mine) == 6  # the six faces of t1.jpg


def test_check_reports_the_difference_on_real_images(detector, images):
    original, batched, _, _ = detector
    x, _ = _blobs(images, 640)
    assert check_detector_batching(original, batched, images=x) <= 1e-4


def test_rewriting_twice_changes_nothing(detector):
    _, batched, _, _ = detector
    again = make_detector_batched(batched)
    assert again.SerializeToString() == batched.SerializeToString()


def _reverse_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with every output reversed along the batch axis: image b gets image B-1-b's detections."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    g.initializer.extend(
        numpy_helper.from_array(np.array([v], np.int64), n)
        for n, v in [("rev_starts", -1), ("rev_ends", np.iinfo(np.int64).min), ("rev_axes", 0), ("rev_steps", -1)]
    )
    for out in g.output:
        for node in g.node:
            node.output[:] = [o + "_unreversed" if o == out.name else o for o in node.output]
        g.node.append(
            helper.make_node(
                "Slice", [out.name + "_unreversed", "rev_starts", "rev_ends", "rev_axes", "rev_steps"], [out.name]
            )
        )
    return m


def test_verification_catches_images_mixed_across_the_batch(shared_models):
    original = onnx.load(str(shared_models / "det_500m.onnx"))
    broken = _reverse_batch(make_detector_batched(original, verify=False))
    onnx.checker.check_model(broken)
    assert is_detector_batched(broken)
    with pytest.raises(ValueError, match="does not keep images apart"):
        check_detector_batching(original, broken)
    with pytest.raises(ValueError, match="does not keep images apart"):
        make_detector_batched(broken)  # an already-batched model is still verified


def test_verification_catches_a_rewrite_that_leaves_the_batch_axis_inside(shared_models, monkeypatch):
    original = onnx.load(str(shared_models / "det_500m.onnx"))
    # keeping SCRFD's Transpose [2,3,0,1] puts the batch after H and W, so Reshape [0,-1,C] splits on H instead
    monkeypatch.setattr(onnx_tools, "_batch_first_perm", lambda perm: list(perm))
    with pytest.raises(ValueError, match=r"expected \[batch, anchors, values\]"):
        make_detector_batched(original)


def test_other_models_are_refused_clearly(shared_models):
    with pytest.raises(ValueError, match="not a SCRFD-style head"):
        make_detector_batched(onnx.load(str(shared_models / "mobilefacenet.onnx")))


def test_generic_heads_shared_transpose_scalar_ops_and_a_batch_1_reshape():
    """A tiny SCRFD-shaped graph (seeded weights; plumbing only): a Reshape pinning batch 1 before the conv, two
    heads sharing one Transpose, a Constant-node shape, allowzero=1 and a Mul by a scalar after the Reshape."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((2, 3, 3, 3)).astype(np.float32), "w")
    inits = [
        w,
        numpy_helper.from_array(np.array([1, 3, 16, 16], np.int64), "pin1"),
        numpy_helper.from_array(np.array([-1, 2], np.int64), "flat2"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
    ]
    nodes = [
        helper.make_node("Reshape", ["x", "pin1"], ["x1"]),
        helper.make_node("Conv", ["x1", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Transpose", ["c"], ["t"], perm=[2, 3, 0, 1]),
        helper.make_node("Constant", [], ["flat1"], value=numpy_helper.from_array(np.array([-1, 1], np.int64))),
        helper.make_node("Reshape", ["t", "flat1"], ["r1"], allowzero=1),
        helper.make_node("Sigmoid", ["r1"], ["scores"]),
        helper.make_node("Reshape", ["t", "flat2"], ["r2"]),
        helper.make_node("Mul", ["r2", "half"], ["boxes"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mini_scrfd",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [512, 1]),
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [256, 2]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    batched = make_detector_batched(model)
    assert [o.shape for o in signature(batched)[1]] == [(None, 512, 1), (None, 256, 2)]
    assert sum(n.op_type == "Transpose" for n in batched.graph.node) == 2
    assert not any(n.op_type == "Constant" for n in batched.graph.node)  # the replaced shape is dropped
    x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    scores, boxes = _session(batched).run(None, {"x": x})
    assert scores.shape == (4, 512, 1) and boxes.shape == (4, 256, 2)
