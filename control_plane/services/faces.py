"""Analysing one image: the cache in front of the inference gateway, and the result as the API's JSON.

The cache holds the ensemble's arrays (never the image), keyed by the image's SHA-256, the pack and the options
that change the result; responses are formatted from those arrays, so a hit answers exactly what the miss did.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from control_plane.cache.codec import CacheCodecError, decode_result, encode_result
from control_plane.cache.keys import cache_key_for_digest
from control_plane.cache.tiered import TieredCache
from control_plane.core.errors import ApiError
from control_plane.core.metrics import Metrics
from control_plane.inference.gateway import InferenceGateway
from control_plane.services.images import CheckedImage
from face_analysis.client import AnalysisResult, PackInfo

GENDERS = {0: "female", 1: "male"}


@dataclass(frozen=True)
class Analysis:
    image: CheckedImage
    result: AnalysisResult
    pack: PackInfo
    cache_tier: str | None  # the tier that answered, None when Triton did


class FaceService:
    def __init__(self, gateway: InferenceGateway, cache: TieredCache, metrics: Metrics):
        self.gateway, self.cache, self.metrics = gateway, cache, metrics
        # identical analyses in flight share one Triton call (a compare of one image with itself, a burst of
        # retries from a client, the same photo uploaded by many users at once)
        self._pending: dict[tuple, asyncio.Future] = {}

    async def analyze(
        self, image: CheckedImage, detection_threshold: float | None = None, max_faces: int | None = None
    ) -> Analysis:
        options = {"detection_threshold": detection_threshold, "max_faces": max_faces}
        analysis = await self._cached(image, options)
        if analysis is None:
            try:
                analysis = await self._single_flight(image, options)
            except ApiError as exc:
                if exc.status >= 500 or "field" in exc.details:
                    raise
                # the ensemble refused this image (decodable header, corrupt pixels): say which field it was
                raise ApiError(
                    exc.code, exc.message, details={**exc.details, "field": image.field}, status=exc.status
                ) from None
        n = len(analysis.result)
        self.metrics.faces_per_image.observe(n)
        self.metrics.detections.labels("faces" if n else "no_face").inc()
        return analysis

    async def _single_flight(self, image: CheckedImage, options: dict) -> Analysis:
        flight = (image.sha256, options["detection_threshold"], options["max_faces"])
        pending = self._pending.get(flight)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled() or asyncio.current_task().cancelling():
                    raise  # this request itself was cancelled
                return await self._single_flight(image, options)  # the leader's client left: go again
        future = asyncio.get_running_loop().create_future()
        self._pending[flight] = future
        try:
            result, pack = await self.gateway.analyze(image.data, options["detection_threshold"], options["max_faces"])
            analysis = Analysis(image, result, pack, None)
            meta = {"pack": dataclasses.asdict(pack)}
            await self.cache.set(cache_key_for_digest(image.sha256, pack.pack, options), encode_result(result, meta))
            future.set_result(analysis)
            return analysis
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            del self._pending[flight]

    async def _cached(self, image: CheckedImage, options: dict) -> Analysis | None:
        pack = self.gateway.expected_pack()
        if pack is None:  # Triton has not answered yet: nothing can be cached under a known pack
            return None
        value, tier = await self.cache.get(cache_key_for_digest(image.sha256, pack.pack, options))
        if value is None:
            return None
        try:
            result, meta = decode_result(value)
            return Analysis(image, result, PackInfo(**meta["pack"]), tier)
        except (CacheCodecError, KeyError, TypeError):
            return None  # written by another version: recompute


def box_json(box) -> dict:
    return {"x1": float(box[0]), "y1": float(box[1]), "x2": float(box[2]), "y2": float(box[3])}


def face_json(result: AnalysisResult, i: int, *, attributes: str = "present", embedding: bool = False) -> dict:
    """One face. `attributes`: "present" adds gender/age only when the pack has them, "always" adds them as
    null otherwise, "never" leaves them out."""
    face = {
        "box": box_json(result.boxes[i]),
        "score": float(result.scores[i]),
        "landmarks": result.landmarks[i].astype(float).tolist(),
    }
    has = result.gender is not None and result.age is not None
    if attributes == "always" or (attributes == "present" and has):
        face["gender"] = GENDERS.get(int(result.gender[i])) if has else None
        face["age"] = int(result.age[i]) if has else None
    if embedding:
        face["embedding"] = result.embeddings[i].astype(float).tolist()
    return face


def detect_json(analysis: Analysis) -> dict:
    result = analysis.result
    return {
        "pack": analysis.pack.pack,
        "image": analysis.image.info(),
        "face_count": len(result),
        "faces": [face_json(result, i) for i in range(len(result))],
    }


def analyze_json(analysis: Analysis, embedding: bool) -> dict:
    result = analysis.result
    return {
        "pack": analysis.pack.pack,
        "image": analysis.image.info(),
        "attributes": analysis.pack.attributes,
        "embedding_size": analysis.pack.embedding_size,
        "face_count": len(result),
        "faces": [face_json(result, i, attributes="always", embedding=embedding) for i in range(len(result))],
    }
