"""SCRFD detector maths: letterbox, anchor decoding, NMS and the face cap, as InsightFace's `SCRFD` does them.

The detector's raw outputs are grouped per stride as (scores [A,1], bbox distances [A,4], keypoint distances
[A,10]), A = (H/stride) * (W/stride) * anchors. Results match `insightface.model_zoo.scrfd.SCRFD.detect`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

HEAD_WIDTHS = {"score": 1, "bbox": 4, "kps": 10}


@dataclass(frozen=True)
class ScrfdLayout:
    """How a SCRFD export arranges its heads; inferred from the number of outputs as InsightFace does."""

    strides: tuple[int, ...]
    num_anchors: int
    use_kps: bool

    @classmethod
    def from_output_count(cls, n: int) -> "ScrfdLayout":
        layouts = {
            6: cls((8, 16, 32), 2, False),
            9: cls((8, 16, 32), 2, True),
            10: cls((8, 16, 32, 64, 128), 1, False),
            15: cls((8, 16, 32, 64, 128), 1, True),
        }
        if n not in layouts:
            raise ValueError(f"not a SCRFD detector: {n} outputs (expected 6, 9, 10 or 15)")
        return layouts[n]

    def anchors_per_stride(self, width: int, height: int) -> list[int]:
        return [(height // s) * (width // s) * self.num_anchors for s in self.strides]

    def heads(self, width: int, height: int) -> list[tuple[str, int, tuple[int, int]]]:
        """(kind, stride, (anchors, values)) of every output in InsightFace's order: all scores, all boxes, then
        all keypoints."""
        kinds = ("score", "bbox", "kps") if self.use_kps else ("score", "bbox")
        counts = self.anchors_per_stride(width, height)
        return [(k, s, (c, HEAD_WIDTHS[k])) for k in kinds for s, c in zip(self.strides, counts)]


def letterbox(img: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Resize keeping the aspect ratio into the top-left of a black (width, height) canvas.

    Returns the canvas and the scale from original to canvas pixels.
    """
    width, height = size
    im_ratio = img.shape[0] / img.shape[1]
    if im_ratio > height / width:
        new_h = height
        new_w = int(new_h / im_ratio)
    else:
        new_w = width
        new_h = int(new_w * im_ratio)
    new_w, new_h = max(new_w, 1), max(new_h, 1)
    scale = new_h / img.shape[0]
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(img, (new_w, new_h))
    return canvas, scale


@lru_cache(maxsize=64)
def anchor_centers(height: int, width: int, stride: int, num_anchors: int) -> np.ndarray:
    """(x, y) centres of every anchor of one stride, row-major, each repeated `num_anchors` times."""
    centers = np.stack(np.mgrid[:height, :width][::-1], axis=-1).astype(np.float32)
    centers = (centers * stride).reshape(-1, 2)
    if num_anchors > 1:
        centers = np.repeat(centers, num_anchors, axis=0)
    centers.setflags(write=False)
    return centers


def distance2bbox(points: np.ndarray, distance: np.ndarray) -> np.ndarray:
    return np.stack(
        [
            points[:, 0] - distance[:, 0],
            points[:, 1] - distance[:, 1],
            points[:, 0] + distance[:, 2],
            points[:, 1] + distance[:, 3],
        ],
        axis=-1,
    )


def distance2kps(points: np.ndarray, distance: np.ndarray) -> np.ndarray:
    n = distance.shape[1] // 2
    xs = points[:, 0:1] + distance[:, 0::2]
    ys = points[:, 1:2] + distance[:, 1::2]
    return np.stack([xs, ys], axis=-1).reshape(-1, n, 2)


def decode(
    heads: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    layout: ScrfdLayout,
    input_size: tuple[int, int],
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn per-stride head outputs into candidates above `threshold`, in detector-input pixels.

    Returns scores [K], boxes [K,4], keypoints [K,5,2] in stride order (not yet sorted or suppressed).
    """
    width, height = input_size
    scores_l, boxes_l, kps_l = [], [], []
    for (scores, bbox, kps), stride in zip(heads, layout.strides):
        scores = scores.reshape(-1)
        idx = np.nonzero(scores >= threshold)[0]
        if idx.size == 0:
            continue
        centers = anchor_centers(height // stride, width // stride, stride, layout.num_anchors)[idx]
        scores_l.append(scores[idx])
        boxes_l.append(distance2bbox(centers, bbox[idx] * stride))
        if layout.use_kps and kps is not None:
            kps_l.append(distance2kps(centers, kps[idx] * stride))
    if not scores_l:
        return np.zeros((0,), np.float32), np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32)
    kps_all = np.concatenate(kps_l) if kps_l else np.zeros((sum(map(len, scores_l)), 5, 2), np.float32)
    return np.concatenate(scores_l), np.concatenate(boxes_l), kps_all


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS with InsightFace's +1 pixel area convention; returns kept indices, best score first."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def select_faces(boxes: np.ndarray, image_shape: tuple[int, ...], max_num: int) -> np.ndarray:
    """Indices of the `max_num` faces InsightFace keeps: large faces near the centre first."""
    if max_num <= 0 or boxes.shape[0] <= max_num:
        return np.arange(boxes.shape[0])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    cy, cx = image_shape[0] // 2, image_shape[1] // 2
    off = ((boxes[:, 0] + boxes[:, 2]) / 2 - cx) ** 2 + ((boxes[:, 1] + boxes[:, 3]) / 2 - cy) ** 2
    return np.argsort(area - off * 2.0)[::-1][:max_num]


@dataclass
class Detections:
    boxes: np.ndarray  # [N,4] float32, x1 y1 x2 y2 in original pixels
    scores: np.ndarray  # [N] float32
    landmarks: np.ndarray  # [N,5,2] float32

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def postprocess(
    heads: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    layout: ScrfdLayout,
    input_size: tuple[int, int],
    det_scale: float,
    image_shape: tuple[int, ...],
    threshold: float = 0.5,
    nms_threshold: float = 0.4,
    max_num: int = 0,
) -> Detections:
    """Decode, rescale to original pixels, suppress overlaps and apply the face cap."""
    scores, boxes, kps = decode(heads, layout, input_size, threshold)
    if scores.size == 0:
        return Detections(boxes, scores, kps)
    boxes = boxes / det_scale
    kps = kps / det_scale
    order = np.argsort(-scores, kind="stable")
    scores, boxes, kps = scores[order], boxes[order], kps[order]
    keep = nms(boxes, scores, nms_threshold)
    scores, boxes, kps = scores[keep], boxes[keep], kps[keep]
    chosen = select_faces(boxes, image_shape, max_num)
    return Detections(
        boxes[chosen].astype(np.float32),
        scores[chosen].astype(np.float32),
        kps[chosen].astype(np.float32),
    )
