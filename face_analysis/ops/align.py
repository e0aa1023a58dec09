"""Face alignment: the 5-point similarity transform to the ArcFace template and the box-centred attribute crop.

`estimate_norm` is Umeyama's least-squares similarity (what scikit-image's `SimilarityTransform.estimate`
computes for InsightFace's `face_align.estimate_norm`), written in numpy so the serving path needs no scikit-image.
"""

from __future__ import annotations

import cv2
import numpy as np

ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 similarity matrix (rotation, uniform scale, translation) mapping src points onto dst points."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n, dim = src.shape
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / n
    d = np.ones(dim)
    if np.linalg.det(cov) < 0:
        d[dim - 1] = -1
    u, s, vt = np.linalg.svd(cov)
    t = np.eye(dim + 1)
    rank = np.linalg.matrix_rank(cov)
    if rank == 0:
        return np.full((dim + 1, dim + 1), np.nan)
    if rank == dim - 1:
        if np.linalg.det(u) * np.linalg.det(vt) > 0:
            t[:dim, :dim] = u @ vt
        else:
            s_ = d[dim - 1]
            d[dim - 1] = -1
            t[:dim, :dim] = u @ np.diag(d) @ vt
            d[dim - 1] = s_
    else:
        t[:dim, :dim] = u @ np.diag(d) @ vt
    scale = (s @ d) / src_c.var(axis=0).sum()
    t[:dim, dim] = dst_mean - scale * (t[:dim, :dim] @ src_mean)
    t[:dim, :dim] *= scale
    return t


def estimate_norm(landmarks: np.ndarray, image_size: int = 112) -> np.ndarray:
    """2x3 affine matrix taking 5 face landmarks onto the ArcFace template scaled to `image_size`."""
    if image_size % 112 == 0:
        ratio, diff_x = image_size / 112.0, 0.0
    elif image_size % 128 == 0:
        ratio = image_size / 128.0
        diff_x = 8.0 * ratio
    else:
        raise ValueError(f"recognition crop size must be a multiple of 112 or 128, got {image_size}")
    dst = ARCFACE_TEMPLATE * ratio
    dst[:, 0] += diff_x
    return umeyama(landmarks, dst)[:2]


def norm_crop(img: np.ndarray, landmarks: np.ndarray, image_size: int = 112) -> np.ndarray:
    """The aligned recognition crop (image_size x image_size), as InsightFace's `face_align.norm_crop`."""
    m = estimate_norm(landmarks, image_size)
    return cv2.warpAffine(img, m, (image_size, image_size), borderValue=0.0)


def box_crop_matrix(box: np.ndarray, output_size: int, margin: float = 1.5) -> np.ndarray:
    """2x3 matrix scaling the box's longer side times `margin` to `output_size`, centred (no rotation)."""
    w, h = box[2] - box[0], box[3] - box[1]
    cx, cy = (box[2] + box[0]) / 2, (box[3] + box[1]) / 2
    scale = output_size / (max(w, h) * margin)
    return np.array(
        [[scale, 0.0, output_size / 2 - cx * scale], [0.0, scale, output_size / 2 - cy * scale]],
        dtype=np.float64,
    )


def box_crop(img: np.ndarray, box: np.ndarray, output_size: int) -> np.ndarray:
    """The attribute-model crop, as InsightFace's `Attribute.get` makes it with `face_align.transform`."""
    m = box_crop_matrix(box, output_size)
    return cv2.warpAffine(img, m, (output_size, output_size), borderValue=0.0)
