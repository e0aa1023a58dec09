"""Write a SCRFD detector whose outputs keep the batch ([B, A, C] per head) and check it against the original.

    python scripts/export_batched_detector.py ../shared/models/det_500m.onnx det_500m_batched.onnx
    python scripts/export_batched_detector.py src.onnx dst.onnx --check-image photo.jpg --check-image other.png

The rewrite is `face_analysis.repository.onnx_tools.make_detector_batched`; it refuses to write a file whose batched
outputs differ from the original run one image at a time. The printed figure is the largest absolute difference
between the two: on seeded image-like tensors, and on the letterboxed check images (each also mirrored, so the
batch holds at least two images) when given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx

from face_analysis.ops.normalize import Normalizer
from face_analysis.ops.scrfd import letterbox
from face_analysis.repository.onnx_tools import check_detector_batching, make_detector_batched


def image_batch(paths: list[Path], size: tuple[int, int]) -> np.ndarray:
    """Letterboxed, SCRFD-normalised ((x - 127.5) / 128, RGB) batch of the images and their mirror images."""
    canvases = []
    for path in paths:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"cannot read the image {path}")
        canvases += [letterbox(img, size)[0], letterbox(np.ascontiguousarray(img[:, ::-1]), size)[0]]
    return Normalizer([127.5] * 3, [128.0] * 3, rgb=True)(canvases)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="the SCRFD ONNX file (outputs [A, C] per head)")
    ap.add_argument("dst", type=Path, help="where to write the batched file")
    ap.add_argument("--check-image", type=Path, action="append", default=[], metavar="PATH", help="repeatable")
    ap.add_argument("--size", type=int, nargs=2, default=(640, 640), metavar=("W", "H"), help="check-image size")
    args = ap.parse_args(argv)

    original = onnx.load(str(args.src))
    try:
        batched = make_detector_batched(original, verify=False)
        diff = check_detector_batching(original, batched)
        print(f"seeded probes, batch 3: max |batched - per-image| = {diff:.3g}")
        if args.check_image:
            x = image_batch(args.check_image, tuple(args.size))
            diff = check_detector_batching(original, batched, images=x)
            print(f"{len(x)} check images at {args.size[0]}x{args.size[1]}: max |batched - per-image| = {diff:.3g}")
    except ValueError as exc:
        print(f"not written: {exc}", file=sys.stderr)
        return 1
    onnx.save(batched, str(args.dst))
    outs = ", ".join(
        f"{o.name} {[d.dim_param or d.dim_value or '?' for d in o.type.tensor_type.shape.dim]}"
        for o in batched.graph.output
    )
    print(f"wrote {args.dst}: outputs {outs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
