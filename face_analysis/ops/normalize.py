"""Turning uint8 BGR images into the float NCHW tensors the networks take, and decoding network outputs."""

from __future__ import annotations

import numpy as np


class Normalizer:
    """(pixel - mean) / std per channel, optionally swapping BGR to RGB, into an NCHW float32 batch.

    mean and std are given in the network's channel order and in 0..255 pixel units.
    """

    def __init__(self, mean, std, rgb: bool = True):
        self.rgb = rgb
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, 1, 3)
        self.inv_std = (1.0 / np.asarray(std, dtype=np.float32)).reshape(1, 1, 1, 3)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """images: [N,H,W,3] or [H,W,3] uint8 BGR -> [N,3,H,W] float32."""
        if images.ndim == 3:
            images = images[None]
        x = images[..., ::-1] if self.rgb else images
        x = x.astype(np.float32)
        x -= self.mean
        x *= self.inv_std
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, eps)


def decode_genderage(pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """InsightFace's genderage head [N,3] -> gender (0 female, 1 male) and age in years, both int32."""
    pred = np.asarray(pred, dtype=np.float32).reshape(-1, 3)
    gender = np.argmax(pred[:, :2], axis=1).astype(np.int32)
    age = np.round(pred[:, 2] * 100).astype(np.int32)
    return gender, age
