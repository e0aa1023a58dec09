"""Reading an ONNX file's signature and giving fixed-batch-1 models a batch dimension Triton can batch on.

Triton's dynamic batcher needs models whose first dimension is free. Some exports (MobileFaceNet here) pin it to 1,
including in a Reshape to [1, -1]; `make_batch_dynamic` frees it and proves the result equal to per-sample runs.
InsightFace's SCRFD detectors go further and flatten the batch away: every head ends in Transpose [2,3,0,1] +
Reshape [-1, C], so B images give [B*A, C] rows interleaved across images; `make_detector_batched` rewrites those
heads to [B, A, C] and proves each image's slice equal to the original model run on that image alone.
`add_detector_preprocessing` then moves the host's normalisation into the detector: it takes the letterboxed uint8
BGR canvases [B, H, W, 3] and casts, reorders channels, normalises and transposes them in the graph, proven equal
to the float model fed `Normalizer`'s tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper


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


# --- SCRFD detectors: per-image heads [A, C] -> batched heads [B, A, C] ------------------------------------------

# Ops a head may pass through between its flattening Reshape and the graph output: elementwise, so they work on
# [B, A, C] as on [A, C]. Binary ones only with a constant scalar operand (a [A, C] constant would not broadcast).
_HEAD_UNARY = frozenset({"Sigmoid", "Identity", "Relu", "Exp", "Neg", "Abs", "Sqrt", "Tanh"})
_HEAD_BINARY = frozenset({"Mul", "Add", "Sub", "Div"})
DETECTOR_PROBE_SIZE = (640, 640)  # (width, height) the verification uses when the input leaves H and W free


def is_detector_batched(model: onnx.ModelProto) -> bool:
    """True when the input's first dimension is free and every output is [batch, anchors, values]."""
    inputs, outputs = signature(model)
    return (
        bool(inputs and outputs)
        and inputs[0].shape[:1] == (None,)
        and all(len(o.shape) == 3 and o.shape[0] is None for o in outputs)
    )


def make_detector_batched(model: onnx.ModelProto, verify: bool = True) -> onnx.ModelProto:
    """A copy of a SCRFD-style detector whose outputs keep the batch: [B,3,H,W] -> [B, A, C] per head.

    Per graph output it walks back through elementwise ops (the scores' Sigmoid) to the Reshape that flattens the
    head to [-1, C]; that Reshape's data comes from a Transpose of the NCHW head conv. The Transpose gets the batch
    axis moved first (SCRFD's [2,3,0,1] becomes [0,2,3,1]: the same element order when the batch is 1) and the
    Reshape the shape [0, -1, C] (0 copies the batch). Any other Reshape with a constant shape starting with 1 gets
    0 there, as in `make_batch_dynamic`. The input's first dimension becomes "batch", outputs become
    ["batch", A, C] with A free unless the input fixes H and W, and stale inferred shapes are dropped.

    A model that is already batched is returned as a copy (after verification), so the rewrite is idempotent.
    With `verify`, `check_detector_batching` runs both models in onnxruntime and raises ValueError on any difference.
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    if not is_detector_batched(m):
        _rewrite_detector_heads(m)
        onnx.checker.check_model(m)
    if verify:
        check_detector_batching(model, m)
    return m


def _const_array(name: str, inits: dict, consts: dict) -> np.ndarray | None:
    if name in inits:
        return numpy_helper.to_array(inits[name])
    if name in consts:
        attr = next((a for a in consts[name].attribute if a.name == "value"), None)
        return numpy_helper.to_array(attr.t) if attr is not None else None
    return None


def _batch_first_perm(perm: list[int]) -> list[int]:
    """The Transpose permutation with the input's batch axis (0) first and the other axes in their order."""
    return [0] + [p for p in perm if p != 0]


def _unique_name(base: str, taken: set[str]) -> str:
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def _find_head_reshape(output: str, producers: dict, consumers: dict, inits: dict, consts: dict):
    """The Reshape flattening the head that ends in graph output `output`."""
    name = output
    while True:
        node = producers.get(name)
        if node is None:
            raise ValueError(f"detector output {output!r} is not computed by a node; not a SCRFD-style head")
        if node.op_type == "Reshape":
            return node
        nxt = None
        if node.op_type in _HEAD_UNARY:
            nxt = node.input[0]
        elif node.op_type in _HEAD_BINARY:
            arrays = [_const_array(i, inits, consts) for i in node.input]
            if arrays[0] is None and arrays[1] is not None and arrays[1].size == 1:
                nxt = node.input[0]
            elif arrays[1] is None and arrays[0] is not None and arrays[0].size == 1:
                nxt = node.input[1]
        if nxt is None:
            raise ValueError(
                f"detector output {output!r}: no flattening Reshape before it (stopped at {node.op_type} "
                f"{node.name!r}); not a SCRFD-style head"
            )
        if len(consumers.get(nxt, ())) != 1:
            raise ValueError(
                f"detector output {output!r}: intermediate {nxt!r} has other uses; cannot add a batch axis"
            )
        name = nxt


def _rewrite_detector_heads(m: onnx.ModelProto) -> None:
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    consts = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    producers = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    taken = set(inits) | set(producers) | {i.name for i in g.input} | {n.name for n in g.node}
    replaced: set[str] = set()
    shape_names: dict[tuple, str] = {}

    def set_shape(node, values: list[int]) -> None:
        key = tuple(values)
        if key not in shape_names:
            shape_names[key] = _unique_name("batched_shape_" + "_".join(str(v) for v in values), taken)
            g.initializer.append(numpy_helper.from_array(np.array(values, np.int64), shape_names[key]))
        replaced.add(node.input[1])
        node.input[1] = shape_names[key]

    head_reshapes, widths = [], {}
    for out in g.output:
        reshape = _find_head_reshape(out.name, producers, consumers, inits, consts)
        shape = _const_array(reshape.input[1], inits, consts)
        if shape is None or shape.ndim != 1 or shape.size != 2 or shape[1] <= 0:
            raise ValueError(
                f"detector output {out.name!r}: Reshape {reshape.name!r} does not flatten to a constant [-1, C] "
                f"(shape {None if shape is None else shape.tolist()}); not a SCRFD-style head"
            )
        transpose = producers.get(reshape.input[0])
        perm_attr = next((a for a in transpose.attribute if a.name == "perm"), None) if transpose is not None else None
        if transpose is None or transpose.op_type != "Transpose" or perm_attr is None:
            raise ValueError(
                f"detector output {out.name!r}: Reshape {reshape.name!r} is not fed by a Transpose with an explicit "
                "perm, so the batch axis cannot be located"
            )
        widths[out.name] = int(shape[1])
        if any(reshape is r for r in head_reshapes):
            continue
        head_reshapes.append(reshape)
        perm = _batch_first_perm(list(perm_attr.ints))
        if perm != list(perm_attr.ints):
            if len(consumers[transpose.output[0]]) > 1:  # shared: give this head its own Transpose
                name = _unique_name(transpose.output[0] + "_batched", taken)
                node_name = _unique_name((transpose.name or "Transpose") + "_batched", taken)
                clone = helper.make_node("Transpose", [transpose.input[0]], [name], name=node_name, perm=perm)
                g.node.insert(list(g.node).index(transpose) + 1, clone)  # insert copies: edit nothing after
                consumers[transpose.output[0]] = [c for c in consumers[transpose.output[0]] if c is not reshape]
                reshape.input[0] = name
            else:
                del perm_attr.ints[:]
                perm_attr.ints.extend(perm)
        # allowzero=1 (opset >= 14) would read the 0 as a literal zero; the default copies the input's dimension
        for i, a in reversed(list(enumerate(reshape.attribute))):
            if a.name == "allowzero":
                del reshape.attribute[i]
        set_shape(reshape, [0, -1, int(shape[1])])

    for node in g.node:  # Reshapes elsewhere that pin the batch to 1
        if node.op_type != "Reshape" or any(node is r for r in head_reshapes):
            continue
        shape = _const_array(node.input[1], inits, consts)
        if shape is not None and shape.ndim == 1 and shape.size > 1 and shape[0] == 1:
            set_shape(node, [0] + [int(v) for v in shape[1:]])

    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    for name in replaced - used:
        if name in inits:
            g.initializer.remove(inits[name])
        elif name in consts:
            g.node.remove(consts[name])

    inp = next(i for i in g.input if i.name not in inits)
    in_dims = inp.type.tensor_type.shape.dim
    fixed_hw = len(in_dims) == 4 and all(d.HasField("dim_value") for d in in_dims[2:])
    in_dims[0].ClearField("dim_value")
    in_dims[0].dim_param = "batch"
    for out in g.output:
        old = [d.dim_value if d.HasField("dim_value") else None for d in out.type.tensor_type.shape.dim]
        anchors = old[0] if fixed_hw and len(old) == 2 else None
        shape = out.type.tensor_type.shape
        del shape.dim[:]
        shape.dim.add().dim_param = "batch"
        d = shape.dim.add()
        if anchors:
            d.dim_value = anchors
        shape.dim.add().dim_value = widths[out.name]
    del g.value_info[:]  # stale inferred shapes ([H, W, 1, C] after the Transposes) would contradict the rewrite


def _probe_inputs(sess, batch: int, seed: int = 0) -> np.ndarray:
    """Seeded image-like tensors: coarse colour blobs plus fine noise, in the normalised (x - 127.5) / 128 range."""
    inp = sess.get_inputs()[0]
    h = inp.shape[2] if isinstance(inp.shape[2], int) else DETECTOR_PROBE_SIZE[1]
    w = inp.shape[3] if isinstance(inp.shape[3], int) else DETECTOR_PROBE_SIZE[0]
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-1, 1, (batch, 3, h // 32 + 1, w // 32 + 1))
    x = coarse.repeat(32, axis=2).repeat(32, axis=3)[:, :, :h, :w] + 0.25 * rng.standard_normal((batch, 3, h, w))
    return np.clip(x, -1, 1).astype(np.float32)


def check_detector_batching(
    reference: onnx.ModelProto,
    batched: onnx.ModelProto,
    images: np.ndarray | None = None,
    batch: int = 3,
    atol: float = 1e-4,
) -> float:
    """Run `batched` on a batch and `reference` (the original detector) on each image alone; return the largest
    absolute difference, raising ValueError when a shape is not [B, A, C] or a value differs by more than `atol`.

    `images` is a [B,3,H,W] float32 batch; by default `batch` seeded image-like tensors at the input's size
    (DETECTOR_PROBE_SIZE where H and W are free).
    """
    import onnxruntime as ort

    def session(m):
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])

    ref, new = session(reference), session(batched)
    x = _probe_inputs(new, batch) if images is None else np.ascontiguousarray(images, dtype=np.float32)
    names = [o.name for o in new.get_outputs()]
    together = new.run(names, {new.get_inputs()[0].name: x})
    worst = 0.0
    for b in range(x.shape[0]):
        alone = ref.run(names, {ref.get_inputs()[0].name: x[b : b + 1]})
        for name, t, a in zip(names, together, alone):
            a = a[0] if a.ndim == 3 and a.shape[0] == 1 else a  # a batched reference gives [1, A, C]
            if t.shape != (x.shape[0],) + a.shape:
                raise ValueError(
                    f"detector output {name!r}: the batched model gives {list(t.shape)} for {x.shape[0]} images, "
                    f"expected [batch, anchors, values] = {[x.shape[0], *a.shape]}"
                )
            diff = float(np.max(np.abs(t[b] - a))) if a.size else 0.0
            if not diff <= atol:  # also catches NaN
                raise ValueError(
                    f"detector output {name!r}, image {b}: the batched model differs from the original run on that "
                    f"image alone by {diff:.3g} (atol {atol}); the batched detector does not keep images apart"
                )
            worst = max(worst, diff)
    return worst


# --- SCRFD detectors: normalisation inside the graph (uint8 NHWC BGR in) ------------------------------------------

PREPROCESS_PREFIX = "uint8_preprocess"  # names of the nodes and constants the prefix adds


def has_detector_preprocessing(model: onnx.ModelProto) -> bool:
    """True when the detector already takes uint8 [batch, H, W, 3] images (`add_detector_preprocessing` ran)."""
    init = {i.name for i in model.graph.initializer}
    inp = next((i for i in model.graph.input if i.name not in init), None)
    if inp is None:
        return False
    t = inp.type.tensor_type
    dims = t.shape.dim
    return t.elem_type == onnx.TensorProto.UINT8 and len(dims) == 4 and dims[3].dim_value == 3


def _rename_input(graph, old: str, new: str) -> None:
    """Every use of tensor `old` in `graph` and its subgraphs (If/Loop bodies see outer names) reads `new`."""
    for node in graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                if not any(i.name == old for i in sub.input):  # a subgraph input of that name shadows it
                    _rename_input(sub, old, new)


def add_detector_preprocessing(
    model: onnx.ModelProto, mean, std, rgb: bool = True, verify: bool = True
) -> onnx.ModelProto:
    """A copy of a float NCHW detector that takes the letterboxed uint8 BGR canvases [batch, H, W, 3] instead and
    normalises them itself, as `Normalizer(mean, std, rgb)` does on the host.

    The graph input keeps its name (configs and the ensemble map it by name) and gets type uint8 and shape
    [batch, H, W, 3], the dimensions taken from the source's (fixed or symbolic). It feeds, in front of the
    original graph (which now reads an internal tensor instead of the input):

        Cast(float) -> Transpose([0,3,1,2]) -> [Gather(indices [2,1,0], axis 1): BGR to RGB, when `rgb`]
        -> Sub(mean [1,3,1,1]) -> Mul(1/std [1,3,1,1])

    `mean` and `std` are per channel in the network's channel order, 0..255 units (the pack manifest's). Mul by the
    float32 reciprocal is what `Normalizer` and cv2.dnn.blobFromImage compute (exact when std is a power of two,
    as SCRFD's 128). The Cast comes first because TensorRT takes uint8 only as a network input feeding a Cast.
    The Transpose comes next because onnxruntime's CPU kernels broadcast a [3] constant over a last axis of 3
    slowly: the same ops in NHWC order cost 9 ms a 640x640 image on 2 threads, in NCHW order 1.7 ms. All ops exist
    unchanged since opset 7 (Cast, Transpose, Gather, Sub, Mul), so the source's opset is kept (det_500m: 11).

    A model that already takes uint8 is refused (ValueError): its prefix cannot be checked against a float model.
    With `verify`, `check_detector_preprocessing` compares the result with the source fed `Normalizer`'s tensors.
    """
    if has_detector_preprocessing(model):
        raise ValueError(
            "the detector already takes uint8 [batch, H, W, 3] images (its normalisation is in the graph); "
            "give the float NCHW export"
        )
    mean = np.asarray(mean, dtype=np.float64).reshape(-1)
    std = np.asarray(std, dtype=np.float64).reshape(-1)
    if mean.size != 3 or std.size != 3 or not np.all(std > 0):
        raise ValueError(f"mean and std need 3 values each, std positive; got {mean.tolist()} and {std.tolist()}")
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inits = {i.name for i in g.initializer}
    inp = next((i for i in g.input if i.name not in inits), None)
    t = inp.type.tensor_type if inp is not None else None
    if t is None or t.elem_type != onnx.TensorProto.FLOAT or len(t.shape.dim) != 4 or t.shape.dim[1].dim_value != 3:
        raise ValueError("the detector does not take one float [batch, 3, H, W] input; cannot add the preprocessing")
    if any(o.name == inp.name for o in g.output):
        raise ValueError(f"the detector input {inp.name!r} is also a graph output; cannot add the preprocessing")

    taken = inits | {o for n in g.node for o in n.output} | {i.name for i in g.input} | {n.name for n in g.node}
    taken |= {o.name for o in g.output}

    def name(suffix: str) -> str:
        return _unique_name(f"{PREPROCESS_PREFIX}/{suffix}", taken)

    normalised = name("nchw")  # what the original graph reads from now on
    _rename_input(g, inp.name, normalised)

    mean_name, inv_std_name = name("mean"), name("inv_std")
    g.initializer.extend(
        [
            numpy_helper.from_array(mean.astype(np.float32).reshape(1, 3, 1, 1), mean_name),
            numpy_helper.from_array((1.0 / std).astype(np.float32).reshape(1, 3, 1, 1), inv_std_name),
        ]
    )
    nodes = [
        helper.make_node("Cast", [inp.name], [x := name("float")], name=name("Cast"), to=onnx.TensorProto.FLOAT),
        helper.make_node("Transpose", [x], [x := name("float_nchw")], name=name("Transpose"), perm=[0, 3, 1, 2]),
    ]
    if rgb:
        order = name("bgr_to_rgb_indices")
        g.initializer.append(numpy_helper.from_array(np.array([2, 1, 0], np.int64), order))
        nodes.append(helper.make_node("Gather", [x, order], [x := name("rgb")], name=name("Gather"), axis=1))
    nodes.append(helper.make_node("Sub", [x, mean_name], [x := name("centred")], name=name("Sub")))
    nodes.append(helper.make_node("Mul", [x, inv_std_name], [normalised], name=name("Mul")))
    for i, node in enumerate(nodes):
        g.node.insert(i, node)

    dims = [onnx.TensorShapeProto.Dimension() for _ in t.shape.dim]
    for copy, d in zip(dims, t.shape.dim):
        copy.CopyFrom(d)
    batch, _, h, w = dims
    t.elem_type = onnx.TensorProto.UINT8
    del t.shape.dim[:]
    t.shape.dim.extend([batch, h, w])
    t.shape.dim.add().dim_value = 3
    onnx.checker.check_model(m)
    if verify:
        check_detector_preprocessing(model, m, mean, std, rgb)
    return m


def _probe_canvases(height: int, width: int, batch: int, seed: int = 0) -> np.ndarray:
    """Seeded letterbox-like uint8 BGR canvases [B, H, W, 3]: coarse colour blobs plus fine noise over the full
    0..255 range (channels differ, so a wrong channel order shows), then a black band as letterboxing leaves."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (batch, height // 32 + 1, width // 32 + 1, 3))
    x = coarse.repeat(32, axis=1).repeat(32, axis=2)[:, :height, :width] + rng.normal(0, 40, (batch, height, width, 3))
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    for b in range(batch):  # image b is letterboxed: the right or bottom part of the canvas stays black
        if b % 2:
            x[b, height - height // (b + 2) :] = 0
        else:
            x[b, :, width - width // (b + 2) :] = 0
    return x


def check_detector_preprocessing(
    reference: onnx.ModelProto,
    preprocessed: onnx.ModelProto,
    mean,
    std,
    rgb: bool = True,
    canvases: np.ndarray | None = None,
    batch: int = 3,
    atol: float = 1e-4,
) -> float:
    """Run `preprocessed` on uint8 BGR canvases and `reference` (the float detector) on `Normalizer(mean, std,
    rgb)` of the same canvases, as the host did before; return the largest absolute difference over every output,
    raising ValueError when one differs by more than `atol` (or in shape).

    `canvases` is a uint8 [B, H, W, 3] batch; by default `batch` seeded letterbox-like canvases at the input's size
    (DETECTOR_PROBE_SIZE where H and W are free). A reference with a fixed batch of 1 is run image by image.
    """
    import onnxruntime as ort

    from face_analysis.ops.normalize import Normalizer

    def session(m):
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])

    ref, new = session(reference), session(preprocessed)
    if canvases is None:
        shape = new.get_inputs()[0].shape
        h = shape[1] if isinstance(shape[1], int) else DETECTOR_PROBE_SIZE[1]
        w = shape[2] if isinstance(shape[2], int) else DETECTOR_PROBE_SIZE[0]
        canvases = _probe_canvases(h, w, batch)
    canvases = np.ascontiguousarray(canvases, dtype=np.uint8)
    blobs = Normalizer(mean, std, rgb)(canvases)
    settings = [np.asarray(v, dtype=np.float64).tolist() for v in (mean, std)]
    names = [o.name for o in ref.get_outputs()]
    ref_in, new_in = ref.get_inputs()[0].name, new.get_inputs()[0].name
    if isinstance(ref.get_inputs()[0].shape[0], int):  # batch pinned to 1: one image per run, both models
        pairs = [
            (ref.run(names, {ref_in: blobs[b : b + 1]}), new.run(names, {new_in: canvases[b : b + 1]}))
            for b in range(len(canvases))
        ]
    else:
        pairs = [(ref.run(names, {ref_in: blobs}), new.run(names, {new_in: canvases}))]
    worst = 0.0
    for expected, got in pairs:
        for name, e, g in zip(names, expected, got):
            if e.shape != g.shape:
                raise ValueError(
                    f"detector output {name!r}: {list(g.shape)} from uint8 canvases, {list(e.shape)} from the float "
                    "model; the preprocessing prefix changed the output shapes"
                )
            diff = float(np.max(np.abs(g.astype(np.float64) - e))) if e.size else 0.0
            if not diff <= atol:  # also catches NaN
                raise ValueError(
                    f"detector output {name!r}: the model normalising uint8 canvases itself differs from the float "
                    f"model fed Normalizer(mean={settings[0]}, std={settings[1]}, rgb={rgb}) by {diff:.3g} "
                    f"(atol {atol}); the preprocessing in the graph is wrong"
                )
            worst = max(worst, diff)
    return worst
