"""Reading the `parameters` of a Triton model config (as the Python backend hands it over) and sharing the
names of the tensors that pass between ensemble steps, so the configs and the step code cannot drift apart."""

from __future__ import annotations

import json
import os

# Tensors between steps (the ensemble's internal names and the Python steps' I/O names).
DET_INPUT = "det_input"
DECODED = "decoded"
DET_SCALE = "det_scale"
REC_CROPS = "rec_crops"
ATTR_CROPS = "attr_crops"
FACE_COUNT = "face_count"
RAW_EMBEDDINGS = "raw_embeddings"
RAW_ATTRIBUTES = "raw_attributes"


def head_name(kind: str, stride: int) -> str:
    """The ensemble's name for one SCRFD head output, whatever the ONNX file calls it: score_8, bbox_16, kps_32."""
    return f"{kind}_{stride}"


def model_parameters(args: dict) -> dict[str, str]:
    """The string parameters of the model config the Python backend passes to `initialize`."""
    config = json.loads(args["model_config"])
    return {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}


def floats(value: str) -> list[float]:
    return [float(v) for v in value.split(",") if v.strip()]


def host_threads(value: str | None) -> int:
    """Thread count from a parameter: a number, or 'auto' for the CPUs this process may run on."""
    if value and value != "auto" and int(value) > 0:
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def invalid_argument(pb_utils, code: str, message: str):
    """An error response the client sees as INVALID_ARGUMENT, with our stable code in brackets first."""
    text = f"[{code}] {message}"
    try:
        error = pb_utils.TritonError(text, pb_utils.TritonError.INVALID_ARG)
    except (AttributeError, TypeError):  # stubs older than the error-code API
        error = pb_utils.TritonError(text)
    return pb_utils.InferenceResponse(error=error)
