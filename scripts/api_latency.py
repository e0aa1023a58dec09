"""Latency of the REST API on one image: cache misses (each request a distinct copy of the image) and cache hits,
beside the same image straight through the ensemble over gRPC.

    python scripts/api_latency.py                          # t1.jpg; starts `face-api serve --embedded-triton`
    python scripts/api_latency.py --url http://HOST:8080 --key fa_... --grpc HOST:8001 photo.jpg -n 200

Sequential requests, one in flight (issue 5's benchmark measures throughput under concurrency).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from face_analysis.client import FaceAnalysisClient  # noqa: E402
from face_analysis.server import free_port  # noqa: E402


def variant(jpeg: bytes, i: int) -> bytes:
    """The same picture with a JPEG comment holding `i`: new bytes (a cache miss), identical pixels."""
    if not jpeg.startswith(b"\xff\xd8"):
        raise SystemExit("--misses needs a JPEG (a comment segment makes each copy distinct)")
    comment = f"copy {i}".encode()
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


def percentiles(times: list[float]) -> str:
    p = np.percentile(times, [50, 95, 99])
    return f"| {p[0]:.1f} | {p[1]:.1f} | {p[2]:.1f} |"


def run(url: str, key: str, grpc: str, image: bytes, n: int) -> None:
    s = requests.Session()
    s.headers["X-API-Key"] = key
    post = lambda data: s.post(f"{url}/v1/faces/analyze", files={"image": ("i.jpg", data)}, timeout=60)  # noqa: E731
    for i in range(5):  # warm up both paths
        post(variant(image, -1 - i)).raise_for_status()
    rows = {}
    times = []
    for i in range(n):
        data = variant(image, i)
        t0 = time.perf_counter()
        r = post(data)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200 and r.headers["X-Cache"] == "miss", r.text
    rows["REST analyze, cache miss"] = times
    hit = variant(image, 0)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = post(hit)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.headers["X-Cache"] == "hit"
    rows["REST analyze, cache hit"] = times
    with FaceAnalysisClient(grpc) as client:
        times = []
        for i in range(n):
            data = variant(image, 10_000 + i)
            t0 = time.perf_counter()
            client.analyze(data)
            times.append((time.perf_counter() - t0) * 1000)
    rows["gRPC ensemble (no API)"] = times
    faces = r.json()["face_count"]
    print(
        f"{faces} face(s), {n} sequential requests per row, {platform.node()} ({platform.machine()}, "
        f"{os.cpu_count()} CPUs)"
    )
    print("| path | p50 ms | p95 ms | p99 ms |\n|---|---|---|---|")
    for name, times in rows.items():
        print(f"| {name} {percentiles(times)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image", nargs="?", help="a JPEG (default: insightface's t1.jpg)")
    ap.add_argument("--url", help="a running API; without it one is started with the embedded Triton")
    ap.add_argument("--key", help="API key for --url")
    ap.add_argument("--grpc", default="127.0.0.1:8001", help="the ensemble behind --url")
    ap.add_argument("-n", type=int, default=100)
    args = ap.parse_args()
    if args.image:
        image = Path(args.image).read_bytes()
    else:
        import insightface

        image = (Path(insightface.__file__).parent / "data/images/t1.jpg").read_bytes()
    if args.url:
        run(args.url, args.key, args.grpc, image, args.n)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        port, grpc_port = free_port(), free_port()
        token = Path(tmp) / "admin-token"
        cmd = [
            sys.executable,
            "-m",
            "control_plane.cli",
            "serve",
            "--embedded-triton",
            "--port",
            str(port),
            "--out",
            f"{tmp}/repo",
            "--admin-token-file",
            str(token),
            "--grpc-port",
            str(grpc_port),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
        ]
        env = {**os.environ, "FACE_API_LOG_LEVEL": "WARNING"}
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    if requests.get(url + "/health/ready", timeout=1).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the API did not start")
                time.sleep(0.3)
            admin = {"Authorization": f"Bearer {token.read_text().strip()}"}
            r = requests.post(f"{url}/v1/admin/keys", json={"name": "bench", "tier": "unlimited"}, headers=admin)
            run(url, r.json()["secret"], f"127.0.0.1:{grpc_port}", image, args.n)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
