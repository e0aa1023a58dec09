"""Request bodies. Images are strings: base64, or a data URL (`data:image/jpeg;base64,...`) as browsers produce;
the same fields may instead be sent as multipart file uploads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from control_plane.security.api_keys import SCOPES

_IMAGE = "A base64 string or a data URL (`data:image/jpeg;base64,...`) of a JPEG, PNG, WebP or BMP image."
_EXAMPLE = "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ..."


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DetectOptions(_Strict):
    detection_threshold: float | None = Field(
        None, gt=0, lt=1, description="minimum face score (the server's default when omitted)"
    )
    max_faces: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="keep at most this many faces: the largest and most central first (InsightFace's rule)",
    )


class AnalyzeOptions(DetectOptions):
    return_embedding: bool = Field(False, description="include each face's L2-normalised embedding")


class MatchOptions(_Strict):
    match_threshold: float | None = Field(
        None, gt=0, lt=1, description="cosine similarity at which faces match (the pack's threshold when omitted)"
    )


class CompareOptions(DetectOptions, MatchOptions):
    mode: Literal["largest", "all"] = Field(
        "largest", description="`largest`: the largest face of each image; `all`: every pair of faces"
    )


class BatchOptions(AnalyzeOptions, MatchOptions):
    pass


class DetectRequest(DetectOptions):
    image: str = Field(description=_IMAGE, examples=[_EXAMPLE])


class AnalyzeRequest(AnalyzeOptions):
    image: str = Field(description=_IMAGE, examples=[_EXAMPLE])


class CompareRequest(CompareOptions):
    image_a: str = Field(description=_IMAGE, examples=[_EXAMPLE])
    image_b: str = Field(description=_IMAGE, examples=[_EXAMPLE])


class BatchRequest(BatchOptions):
    images: list[str] = Field(min_length=1, description="images to analyse (at most the server's max_batch_images)")


class CreateKeyRequest(_Strict):
    name: str = Field(min_length=1, max_length=100, examples=["frontend"])
    scopes: list[Literal[SCOPES]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: ["detect", "analyze", "compare", "batch"], min_length=1
    )
    tier: str = Field("standard", examples=["standard"])
