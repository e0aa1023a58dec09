"""Lay out a servable Triton model repository from a model pack.

    <out>/preprocess, detector, align, embedder, [attributes], postprocess, face_analysis (the ensemble)

Each model has `config.pbtxt` (GPU target) and, where it differs, `configs/cpu.pbtxt` (CPU target). The step code
comes from the project's `model_repository/` folder, the weights from the pack.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import onnx

from face_analysis.packs.manifest import ModelSpec, PackManifest
from face_analysis.repository import configs
from face_analysis.repository.configs import BuildOptions
from face_analysis.repository.onnx_tools import (
    TensorSig,
    add_detector_preprocessing,
    has_detector_preprocessing,
    has_dynamic_batch,
    is_detector_batched,
    make_batch_dynamic,
    make_detector_batched,
    signature,
)

SOURCE_DIR = Path(__file__).resolve().parents[2] / "model_repository"
MARKER = ".face-analysis-repository"
CONTRACT_VERSION = "1"


class BuildError(RuntimeError):
    pass


def _write_model(out: Path, name: str, gpu, cpu=None, code: str | None = None) -> Path:
    folder = out / name
    (folder / "1").mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(configs.to_text(gpu))
    if cpu is not None:
        (folder / "configs").mkdir(exist_ok=True)
        (folder / "configs" / "cpu.pbtxt").write_text(configs.to_text(cpu))
    if code:
        shutil.copyfile(SOURCE_DIR / code / "model.py", folder / "1" / "model.py")
    return folder


def _float32_signature(src: Path, model: onnx.ModelProto) -> tuple[list[TensorSig], list[TensorSig]]:
    inputs, outputs = signature(model)
    if not all(t.is_float32 for t in inputs + outputs):
        raise BuildError(f"{src.name}: the pipeline feeds and reads float32 tensors; this model uses other types")
    return inputs, outputs


def _place_onnx(src: Path, dst: Path) -> tuple[list[TensorSig], list[TensorSig]]:
    """Put a recognizer's or attribute model's weights at `dst`: linked or copied as they are, or, when pinned to
    batch 1, rewritten (and checked against per-sample runs) so Triton can batch them.
    Returns the source model's (inputs, outputs); the rewrite keeps every tensor name."""
    model = onnx.load(str(src))
    inputs, outputs = _float32_signature(src, model)
    if not has_dynamic_batch(model):
        try:
            onnx.save(make_batch_dynamic(model), str(dst))
        except ValueError as exc:
            raise BuildError(f"{src.name}: {exc}") from None
        return inputs, outputs
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
    return inputs, outputs


def _place_detector(src: Path, dst: Path, spec: ModelSpec) -> tuple[list[TensorSig], list[TensorSig]]:
    """Write the SCRFD detector Triton serves to `dst`: heads batched ([B, A, C], checked against the original run
    per image, unless the file already is) and the normalisation in the graph, so it takes the preprocess step's
    uint8 BGR canvases [B, H, W, 3] (checked against the float model fed `Normalizer`'s tensors).
    Returns the source model's (inputs, outputs); the rewrites keep every tensor name."""
    model = onnx.load(str(src))
    if has_detector_preprocessing(model):
        raise BuildError(
            f"{src.name}: the detector already takes uint8 images; give the float NCHW export, the build adds the "
            "normalisation itself"
        )
    inputs, outputs = _float32_signature(src, model)
    try:
        batched = model if is_detector_batched(model) else make_detector_batched(model)
        onnx.save(add_detector_preprocessing(batched, spec.mean, spec.std, rgb=spec.rgb), str(dst))
    except ValueError as exc:
        raise BuildError(f"{src.name}: {exc}") from None
    return inputs, outputs


def _warmup_image(path: Path) -> Path:
    """A small synthetic JPEG the preprocess step decodes while loading (Triton model warmup)."""
    import cv2
    import numpy as np

    y, x = np.mgrid[:96, :128]
    img = np.dstack([x * 2, y * 2, (x + y)]).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cv2.imencode(".jpg", img)[1].tobytes())
    return path


def _prepare_out(out: Path) -> None:
    if out.exists():
        if not (out / MARKER).exists() and any(out.iterdir()):
            raise BuildError(f"{out} exists and is not a repository this tool built; not touching it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("built by `face-analysis repo build`; rebuilt from scratch each time\n")


def build_repository(pack: PackManifest, pack_dir: Path, out: Path, opts: BuildOptions | None = None) -> Path:
    """Write the repository for `pack` (files in `pack_dir`) into `out`, replacing an earlier build there."""
    opts = opts or BuildOptions()
    pack_dir, out = Path(pack_dir), Path(out)
    for role, spec in pack.roles.items():
        if not (pack_dir / spec.file).is_file():
            raise BuildError(
                f"{role} file {spec.file} not found in {pack_dir}; run `face-analysis pack fetch {pack.name}`"
            )
    _prepare_out(out)

    det_folder = out / "detector" / "1"
    det_folder.mkdir(parents=True)
    det_in_list, det_out = _place_detector(pack_dir / pack.detector.file, det_folder / "model.onnx", pack.detector)
    try:
        layout, heads = configs.detector_heads(det_out, pack.detector)
    except ValueError as exc:
        raise BuildError(f"{pack.detector.file}: {exc}") from None
    if not layout.use_kps:
        raise BuildError(f"{pack.detector.file} predicts no landmarks; recognition crops need the 5 keypoints")
    _write_model(out, "detector", *configs.detector(pack, det_in_list[0], heads, opts), code="onnx_cpu")

    def batched(name: str, spec, width: int):
        folder = out / name / "1"
        folder.mkdir(parents=True)
        sig_in, sig_out = _place_onnx(pack_dir / spec.file, folder / "model.onnx")
        _write_model(out, name, *configs.batched_model(name, spec, sig_in[0], sig_out[0], width, opts), code="onnx_cpu")
        return sig_in[0], sig_out[0]

    rec_io = batched("embedder", pack.recognizer, pack.recognizer.embedding_size)
    attr_io = batched("attributes", pack.attributes, 3) if pack.attributes else None

    sample = _warmup_image(out / "preprocess" / "warmup" / "image.jpg")
    _write_model(
        out, "preprocess", configs.preprocess(pack, opts, (sample.name, sample.stat().st_size)), code="preprocess"
    )
    _write_model(out, "align", configs.align(pack, layout, opts), code="align")
    _write_model(out, "postprocess", configs.postprocess(pack, opts), code="postprocess")
    ens = configs.ensemble(pack, det_in_list[0], heads, rec_io, attr_io)
    # Clients (the control plane among them) read what they are talking to from the ensemble's config.
    for key, value in {
        "contract_version": CONTRACT_VERSION,
        "pack": pack.name,
        "embedding_size": pack.recognizer.embedding_size,
        "match_threshold": pack.recognizer.match_threshold if pack.recognizer.match_threshold is not None else "",
        "attributes": "true" if pack.attributes else "false",
        "max_faces": opts.max_faces,
    }.items():
        ens.parameters[key].string_value = str(value)
    _write_model(out, configs.ENSEMBLE, ens)
    return out
