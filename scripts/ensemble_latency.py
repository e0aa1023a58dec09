"""Per-image latency of one image through the `face_analysis` ensemble, with the time each step spent in Triton.

    python scripts/ensemble_latency.py                     # t1.jpg, embedded CPU Triton with the test pack
    python scripts/ensemble_latency.py --url HOST:8001 photo.jpg -n 200
    python scripts/ensemble_latency.py --baseline           # also time the insightface package in-process

The baseline runs what a user would otherwise write with the `insightface` package on the test pack's files:
decode, `SCRFD.detect` at 640x640, and per face `face_align.norm_crop` + the recognizer in onnxruntime.

Sequential calls, one in flight: this is latency, not throughput (issue 5's benchmark measures that).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

from face_analysis.client import FaceAnalysisClient


def step_stats(url: str) -> dict:
    stats = grpcclient.InferenceServerClient(url).get_inference_statistics(as_json=True)
    return {m["name"]: m["inference_stats"] for m in stats["model_stats"]}


def measure(url: str, data: bytes, n: int, warmup: int) -> None:
    with FaceAnalysisClient(url) as client:
        info = client.pack_info()
        for _ in range(warmup):
            faces = len(client.analyze(data))
        before = step_stats(url)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            client.analyze(data)
            times.append((time.perf_counter() - t0) * 1000)
        after = step_stats(url)
    p = np.percentile(times, [50, 95, 99])
    print(f"pack {info.pack}, {faces} face(s), {n} sequential calls on {platform.node()} ({platform.machine()})")
    print(f"| latency ms | p50 {p[0]:.1f} | p95 {p[1]:.1f} | p99 {p[2]:.1f} | mean {statistics.fmean(times):.1f} |")
    print("| step | calls | queue ms | compute in ms | compute ms | compute out ms |")
    print("|---|---|---|---|---|---|")
    for name in sorted(after):
        a, b = after[name], before.get(name)
        calls = int(a["success"]["count"]) - int(b["success"]["count"]) if b else 0
        if not calls:
            continue

        ms = {
            k: (int(a[k]["ns"]) - int(b[k]["ns"])) / calls / 1e6
            for k in ("queue", "compute_input", "compute_infer", "compute_output")
        }
        print(
            f"| {name} | {calls} | {ms['queue']:.2f} | {ms['compute_input']:.2f} | {ms['compute_infer']:.2f} "
            f"| {ms['compute_output']:.2f} |"
        )


def baseline(data: bytes, models: Path, n: int, warmup: int) -> None:
    import cv2
    import onnxruntime as ort
    from insightface.model_zoo.scrfd import SCRFD
    from insightface.utils import face_align

    detector = SCRFD(str(models / "det_500m.onnx"))
    detector.prepare(-1, input_size=(640, 640))
    recognizer = ort.InferenceSession(str(models / "mobilefacenet.onnx"), providers=["CPUExecutionProvider"])
    mean = np.array([0.485, 0.456, 0.406], np.float32) * 255
    std = np.array([0.229, 0.224, 0.225], np.float32) * 255

    def once():
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        _, kpss = detector.detect(img, input_size=(640, 640))
        for kps in kpss:
            crop = face_align.norm_crop(img, kps, 112)
            recognizer.run(None, {"input0": ((crop[:, :, ::-1] - mean) / std).transpose(2, 0, 1)[None]})

    for _ in range(warmup):
        once()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        once()
        times.append((time.perf_counter() - t0) * 1000)
    p = np.percentile(times, [50, 95, 99])
    print(
        f"| insightface in-process ms | p50 {p[0]:.1f} | p95 {p[1]:.1f} | p99 {p[2]:.1f} | "
        f"mean {statistics.fmean(times):.1f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image", nargs="?", type=Path, help="default: t1.jpg from the insightface wheel")
    ap.add_argument("--url", help="a running Triton; default: start the embedded one on the test pack")
    ap.add_argument("-n", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--baseline", action="store_true", help="also time insightface in-process (test pack)")
    args = ap.parse_args()
    if args.image is None:
        import insightface

        args.image = Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"
    data = args.image.read_bytes()
    import tempfile

    from face_analysis.packs import load_manifest
    from face_analysis.packs.fetch import fetch_pack
    from face_analysis.repository.build import build_repository
    from face_analysis.server import EmbeddedTriton, free_port

    pack = load_manifest("test")
    models = fetch_pack(pack, Path("models"))
    if args.url:
        measure(args.url, data, args.n, args.warmup)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            repo = build_repository(pack, models, Path(tmp) / "repo")
            with EmbeddedTriton(repo, free_port(), free_port(), free_port(), work_dir=Path(tmp)) as triton:
                measure(triton.grpc_url, data, args.n, args.warmup)
    if args.baseline:  # after the server is gone, so both had the machine to themselves
        baseline(data, models, args.n, args.warmup)


if __name__ == "__main__":
    main()
