"""`face-analysis`: fetch model packs, lay out the Triton repository, run the embedded server, call the ensemble.

face-analysis pack list
face-analysis pack fetch buffalo_l            # from InsightFace's release, checksum verified
face-analysis repo build --pack test          # -> build/model_repository
face-analysis serve --pack test               # embedded CPU Triton until Ctrl-C
face-analysis analyze t1.jpg                  # the example client against a running server
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from face_analysis.packs.fetch import PackFetchError, fetch_pack
from face_analysis.packs.manifest import ManifestError, builtin_packs, load_manifest
from face_analysis.repository.build import BuildError, build_repository
from face_analysis.repository.configs import BuildOptions

DEFAULT_MODELS_DIR = os.environ.get("FACE_ANALYSIS_MODELS_DIR", "models")
DEFAULT_REPOSITORY = os.environ.get("FACE_ANALYSIS_REPOSITORY", "build/model_repository")
DEFAULT_PACK = os.environ.get("FACE_ANALYSIS_PACK", "test")


def _pack_list(args) -> int:
    for name, m in builtin_packs().items():
        roles = ", ".join(f"{r}={s.file}" for r, s in m.roles.items())
        print(f"{name:12s} {m.description}\n{'':12s} {roles}")
    return 0


def _fetch(args):
    manifest = load_manifest(args.pack)
    folder = fetch_pack(manifest, Path(args.models_dir), from_zip=getattr(args, "from_zip", None))
    return manifest, folder


def _pack_fetch(args) -> int:
    manifest, folder = _fetch(args)
    print(f"{manifest.name}: files ready in {folder}")
    return 0


def _build_options(args) -> BuildOptions:
    return BuildOptions(
        max_faces=args.max_faces,
        detector_max_batch=args.detector_max_batch,
        max_pixels=args.max_pixels,
        cpu_threads=args.cpu_threads,
        engine_cache_dir=args.engine_cache_dir,
    )


def repo_build(args) -> Path:
    manifest, folder = _fetch(args)
    out = build_repository(manifest, Path(args.pack_dir or folder), Path(args.out), _build_options(args))
    print(f"{manifest.name}: repository laid out in {out} (GPU: config.pbtxt, CPU: --model-config-name cpu)")
    return out


def start_embedded_triton(args):
    """Lay out the repository from the pack in `args` and start the embedded CPU Triton on it (`face-analysis
    serve` and `face-api serve --embedded-triton`)."""
    from face_analysis.server import EmbeddedTriton

    repo = repo_build(args)
    triton = EmbeddedTriton(repo, args.http_port, args.grpc_port, args.metrics_port, config_name="cpu")
    print(f"starting the embedded Triton (CPU) on gRPC {triton.grpc_url}, HTTP {triton.http_url} ...", flush=True)
    t0 = time.monotonic()
    triton.start()
    print(f"face_analysis ready after {time.monotonic() - t0:.1f}s; log: {triton.log_path}", flush=True)
    return triton


def _serve(args) -> int:
    triton = start_embedded_triton(args)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        for image in args.example or []:
            _print_analysis(triton.grpc_url, Path(image), json_out=False)
        if args.once:
            return 0
        print("serving; Ctrl-C stops it", flush=True)
        while not stop.wait(1.0):
            if not triton.running():
                print(f"tritonserver exited; last lines of its log:\n{triton.log_tail()}", file=sys.stderr)
                return 1
    finally:
        triton.stop()
        print("stopped", flush=True)
    return 0


def _print_analysis(url: str, image: Path, json_out: bool, threshold=None, max_faces=None) -> None:
    from face_analysis.client import FaceAnalysisClient

    with FaceAnalysisClient(url) as client:
        data = image.read_bytes()
        t0 = time.perf_counter()
        result = client.analyze(data, threshold=threshold, max_faces=max_faces)
        ms = (time.perf_counter() - t0) * 1000
        info = client.pack_info()
    if json_out:
        print(
            json.dumps(
                {
                    "image": str(image),
                    "pack": info.pack,
                    "latency_ms": round(ms, 2),
                    "faces": [
                        {
                            "box": [round(float(v), 2) for v in f.box],
                            "score": round(f.score, 4),
                            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in f.landmarks],
                            "gender": f.sex,
                            "age": f.age,
                            "embedding_size": int(f.embedding.shape[0]),
                        }
                        for f in result.faces
                    ],
                },
                indent=2,
            )
        )
        return
    print(f"{image}: {len(result)} face(s) in {ms:.1f} ms (pack {info.pack}, {info.embedding_size}-d embeddings)")
    for i, f in enumerate(result.faces):
        x1, y1, x2, y2 = (int(round(float(v))) for v in f.box)
        attrs = f" {f.sex} {f.age}y" if f.gender is not None else ""
        print(f"  #{i}: score {f.score:.3f} box ({x1},{y1})-({x2},{y2}){attrs}")


def _analyze(args) -> int:
    for image in args.images:
        _print_analysis(args.url, Path(image), args.json, args.threshold, args.max_faces)
    return 0


def _add_pack_args(p) -> None:
    p.add_argument("--pack", default=DEFAULT_PACK, help="built-in pack name or a manifest .json (default: %(default)s)")
    p.add_argument("--models-dir", default=DEFAULT_MODELS_DIR, help="where fetched packs live (default: %(default)s)")


def add_build_args(p) -> None:
    _add_pack_args(p)
    p.add_argument("--pack-dir", help="use the pack's files from this folder instead of fetching them")
    p.add_argument("--out", default=DEFAULT_REPOSITORY, help="repository folder (default: %(default)s)")
    p.add_argument("--max-faces", type=int, default=128, help="face cap per image (default: %(default)s)")
    p.add_argument(
        "--detector-max-batch",
        type=int,
        default=BuildOptions.detector_max_batch,
        help="images the detector runs together across clients (default: %(default)s)",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=BuildOptions.max_pixels,
        help="larger images are refused from their header (default: %(default)s)",
    )
    p.add_argument("--cpu-threads", default="auto", help="onnxruntime threads on the CPU target (default: auto)")
    p.add_argument("--engine-cache-dir", default=BuildOptions.engine_cache_dir, help="TensorRT engine cache (GPU)")


def add_serve_args(p) -> None:
    """The pack, repository and port options of an embedded Triton."""
    add_build_args(p)
    p.add_argument("--http-port", type=int, default=int(os.environ.get("TRITON_HTTP_PORT", 8000)))
    p.add_argument("--grpc-port", type=int, default=int(os.environ.get("TRITON_GRPC_PORT", 8001)))
    p.add_argument("--metrics-port", type=int, default=int(os.environ.get("TRITON_METRICS_PORT", 8002)))


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="face-analysis", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = ap.add_subparsers(dest="command", required=True)

    pack = sub.add_parser("pack", help="model packs").add_subparsers(dest="pack_command", required=True)
    pack.add_parser("list", help="list the built-in packs").set_defaults(func=_pack_list)
    fetch = pack.add_parser("fetch", help="download and verify a pack")
    fetch.add_argument("pack")
    fetch.add_argument("--models-dir", default=DEFAULT_MODELS_DIR)
    fetch.add_argument("--from-zip", type=Path, help="use an already downloaded pack zip (offline machines)")
    fetch.set_defaults(func=_pack_fetch)

    repo = sub.add_parser("repo", help="Triton model repository").add_subparsers(dest="repo_command", required=True)
    build = repo.add_parser("build", help="lay out the repository from a pack")
    add_build_args(build)
    build.set_defaults(func=lambda a: (repo_build(a), 0)[1])

    serve = sub.add_parser("serve", help="build the repository and run the embedded CPU Triton on it")
    add_serve_args(serve)
    serve.add_argument("--example", action="append", help="analyse this image with the example client once ready")
    serve.add_argument("--once", action="store_true", help="stop after the examples instead of serving")
    serve.set_defaults(func=_serve)

    analyze = sub.add_parser("analyze", help="analyse images with a running face_analysis ensemble")
    analyze.add_argument("images", nargs="+")
    analyze.add_argument("--url", default=os.environ.get("TRITON_GRPC_URL", "127.0.0.1:8001"))
    analyze.add_argument("--threshold", type=float)
    analyze.add_argument("--max-faces", type=int)
    analyze.add_argument("--json", action="store_true")
    analyze.set_defaults(func=_analyze)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from face_analysis.client import EnsembleError
    from face_analysis.server import TritonStartError

    try:
        return int(args.func(args) or 0)
    except (ManifestError, PackFetchError, BuildError, TritonStartError, EnsembleError, FileNotFoundError) as exc:
        name = getattr(exc, "code", None) or type(exc).__name__
        print(f"error ({name}): {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
