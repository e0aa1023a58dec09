"""Many images in one request: each analysed on its own (a bad item fails only its slot), then every face
compared with every face."""

from __future__ import annotations

import asyncio

import numpy as np

from control_plane.core.errors import ApiError
from control_plane.services.comparison import largest_faces, match_threshold, same_recognizer
from control_plane.services.faces import Analysis, FaceService, analyze_json
from control_plane.services.images import CheckedImage
from face_analysis.ops.similarity import cosine_matrix


async def run_batch(
    service: FaceService,
    items: list[CheckedImage | ApiError],
    *,
    detection_threshold: float | None,
    max_faces: int | None,
    embedding: bool,
    threshold: float | None,
    matrix_faces_per_image: int,
) -> dict:
    async def one(item):
        if isinstance(item, ApiError):
            return item
        try:
            return await service.analyze(item, detection_threshold, max_faces)
        except ApiError as exc:
            return exc

    outcomes = await asyncio.gather(*(one(item) for item in items))
    analyses = [o for o in outcomes if isinstance(o, Analysis)]
    errors = [o for o in outcomes if isinstance(o, ApiError)]
    if not analyses and errors and all(e.status >= 500 for e in errors):
        raise errors[0]  # nothing was analysed because the service is down: say so for the whole request
    pack = analyses[0].pack if analyses else None

    results, refs, embeddings = [], [], []
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, Analysis):
            try:
                same_recognizer([pack, outcome.pack])
            except ApiError as exc:
                outcome = exc
        if isinstance(outcome, ApiError):
            results.append({"index": index, "ok": False, "error": outcome.body()["error"]})
            continue
        results.append({"index": index, "ok": True, "result": analyze_json(outcome, embedding)})
        for face in largest_faces(outcome, matrix_faces_per_image):
            refs.append({"image": index, "face": int(face)})
            embeddings.append(outcome.result.embeddings[face])

    sim = cosine_matrix(np.array(embeddings), np.array(embeddings)) if embeddings else np.zeros((0, 0))
    t = match_threshold(pack, threshold) if pack else None
    matches = [[int(i), int(j)] for i, j in zip(*np.nonzero(np.triu(sim >= t, k=1)))] if t is not None else []
    return {
        "pack": pack.pack if pack else None,
        "threshold": t,
        "results": results,
        "faces": refs,
        "similarity": np.round(sim, 6).tolist(),
        "matches": matches,
    }
