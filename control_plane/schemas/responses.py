"""Response bodies: what a client can rely on. Coordinates are in the pixels of the image as displayed (EXIF
orientation applied); gender and age are present only when the serving pack has an attribute model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

_FACE = {
    "box": {"x1": 745.3, "y1": 342.2, "x2": 847.3, "y2": 480.1},
    "score": 0.879,
    "landmarks": [[761.1, 400.1], [803.8, 399.8], [774.6, 429.0], [767.2, 444.4], [805.0, 443.5]],
}


class Box(BaseModel):
    x1: float
    y1: float
    x2: float
    y2: float


class Face(BaseModel):
    box: Box
    score: float = Field(description="detection confidence, 0-1")
    landmarks: list[list[float]] = Field(
        description="5 points [x, y]: left eye, right eye, nose tip, left and right mouth corners"
    )
    gender: Literal["female", "male"] | None = None
    age: int | None = None
    embedding: list[float] | None = Field(None, description="L2-normalised; compare only within one pack")


class ImageInfo(BaseModel):
    format: str
    width: int
    height: int


class DetectResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "pack": "buffalo_l",
                    "image": {"format": "jpeg", "width": 1280, "height": 886},
                    "face_count": 1,
                    "faces": [{**_FACE, "gender": "male", "age": 31}],
                }
            ]
        }
    )
    pack: str = Field(description="the model pack that produced the result")
    image: ImageInfo
    face_count: int
    faces: list[Face]


class AnalyzeResponse(DetectResponse):
    attributes: bool = Field(description="whether the pack estimates gender and age")
    embedding_size: int


class ComparedFace(BaseModel):
    index: int = Field(description="index of the face in the image's detections (largest area first is not implied)")
    box: Box
    score: float


class Pair(BaseModel):
    face_a: ComparedFace
    face_b: ComparedFace
    similarity: float = Field(description="cosine similarity, -1..1")
    score: float = Field(description="0-100; the pack's threshold maps to 50")
    match: bool


class CompareResponse(Pair):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "face_a": {"index": 0, "box": _FACE["box"], "score": 0.879},
                    "face_b": {"index": 0, "box": {"x1": 40.2, "y1": 51.0, "x2": 190.7, "y2": 240.3}, "score": 0.91},
                    "similarity": 0.62,
                    "score": 72.9,
                    "match": True,
                    "pack": "buffalo_l",
                    "threshold": 0.3,
                    "mode": "largest",
                    "faces_a": 6,
                    "faces_b": 1,
                }
            ]
        }
    )
    pack: str
    threshold: float = Field(description="the match threshold applied")
    mode: Literal["largest", "all"]
    faces_a: int
    faces_b: int
    pairs: list[Pair] | None = Field(None, description="every pair, best first (mode `all`)")


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "invalid_image",
                        "message": "the JPEG header is corrupt",
                        "details": {"field": "image"},
                    }
                }
            ]
        }
    )
    error: ErrorBody


class BatchItem(BaseModel):
    index: int
    ok: bool
    result: AnalyzeResponse | None = None
    error: ErrorBody | None = None


class FaceRef(BaseModel):
    image: int
    face: int


class BatchResponse(BaseModel):
    pack: str | None
    threshold: float | None = Field(description="the match threshold for `matches`")
    results: list[BatchItem]
    faces: list[FaceRef] = Field(description="rows/columns of `similarity`: which image and face each is")
    similarity: list[list[float]] = Field(description="cosine similarity of every face with every face")
    matches: list[list[int]] = Field(description="pairs of `faces` indices [i, j], i < j, at or above threshold")


class KeyInfo(BaseModel):
    id: str
    name: str
    scopes: list[str]
    tier: str
    created_at: str | None
    last_used_at: str | None
    revoked_at: str | None
    revoked: bool


class CreatedKey(KeyInfo):
    secret: str = Field(description="shown once; only its hash is stored")


class UsageRow(BaseModel):
    date: str
    route: str
    requests: int
    images: int
    faces: int


class UsageResponse(BaseModel):
    key_id: str
    days: int
    usage: list[UsageRow]
    totals: dict[str, int]
