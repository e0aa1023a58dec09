from __future__ import annotations

import cv2
import numpy as np


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def match(boxes_a: np.ndarray, boxes_b: np.ndarray) -> list[tuple[int, int, float]]:
    """Pair each box of a with its best-overlapping box of b: (i, j, iou)."""
    pairs = []
    for i, a in enumerate(boxes_a):
        ious = [iou(a, b) for b in boxes_b]
        j = int(np.argmax(ious))
        pairs.append((i, j, ious[j]))
    return pairs


def read(path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)
