"""Call the `face_analysis` ensemble directly over Triton gRPC, the high-throughput path.

    python examples/analyze_images.py photo1.jpg photo2.png            # sequential, sync client
    python examples/analyze_images.py --concurrency 8 *.jpg            # asyncio, 8 calls in flight
    python examples/analyze_images.py --url triton.example:8001 a.jpg  # any Triton serving the ensemble

With several calls in flight Triton batches the recognition steps of different images together.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from face_analysis.client import AnalysisResult, AsyncFaceAnalysisClient, EnsembleError, FaceAnalysisClient


def describe(path: Path, result: AnalysisResult) -> str:
    lines = [f"{path}: {len(result)} face(s)"]
    for face in result.faces:
        x1, y1, x2, y2 = (round(float(v)) for v in face.box)
        attrs = f", {face.sex}, {face.age} years" if face.gender is not None else ""
        lines.append(f"  score {face.score:.3f} at ({x1},{y1})-({x2},{y2}){attrs}, embedding[{face.embedding.size}]")
    return "\n".join(lines)


def run_sync(url: str, paths: list[Path]) -> None:
    with FaceAnalysisClient(url) as client:
        info = client.pack_info()
        print(f"serving pack {info.pack}: {info.embedding_size}-d embeddings, attributes: {info.attributes}")
        t0 = time.perf_counter()
        for path in paths:
            try:
                print(describe(path, client.analyze(path.read_bytes())))
            except EnsembleError as exc:  # e.g. invalid_image for a corrupt file
                print(f"{path}: {exc.code}: {exc.message}")
        print(f"{len(paths)} image(s) in {time.perf_counter() - t0:.2f}s, one at a time")


async def run_async(url: str, paths: list[Path], concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)
    async with AsyncFaceAnalysisClient(url) as client:

        async def one(path: Path) -> str:
            async with gate:
                try:
                    return describe(path, await client.analyze(path.read_bytes()))
                except EnsembleError as exc:
                    return f"{path}: {exc.code}: {exc.message}"

        t0 = time.perf_counter()
        for line in await asyncio.gather(*(one(p) for p in paths)):
            print(line)
        print(f"{len(paths)} image(s) in {time.perf_counter() - t0:.2f}s with {concurrency} in flight")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+", type=Path)
    ap.add_argument("--url", default="127.0.0.1:8001", help="Triton gRPC address")
    ap.add_argument("--concurrency", type=int, default=1, help="> 1 uses the asyncio client")
    args = ap.parse_args()
    if args.concurrency > 1:
        asyncio.run(run_async(args.url, args.images, args.concurrency))
    else:
        run_sync(args.url, args.images)


if __name__ == "__main__":
    main()
