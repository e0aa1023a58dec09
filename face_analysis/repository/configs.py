"""Triton model configs for every step, built as `ModelConfig` protobufs so each one is valid by construction.

Each model gets the GPU config (`config.pbtxt`) and, where it differs, the CPU one (`configs/cpu.pbtxt`,
selected with `tritonserver --model-config-name cpu`).
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from face_analysis.ops.scrfd import ScrfdLayout
from face_analysis.packs.manifest import ModelSpec, PackManifest
from face_analysis.repository import params as P
from face_analysis.repository.onnx_tools import TensorSig

ENSEMBLE = "face_analysis"


@dataclass(frozen=True)
class BuildOptions:
    max_faces: int = 128  # face cap per image; also the embedder's max batch
    detector_max_batch: int = 8  # images the detector runs together (its dynamic batcher's largest batch)
    max_pixels: int = 50_000_000
    cpu_threads: str = "auto"  # onnxruntime intra-op threads on the CPU target
    python_instances: int = 2  # instances of each Python pre/post step
    queue_delay_us: int = 200  # dynamic batcher wait for more faces on the GPU target
    engine_cache_dir: str = "/var/cache/face-analysis/trt"
    fp16: bool = True


def _dtype(name: str) -> int:
    return mc.DataType.Value(name)


def _tensor(cls, name: str, dtype: str, dims, optional: bool = False):
    t = cls(name=name, data_type=_dtype(dtype), dims=[int(d) for d in dims])
    if optional:
        t.optional = True
    return t


def _inp(name, dtype, dims, optional=False):
    return _tensor(mc.ModelInput, name, dtype, dims, optional)


def _out(name, dtype, dims):
    return _tensor(mc.ModelOutput, name, dtype, dims)


def _request_options() -> list:
    """The per-request options of the public contract, passed from the ensemble straight to `align`."""
    return [_inp("threshold", "TYPE_FP32", [1], optional=True), _inp("max_faces", "TYPE_INT32", [1], optional=True)]


def _face_outputs() -> list:
    """Detection outputs of the public contract, made by `align`."""
    return [
        _out("boxes", "TYPE_FP32", [-1, 4]),
        _out("scores", "TYPE_FP32", [-1]),
        _out("landmarks", "TYPE_FP32", [-1, 5, 2]),
    ]


def _params(config: mc.ModelConfig, values: dict) -> None:
    for k, v in values.items():
        config.parameters[k].string_value = str(v)


def _csv(values) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def to_text(config: mc.ModelConfig) -> str:
    return text_format.MessageToString(config)


def parse(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


def add_warmup(config: mc.ModelConfig, shapes: dict[str, list[int]] | None = None, files: dict[str, str] | None = None):
    """Triton runs these requests on every instance before it reports the model ready, so the first client
    request does not pay for first-run allocations (and, on GPUs, TensorRT engine builds).

    Inputs get zeros unless `files` names a file under `<model>/warmup/`; `shapes` fixes variable dimensions.
    """
    shapes, files = shapes or {}, files or {}
    w = config.model_warmup.add(name="startup", batch_size=1, count=1)
    for tensor in config.input:
        if tensor.optional:
            continue
        spec = w.inputs[tensor.name]
        spec.data_type = tensor.data_type
        spec.dims.extend(shapes.get(tensor.name, [d if d > 0 else 1 for d in tensor.dims]))
        if tensor.name in files:
            spec.input_data_file = files[tensor.name]
        else:
            spec.zero_data = True


def _python_step(name: str, opts: BuildOptions) -> mc.ModelConfig:
    c = mc.ModelConfig(name=name, backend="python", max_batch_size=0)
    c.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=opts.python_instances)
    return c


def preprocess(pack: PackManifest, opts: BuildOptions, warmup_image: tuple[str, int] | None = None) -> mc.ModelConfig:
    """`warmup_image`: (file name under preprocess/warmup/, its byte size), an encoded image decoded at load."""
    w, h = pack.detector.input_size
    c = _python_step("preprocess", opts)
    c.input.append(_inp("image", "TYPE_UINT8", [-1]))
    c.output.extend(
        [
            # the letterboxed canvas, BGR as decoded; the detector graph normalises it (add_detector_preprocessing)
            _out(P.DET_INPUT, "TYPE_UINT8", [1, h, w, 3]),
            _out(P.DECODED, "TYPE_UINT8", [-1, -1, 3]),
            _out(P.DET_SCALE, "TYPE_FP32", [1]),
        ]
    )
    _params(c, {"input_width": w, "input_height": h, "max_pixels": opts.max_pixels})
    if warmup_image:
        add_warmup(c, {"image": [warmup_image[1]]}, {"image": warmup_image[0]})
    return c


def detector_heads(
    det_outputs: list[TensorSig], spec: ModelSpec
) -> tuple[ScrfdLayout, list[tuple[str, str, list[int]]]]:
    """(layout, [(onnx output name, ensemble name, dims)]) for a SCRFD file's outputs at the pack's input size."""
    layout = ScrfdLayout.from_output_count(len(det_outputs))
    heads = layout.heads(*spec.input_size)
    return layout, [
        (sig.name, P.head_name(kind, stride), list(dims)) for sig, (kind, stride, dims) in zip(det_outputs, heads)
    ]


def _onnx_model(name: str, inputs, outputs, max_batch: int, opts: BuildOptions, batching: bool) -> tuple:
    """(gpu, cpu) configs for an ONNX model: ONNX Runtime + TensorRT FP16 on GPU, Python + onnxruntime on CPU."""
    gpu = mc.ModelConfig(name=name, backend="onnxruntime", max_batch_size=max_batch)
    gpu.input.extend(inputs)
    gpu.output.extend(outputs)
    gpu.instance_group.add(kind=mc.ModelInstanceGroup.KIND_GPU, count=1)
    trt = gpu.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
    trt.parameters["precision_mode"] = "FP16" if opts.fp16 else "FP32"
    trt.parameters["max_workspace_size_bytes"] = str(2 << 30)
    trt.parameters["trt_engine_cache_enable"] = "1"
    trt.parameters["trt_engine_cache_path"] = f"{opts.engine_cache_dir}/{name}"
    trt.parameters["trt_timing_cache_enable"] = "1"
    trt.parameters["trt_timing_cache_path"] = f"{opts.engine_cache_dir}/{name}"
    if batching:
        gpu.dynamic_batching.max_queue_delay_microseconds = opts.queue_delay_us
        # One TensorRT profile over every batch the batcher can form, so a new batch size never rebuilds the engine.
        for key, batch in (("min", 1), ("opt", min(16, max_batch)), ("max", max_batch)):
            trt.parameters[f"trt_profile_{key}_shapes"] = ",".join(
                f"{t.name}:{'x'.join(str(d) for d in [batch, *t.dims])}" for t in inputs
            )

    cpu = mc.ModelConfig(name=name, backend="python", max_batch_size=max_batch)
    cpu.input.extend(inputs)
    cpu.output.extend(outputs)
    cpu.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=1)
    _params(cpu, {"onnx_file": "model.onnx", "intra_op_threads": opts.cpu_threads})
    for c in (gpu, cpu):
        add_warmup(c)
    if batching:
        # On a CPU the model is busy anyway; batching whatever queued while it ran costs no added wait.
        cpu.dynamic_batching.max_queue_delay_microseconds = 0
    return gpu, cpu


def detector(pack: PackManifest, det_in: TensorSig, heads: list[tuple[str, str, list[int]]], opts: BuildOptions):
    """`heads` as `detector_heads` gives them."""
    w, h = pack.detector.input_size
    # The batched export (onnx_tools.make_detector_batched): [B,3,H,W] -> [B, anchors, values] per head, so the
    # dynamic batcher runs concurrent clients' images in one call; with the normalisation moved into the graph
    # (onnx_tools.add_detector_preprocessing) it takes the uint8 BGR canvases [B,H,W,3] under the same name.
    inputs = [_inp(det_in.name, "TYPE_UINT8", [h, w, 3])]
    outputs = [_out(onnx_name, "TYPE_FP32", dims) for onnx_name, _, dims in heads]
    return _onnx_model("detector", inputs, outputs, opts.detector_max_batch, opts, batching=True)


def batched_model(
    name: str, spec: ModelSpec, sig_in: TensorSig, sig_out: TensorSig, out_width: int, opts: BuildOptions
):
    w, h = spec.input_size
    inputs = [_inp(sig_in.name, "TYPE_FP32", [3, h, w])]
    outputs = [_out(sig_out.name, "TYPE_FP32", [out_width])]
    return _onnx_model(name, inputs, outputs, opts.max_faces, opts, batching=True)


def align(pack: PackManifest, layout: ScrfdLayout, opts: BuildOptions) -> mc.ModelConfig:
    d, r, a = pack.detector, pack.recognizer, pack.attributes
    w, h = d.input_size
    c = _python_step("align", opts)
    for kind, stride, dims in layout.heads(w, h):
        # one image's slice of the batched detector's output: [1, anchors, values]
        c.input.append(_inp(P.head_name(kind, stride), "TYPE_FP32", [1, *dims]))
    c.input.extend(
        [
            _inp(P.DECODED, "TYPE_UINT8", [-1, -1, 3]),
            _inp(P.DET_SCALE, "TYPE_FP32", [1]),
            *_request_options(),
        ]
    )
    c.output.extend(
        [
            *_face_outputs(),
            _out(P.FACE_COUNT, "TYPE_INT32", [1]),
            _out(P.REC_CROPS, "TYPE_FP32", [-1, 3, r.input_size[1], r.input_size[0]]),
        ]
    )
    values = {
        "strides": _csv(layout.strides),
        "num_anchors": layout.num_anchors,
        "det_width": w,
        "det_height": h,
        "threshold": d.threshold,
        "nms_threshold": d.nms_threshold,
        "max_faces": opts.max_faces,
        "rec_size": r.input_size[0],
        "rec_mean": _csv(r.mean),
        "rec_std": _csv(r.std),
        "rec_colour": r.colour.upper(),
    }
    if a is not None:
        c.output.append(_out(P.ATTR_CROPS, "TYPE_FP32", [-1, 3, a.input_size[1], a.input_size[0]]))
        values.update(
            attr_size=a.input_size[0], attr_mean=_csv(a.mean), attr_std=_csv(a.std), attr_colour=a.colour.upper()
        )
    _params(c, values)
    add_warmup(c, {P.DECODED: [64, 64, 3]})
    return c


def postprocess(pack: PackManifest, opts: BuildOptions) -> mc.ModelConfig:
    dim = pack.recognizer.embedding_size
    c = _python_step("postprocess", opts)
    c.input.extend([_inp(P.RAW_EMBEDDINGS, "TYPE_FP32", [-1, dim]), _inp(P.FACE_COUNT, "TYPE_INT32", [1])])
    c.output.append(_out("embeddings", "TYPE_FP32", [-1, dim]))
    if pack.attributes is not None:
        c.input.append(_inp(P.RAW_ATTRIBUTES, "TYPE_FP32", [-1, 3]))
        c.output.extend([_out("gender", "TYPE_INT32", [-1]), _out("age", "TYPE_INT32", [-1])])
    add_warmup(c)
    return c


def ensemble(
    pack: PackManifest,
    det_in: TensorSig,
    heads: list[tuple[str, str, list[int]]],
    rec_io: tuple[TensorSig, TensorSig],
    attr_io: tuple[TensorSig, TensorSig] | None,
) -> mc.ModelConfig:
    """The public `face_analysis` ensemble: the contract documented in model_repository/README.md."""
    dim = pack.recognizer.embedding_size
    c = mc.ModelConfig(name=ENSEMBLE, platform="ensemble", max_batch_size=0)
    c.input.extend(
        [
            _inp("image", "TYPE_UINT8", [-1]),
            *_request_options(),
        ]
    )
    c.output.extend([*_face_outputs(), _out("embeddings", "TYPE_FP32", [-1, dim])])
    if attr_io is not None:
        c.output.extend([_out("gender", "TYPE_INT32", [-1]), _out("age", "TYPE_INT32", [-1])])

    def step(model, inputs: dict, outputs: dict):
        s = c.ensemble_scheduling.step.add(model_name=model, model_version=-1)
        s.input_map.update(inputs)
        s.output_map.update(outputs)

    step("preprocess", {"image": "image"}, {n: n for n in (P.DET_INPUT, P.DECODED, P.DET_SCALE)})
    step("detector", {det_in.name: P.DET_INPUT}, {onnx_name: name for onnx_name, name, _ in heads})
    align_in = {name: name for _, name, _ in heads}
    align_in.update({n: n for n in (P.DECODED, P.DET_SCALE, "threshold", "max_faces")})
    align_out = {n: n for n in ("boxes", "scores", "landmarks", P.FACE_COUNT, P.REC_CROPS)}
    if attr_io is not None:
        align_out[P.ATTR_CROPS] = P.ATTR_CROPS
    step("align", align_in, align_out)
    step("embedder", {rec_io[0].name: P.REC_CROPS}, {rec_io[1].name: P.RAW_EMBEDDINGS})
    post_in = {P.RAW_EMBEDDINGS: P.RAW_EMBEDDINGS, P.FACE_COUNT: P.FACE_COUNT}
    post_out = {"embeddings": "embeddings"}
    if attr_io is not None:
        step("attributes", {attr_io[0].name: P.ATTR_CROPS}, {attr_io[1].name: P.RAW_ATTRIBUTES})
        post_in[P.RAW_ATTRIBUTES] = P.RAW_ATTRIBUTES
        post_out.update(gender="gender", age="age")
    step("postprocess", post_in, post_out)
    return c
