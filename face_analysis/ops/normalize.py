"""Turning uint8 BGR images into the float NCHW tensors the networks take, and decoding network outputs."""

from __future__ import annotations

import cv2
import numpy as np


class Normalizer:
    """(pixel - mean) / std per channel, optionally swapping BGR to RGB, into an NCHW float32 batch.

    mean and std are given in the network's channel order and in 0..255 pixel units. OpenCV's blob functions do
    the swap, subtraction and layout change in one pass (4x faster than numpy here) and are what InsightFace
    itself calls, so uniform-std models get bit-identical tensors.
    """

    def __init__(self, mean, std, rgb: bool = True):
        self.rgb = rgb
        self.mean = tuple(float(m) for m in mean)
        std = np.asarray(std, dtype=np.float64)
        self.uniform = bool(np.all(std == std[0]))
        self.scale = float(1.0 / std[0]) if self.uniform else 1.0
        self.inv_std = (1.0 / std).astype(np.float32).reshape(1, 3, 1, 1)

    def __call__(self, images) -> np.ndarray:
        """images: [N,H,W,3] / [H,W,3] uint8 BGR, or a list of [H,W,3] -> [N,3,H,W] float32."""
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = [images]
        images = list(images)
        h, w = images[0].shape[:2]
        blob = cv2.dnn.blobFromImages(images, self.scale, (w, h), self.mean, swapRB=self.rgb, crop=False)
        if not self.uniform:
            blob *= self.inv_std
        return blob


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
