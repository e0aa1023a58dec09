"""A model with the signature of InsightFace's genderage.onnx ([N,3,96,96] -> [N,3]: two gender logits and
age/100), built with fixed seeded weights because the real file is not on the test machines.

It checks plumbing and preprocessing (crop, colour order, normalisation, decoding), not accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build_genderage(path: Path, seed: int = 7) -> Path:
    rng = np.random.default_rng(seed)
    conv_w = rng.normal(0, 0.05, (16, 3, 5, 5)).astype(np.float32)
    conv_b = rng.normal(0, 0.1, (16,)).astype(np.float32)
    fc_w = rng.normal(0, 0.5, (3, 16)).astype(np.float32)
    fc_b = np.array([0.0, 0.0, 0.35], np.float32)
    # Node names avoid "Sub"/"Mul" so insightface's Attribute picks mean 127.5, std 128 as for the real file.
    nodes = [
        helper.make_node("Conv", ["data", "conv_w", "conv_b"], ["c1"], name="conv0", strides=[4, 4]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu0"),
        helper.make_node("GlobalAveragePool", ["r1"], ["p1"], name="pool0"),
        helper.make_node("Flatten", ["p1"], ["f1"], name="flatten0"),
        helper.make_node("Gemm", ["f1", "fc_w", "fc_b"], ["fc1"], name="fc0", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "genderage_plumbing",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 96, 96])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", 3])],
        [
            numpy_helper.from_array(a, n)
            for a, n in [(conv_w, "conv_w"), (conv_b, "conv_b"), (fc_w, "fc_w"), (fc_b, "fc_b")]
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
