"""1:1 comparison and face x face similarity: which faces, which threshold, and never across recognizers."""

from __future__ import annotations

import numpy as np

from control_plane.core.errors import ApiError
from control_plane.core.metrics import Metrics
from control_plane.services.faces import Analysis, box_json
from face_analysis.client import PackInfo
from face_analysis.ops.similarity import cosine_matrix, largest_face, similarity_score

# used only when a pack manifest names no threshold and the request gives none
FALLBACK_THRESHOLD = 0.3


def match_threshold(pack: PackInfo, requested: float | None) -> float:
    if requested is not None:
        return requested
    return pack.match_threshold if pack.match_threshold is not None else FALLBACK_THRESHOLD


def same_recognizer(packs: list[PackInfo]) -> None:
    """Embeddings of different recognizers live in different spaces: comparing them would be noise."""
    names = {(p.pack, p.embedding_size) for p in packs}
    if len(names) > 1:
        raise ApiError(
            "pack_mismatch",
            "the images were analysed by different model packs (a fallback served part of the request); retry",
            details={"packs": sorted(n for n, _ in names)},
        )


def largest_faces(analysis: Analysis, limit: int) -> np.ndarray:
    """Indices of at most `limit` faces, largest first (bounds the size of a similarity matrix)."""
    boxes = analysis.result.boxes
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.argsort(-areas, kind="stable")[:limit]


def _face(analysis: Analysis, i: int) -> dict:
    return {"index": int(i), "box": box_json(analysis.result.boxes[i]), "score": float(analysis.result.scores[i])}


def compare(a: Analysis, b: Analysis, *, mode: str, threshold: float | None, max_faces: int, metrics: Metrics) -> dict:
    same_recognizer([a.pack, b.pack])
    for name, analysis in (("a", a), ("b", b)):
        if len(analysis.result) == 0:
            raise ApiError("no_face", f"no face was found in image_{name}", details={"image": f"image_{name}"})
    t = match_threshold(a.pack, threshold)
    score_t = a.pack.match_threshold or FALLBACK_THRESHOLD  # the 0-100 scale stays the pack's

    def pair(i: int, j: int, sim: float) -> dict:
        return {
            "face_a": _face(a, i),
            "face_b": _face(b, j),
            "similarity": sim,
            "score": round(similarity_score(sim, score_t), 2),
            "match": sim >= t,
        }

    if mode == "largest":
        i, j = largest_face(a.result.boxes), largest_face(b.result.boxes)
        sim = float(cosine_matrix(a.result.embeddings[i : i + 1], b.result.embeddings[j : j + 1])[0, 0])
        pairs = [pair(i, j, sim)]
    else:
        ia, ib = largest_faces(a, max_faces), largest_faces(b, max_faces)
        m = cosine_matrix(a.result.embeddings[ia], b.result.embeddings[ib])
        order = np.argsort(-m, axis=None, kind="stable")
        pairs = [pair(int(ia[k // len(ib)]), int(ib[k % len(ib)]), float(m.flat[k])) for k in order]
    for p in pairs:
        metrics.similarity.observe(p["similarity"])
    body = {
        **pairs[0],
        "pack": a.pack.pack,
        "threshold": t,
        "mode": mode,
        "faces_a": len(a.result),
        "faces_b": len(b.result),
    }
    if mode == "all":
        body["pairs"] = pairs
    return body
