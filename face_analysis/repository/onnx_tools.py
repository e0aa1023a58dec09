"""Reading an ONNX file's signature and giving a fixed-batch-1 recognizer a dynamic batch dimension.

Triton's dynamic batcher needs models whose first dimension is free. Some exports (MobileFaceNet here) pin it to 1,
including in a Reshape to [1, -1]; `make_batch_dynamic` frees it and proves the result equal to per-sample runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper


@dataclass(frozen=True)
class TensorSig:
    name: str
    shape: tuple  # ints, or None for a free dimension
    is_float32: bool


def _sig(value_info) -> TensorSig:
    t = value_info.type.tensor_type
    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
    return TensorSig(value_info.name, shape, t.elem_type == onnx.TensorProto.FLOAT)


def signature(model: onnx.ModelProto) -> tuple[list[TensorSig], list[TensorSig]]:
    init = {i.name for i in model.graph.initializer}
    inputs = [_sig(i) for i in model.graph.input if i.name not in init]
    return inputs, [_sig(o) for o in model.graph.output]


def has_dynamic_batch(model: onnx.ModelProto) -> bool:
    inputs, _ = signature(model)
    return inputs[0].shape[0] is None


def make_batch_dynamic(model: onnx.ModelProto, verify: bool = True) -> onnx.ModelProto:
    """A copy of `model` whose inputs and outputs take any batch size (see module doc)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in list(m.graph.input) + list(m.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
    del m.graph.value_info[:]  # stale inferred shapes would pin the batch again
    consts = {n.output[0]: n for n in m.graph.node if n.op_type == "Constant"}
    inits = {i.name: i for i in m.graph.initializer}
    for node in m.graph.node:
        if node.op_type != "Reshape":
            continue
        name = node.input[1]
        if name in inits:
            arr = numpy_helper.to_array(inits[name])
            if arr.ndim == 1 and arr.size and arr[0] == 1:
                arr = arr.copy()
                arr[0] = 0  # 0 copies the input's dimension: the batch
                inits[name].CopyFrom(numpy_helper.from_array(arr, name))
        elif name in consts:
            attr = next(a for a in consts[name].attribute if a.name == "value")
            arr = numpy_helper.to_array(attr.t)
            if arr.ndim == 1 and arr.size and arr[0] == 1:
                arr = arr.copy()
                arr[0] = 0
                attr.t.CopyFrom(numpy_helper.from_array(arr))
    onnx.checker.check_model(m)
    if verify:
        _verify_batching(m)
    return m


def _verify_batching(model: onnx.ModelProto, batch: int = 3) -> None:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [batch] + [d if isinstance(d, int) else 64 for d in inp.shape[1:]]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    together = sess.run(None, {inp.name: x})[0]
    alone = np.concatenate([sess.run(None, {inp.name: x[i : i + 1]})[0] for i in range(batch)])
    if together.shape != alone.shape or not np.allclose(together, alone, atol=1e-4, rtol=1e-3):
        raise ValueError("the model does not give per-sample results when batched; it cannot serve batches")
