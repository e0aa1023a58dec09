"""Clients of the `face_analysis` ensemble over Triton gRPC, sync and asyncio, returning typed results.

    from face_analysis.client import FaceAnalysisClient
    with FaceAnalysisClient("127.0.0.1:8001") as client:
        result = client.analyze(open("group.jpg", "rb").read())
        for face in result.faces:
            print(face.box, face.score, face.age)

One call per image: decoding, detection, alignment, embedding and attributes all run inside Triton, which batches
the recognition steps across concurrent callers. Use `AsyncFaceAnalysisClient` to keep many calls in flight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcclient_aio
from tritonclient.utils import InferenceServerException

from face_analysis.repository.configs import ENSEMBLE

_CODE = re.compile(r"\[([a-z_]+)\]")
_STATUS_CODES = {
    "StatusCode.INVALID_ARGUMENT": "invalid_argument",
    "StatusCode.UNAVAILABLE": "inference_unavailable",
    "StatusCode.DEADLINE_EXCEEDED": "inference_timeout",
    "StatusCode.NOT_FOUND": "model_not_found",
    "StatusCode.RESOURCE_EXHAUSTED": "inference_overloaded",
}


# gRPC's default reconnect backoff grows to two minutes: a client would keep failing long after Triton is back.
# Capping it at one second makes recovery follow the server. Passing channel_args replaces tritonclient's defaults,
# so the unlimited message sizes are restated.
CHANNEL_ARGS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # A target that resolves to several servers (`dns:///triton-headless:8001`, `ipv4:10.0.0.1:8001,10.0.0.2:8001`)
    # gets every call spread over all of them; the default (pick_first) would send one channel's calls to one pod.
    ("grpc.lb_policy_name", "round_robin"),
]


class EnsembleError(RuntimeError):
    """A failed ensemble call. `code` is stable (`invalid_image`, `image_too_large`, `unsupported_media_type`,
    `invalid_argument`, `inference_unavailable`, `inference_timeout`, ...); `status` is the gRPC status."""

    def __init__(self, code: str, message: str, status: str | None = None):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status

    @property
    def is_client_error(self) -> bool:
        return self.status == "StatusCode.INVALID_ARGUMENT"

    @classmethod
    def from_triton(cls, exc: InferenceServerException) -> "EnsembleError":
        message = exc.message() or str(exc)
        status = exc.status()
        found = _CODE.search(message)
        code = found.group(1) if found else _STATUS_CODES.get(str(status), "inference_error")
        clean = message[found.end() :].strip() if found else message
        return cls(code, clean, str(status) if status else None)


@dataclass(frozen=True)
class Face:
    box: np.ndarray  # [4] x1, y1, x2, y2 in original pixels
    score: float
    landmarks: np.ndarray  # [5, 2]: left eye, right eye, nose, left mouth corner, right mouth corner
    embedding: np.ndarray  # [D], L2-normalised
    gender: int | None = None  # InsightFace's coding: 0 female, 1 male; None when the pack has no attribute model
    age: int | None = None

    @property
    def sex(self) -> str | None:
        return None if self.gender is None else ("M" if self.gender == 1 else "F")


@dataclass(frozen=True)
class AnalysisResult:
    boxes: np.ndarray  # [N, 4] float32
    scores: np.ndarray  # [N] float32
    landmarks: np.ndarray  # [N, 5, 2] float32
    embeddings: np.ndarray  # [N, D] float32
    gender: np.ndarray | None = None  # [N] int32
    age: np.ndarray | None = None  # [N] int32

    @cached_property
    def faces(self) -> list[Face]:
        """The same results a face at a time (built on first use: array users do not pay for it)."""
        return [
            Face(
                self.boxes[i],
                float(self.scores[i]),
                self.landmarks[i],
                self.embeddings[i],
                None if self.gender is None else int(self.gender[i]),
                None if self.age is None else int(self.age[i]),
            )
            for i in range(len(self.scores))
        ]

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def from_response(cls, response) -> "AnalysisResult":
        return cls(
            boxes=response.as_numpy("boxes").reshape(-1, 4),
            scores=response.as_numpy("scores").reshape(-1),
            landmarks=response.as_numpy("landmarks").reshape(-1, 5, 2),
            embeddings=response.as_numpy("embeddings"),
            gender=response.as_numpy("gender"),
            age=response.as_numpy("age"),
        )


@dataclass(frozen=True)
class PackInfo:
    """What the ensemble serves, read from its config parameters."""

    pack: str
    embedding_size: int
    match_threshold: float | None
    attributes: bool
    max_faces: int
    contract_version: str

    @classmethod
    def from_config(cls, config: dict) -> "PackInfo":
        p = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        return cls(
            pack=p.get("pack", "unknown"),
            embedding_size=int(p.get("embedding_size") or 0),
            match_threshold=float(p["match_threshold"]) if p.get("match_threshold") else None,
            attributes=p.get("attributes") == "true",
            max_faces=int(p.get("max_faces") or 0),
            contract_version=p.get("contract_version", ""),
        )


def build_inputs(module, image: bytes, threshold: float | None, max_faces: int | None) -> list:
    """Ensemble inputs for one encoded image; `module` is tritonclient.grpc or its aio twin (same classes)."""
    if not isinstance(image, (bytes, bytearray, memoryview)):
        raise TypeError(f"image must be encoded bytes (JPEG, PNG, WebP, BMP), not {type(image).__name__}")
    data = np.frombuffer(image, dtype=np.uint8)
    inputs = [module.InferInput("image", [data.size], "UINT8")]
    inputs[0].set_data_from_numpy(data)
    if threshold is not None:
        t = module.InferInput("threshold", [1], "FP32")
        t.set_data_from_numpy(np.array([threshold], dtype=np.float32))
        inputs.append(t)
    if max_faces is not None:
        m = module.InferInput("max_faces", [1], "INT32")
        m.set_data_from_numpy(np.array([max_faces], dtype=np.int32))
        inputs.append(m)
    return inputs


class FaceAnalysisClient:
    """Synchronous client. `analyze` may be called from several threads at once: tritonclient's gRPC infer is
    thread-safe."""

    def __init__(self, url: str = "127.0.0.1:8001", model: str = ENSEMBLE, timeout_s: float | None = 30.0):
        self.url, self.model, self.timeout_s = url, model, timeout_s
        self._client = grpcclient.InferenceServerClient(url, channel_args=CHANNEL_ARGS)

    def analyze(self, image: bytes, threshold: float | None = None, max_faces: int | None = None) -> AnalysisResult:
        """Detect every face in one encoded image; with recognition embeddings and, where the pack has them,
        gender and age. Raises `EnsembleError`."""
        inputs = build_inputs(grpcclient, image, threshold, max_faces)
        try:
            response = self._client.infer(self.model, inputs, client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            raise EnsembleError.from_triton(exc) from None
        return AnalysisResult.from_response(response)

    def ready(self) -> bool:
        try:
            return self._client.is_model_ready(self.model)
        except InferenceServerException:
            return False

    def pack_info(self) -> PackInfo:
        return PackInfo.from_config(self._client.get_model_config(self.model, as_json=True)["config"])

    def close(self) -> None:
        self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class AsyncFaceAnalysisClient:
    """asyncio client: many `analyze` calls may be awaited concurrently over one channel."""

    def __init__(self, url: str = "127.0.0.1:8001", model: str = ENSEMBLE, timeout_s: float | None = 30.0):
        self.url, self.model, self.timeout_s = url, model, timeout_s
        self._client = grpcclient_aio.InferenceServerClient(url, channel_args=CHANNEL_ARGS)

    async def analyze(
        self,
        image: bytes,
        threshold: float | None = None,
        max_faces: int | None = None,
        timeout_s: float | None = None,
    ) -> AnalysisResult:
        """As `FaceAnalysisClient.analyze`; `timeout_s` overrides the client's deadline for this call."""
        inputs = build_inputs(grpcclient_aio, image, threshold, max_faces)
        try:
            response = await self._client.infer(self.model, inputs, client_timeout=timeout_s or self.timeout_s)
        except InferenceServerException as exc:
            raise EnsembleError.from_triton(exc) from None
        return AnalysisResult.from_response(response)

    async def ready(self, timeout_s: float | None = None) -> bool:
        try:
            return await self._client.is_model_ready(self.model, client_timeout=timeout_s or self.timeout_s)
        except InferenceServerException:
            return False

    async def pack_info(self, timeout_s: float | None = None) -> PackInfo:
        try:
            config = await self._client.get_model_config(
                self.model, as_json=True, client_timeout=timeout_s or self.timeout_s
            )
        except InferenceServerException as exc:
            raise EnsembleError.from_triton(exc) from None
        return PackInfo.from_config(config["config"])

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()
