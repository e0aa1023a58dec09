"""Face-embedding comparison maths: cosine similarity, a 0-100 score, the largest face."""

from __future__ import annotations

import numpy as np


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, D] x [M, D] -> [N, M] cosine similarities (re-normalised, so raw embeddings work too)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.clip(a @ b.T, -1.0, 1.0)


def similarity_score(cosine: float | np.ndarray, threshold: float) -> float | np.ndarray:
    """Map cosine similarity to 0-100 so that the pack's match threshold lands on 50.

    Piecewise linear: cosine <= 0 -> 0 (unrelated faces sit near 0), threshold -> 50, 1 -> 100. Monotonic, so a
    score orders pairs exactly as the cosine does; the threshold differs per recognizer, the 50 does not.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError("threshold must be in (0, 1)")
    c = np.clip(np.asarray(cosine, dtype=np.float64), 0.0, 1.0)
    score = np.where(c < threshold, 50.0 * c / threshold, 50.0 + 50.0 * (c - threshold) / (1.0 - threshold))
    return float(score) if score.ndim == 0 else score


def largest_face(boxes: np.ndarray) -> int:
    """Index of the box with the largest area ([N, 4] x1, y1, x2, y2); -1 when there is none."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    if len(boxes) == 0:
        return -1
    areas = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    return int(np.argmax(areas))
