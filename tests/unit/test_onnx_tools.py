import numpy as np
import onnx
import onnxruntime as ort
import pytest

from face_analysis.repository.onnx_tools import has_dynamic_batch, make_batch_dynamic, signature


def test_mobilefacenet_batches_after_the_rewrite(shared_models):
    original = onnx.load(str(shared_models / "mobilefacenet.onnx"))
    assert not has_dynamic_batch(original)
    rewritten = make_batch_dynamic(original)
    assert has_dynamic_batch(rewritten)
    x = np.random.default_rng(0).standard_normal((5, 3, 112, 112)).astype(np.float32)
    ref = ort.InferenceSession(original.SerializeToString(), providers=["CPUExecutionProvider"])
    new = ort.InferenceSession(rewritten.SerializeToString(), providers=["CPUExecutionProvider"])
    batched = new.run(None, {"input0": x})[0]
    single = np.concatenate([ref.run(None, {"input0": x[i : i + 1]})[0] for i in range(5)])
    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_signature_reads_names_and_free_dims(shared_models):
    inputs, outputs = signature(onnx.load(str(shared_models / "det_500m.onnx")))
    assert inputs[0].name == "input.1" and inputs[0].shape == (1, 3, None, None)
    assert [o.shape[-1] for o in outputs] == [1, 1, 1, 4, 4, 4, 10, 10, 10]


def test_a_model_mixing_samples_is_refused():
    from onnx import TensorProto, helper

    # adds the mean over the batch axis: batched outputs differ from per-sample ones
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x"], ["m"], axes=[0], keepdims=1),
            helper.make_node("Add", ["x", "m"], ["y"]),
        ],
        "mix",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    with pytest.raises(ValueError, match="per-sample"):
        make_batch_dynamic(model)
