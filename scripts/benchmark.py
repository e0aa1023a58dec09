"""Side-by-side throughput benchmark on one machine, same images, same model files:

  (a)  the `insightface` package in-process: SCRFD + norm_crop + onnxruntime, sequential (and (a') 4 threads)
  (b)  the `face_analysis` ensemble over gRPC, N coroutines sharing one AsyncFaceAnalysisClient
  (c)  the REST API, POST /v1/faces/analyze, every request a cache miss (new bytes, same pixels)
  (d)  the REST API on a cache hit (the same bytes again)

    python scripts/benchmark.py                 # starts the embedded CPU Triton (test pack) and `face-api serve`
    python scripts/benchmark.py --quick         # smoke run: tiny counts, writes build/benchmark-quick.{md,json}
    python scripts/benchmark.py --triton 127.0.0.1:8001 --api http://127.0.0.1:8080 --key fa_...   # a deployment
    python scripts/benchmark.py --triton 127.0.0.1:8001 --api ... --key ... --baseline --models-dir DIR

For each configuration: images/s, faces/s, p50/p95/p99 latency, CPU (cores busy on average, summed over this
process, tritonserver with its Python-backend stubs and the API process, from /proc/<pid>/stat), and the ratios to
(a). Face counts per image are checked against the baseline's (or, without it, against the first answers seen).
Writes a Markdown report (--out) and the raw numbers (--json). Loopback addresses only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import platform
import secrets
import shlex
import statistics
import struct
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import warnings
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.stack import ApiProcess, TritonProcess, check_loopback_host, http_json  # noqa: E402

DEFAULT_REQUESTS = 400  # per configuration; sized for < 5 minutes on the 2-core development VM (test pack)
QUICK_REQUESTS = 12
BASELINE_THREADS = 4
DEFAULT_CONCURRENCY = "1,4,8,16"
DEFAULT_HIT_CONCURRENCY = "1,8"
BENCH_TIER = {"bench": {"burst": 100000, "per_minute": 10000000}}


# --------------------------------------------------------------------------------------------- pure helpers


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default);
    NaN for no samples."""
    if not samples:
        return math.nan
    xs = sorted(samples)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def latency_summary(samples_ms: Sequence[float]) -> dict[str, float]:
    if not samples_ms:
        return {k: math.nan for k in ("p50", "p95", "p99", "mean", "min", "max")}
    return {
        "p50": percentile(samples_ms, 50),
        "p95": percentile(samples_ms, 95),
        "p99": percentile(samples_ms, 99),
        "mean": sum(samples_ms) / len(samples_ms),
        "min": min(samples_ms),
        "max": max(samples_ms),
    }


@dataclass(frozen=True)
class ProcStat:
    pid: int
    comm: str
    ppid: int
    ticks: int  # utime + stime, in clock ticks (all threads of the process)


def parse_proc_stat(text: str) -> ProcStat:
    """One /proc/<pid>/stat line. The command name is in parentheses and may itself hold spaces and parentheses,
    so the fields after it are found from the last ')'."""
    left, right = text.index("("), text.rindex(")")
    pid = int(text[:left])
    comm = text[left + 1 : right]
    rest = text[right + 2 :].split()
    # rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15
    return ProcStat(pid=pid, comm=comm, ppid=int(rest[1]), ticks=int(rest[11]) + int(rest[12]))


def tree_members(parents: Mapping[int, int], root: int) -> set[int]:
    """`root` and every descendant of it, given pid -> ppid."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    members, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in members or pid not in parents:
            continue
        members.add(pid)
        todo.extend(children.get(pid, ()))
    return members


def tree_ticks(procs: Mapping[int, ProcStat], root: int, with_children: bool = True) -> int | None:
    """CPU ticks of `root` (and its descendants); None when `root` is gone."""
    if root not in procs:
        return None
    if not with_children:
        return procs[root].ticks
    return sum(procs[p].ticks for p in tree_members({p: s.ppid for p, s in procs.items()}, root))


def cpu_seconds(before: Mapping[str, int | None], after: Mapping[str, int | None], hz: int) -> dict[str, float | None]:
    """Per component CPU seconds between two snapshots of ticks; None where either side is missing."""
    out: dict[str, float | None] = {}
    for name in before:
        b, a = before.get(name), after.get(name)
        out[name] = None if a is None or b is None else max(a - b, 0) / hz
    return out


def parse_cpu_line(text: str) -> int:
    """Busy ticks of all CPUs together from /proc/stat: user + nice + system + irq + softirq + steal (idle and
    iowait excluded; guest time is already inside user)."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:]]
            v += [0] * (8 - len(v))
            return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    raise ValueError("no aggregate 'cpu' line")


def cores_busy(cpu_s: float | None, wall_s: float) -> float | None:
    """Cores busy on average over `wall_s` seconds."""
    if cpu_s is None or wall_s <= 0:
        return None
    return cpu_s / wall_s


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or not math.isfinite(value) or not math.isfinite(base) or base == 0:
        return None
    return value / base


def format_ratio(value: float | None, digits: int = 2) -> str:
    """'2.31×' or '—' when there is nothing to compare with."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}f}×"


def format_number(value: float | None, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}f}"


def face_mismatches(observed: Iterable[tuple[int, int]], reference: Sequence[int | None]) -> dict[str, int]:
    """Answers whose face count differs from the reference count of their image, as {"image: got N, expected M":
    how many}. Images with no reference count are skipped."""
    bad: dict[str, int] = {}
    for image, faces in observed:
        expected = reference[image]
        if expected is not None and faces != expected:
            k = f"image {image}: got {faces}, expected {expected}"
            bad[k] = bad.get(k, 0) + 1
    return bad


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def variant(data: bytes, tag: str) -> bytes:
    """The same picture in new bytes (a cache miss, identical pixels): a JPEG comment segment after SOI, or a PNG
    tEXt chunk after IHDR, holding `tag`."""
    payload = tag.encode()
    if data.startswith(b"\xff\xd8"):
        if len(payload) > 65533:
            raise ValueError("tag too long for a JPEG comment")
        return data[:2] + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + data[2:]
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        ihdr_end = 8 + 8 + struct.unpack(">I", data[8:12])[0] + 4
        return data[:ihdr_end] + _png_chunk(b"tEXt", b"Comment\x00" + payload) + data[ihdr_end:]
    raise ValueError("cache-miss variants need JPEG or PNG images")


def _stat_int(model: Mapping, *keys: str) -> int:
    v = model
    for k in keys:
        if not isinstance(v, Mapping) or k not in v:
            return 0
        v = v[k]
    return int(v)  # int64 fields arrive as JSON strings


def step_delta(before: Mapping, after: Mapping) -> dict[str, dict[str, float]]:
    """Per Triton model, what happened between two `get_inference_statistics(as_json=True)` answers: requests,
    executions (a batched model runs several requests at once), inferences (batch elements: faces for the
    embedder), and per request the mean time in the queue, computing (input + infer + output) and in all."""
    b = {m["name"]: m for m in before.get("model_stats", [])}
    out = {}
    for m in after.get("model_stats", []):
        o = b.get(m["name"], {})

        def d(*keys: str, m=m, o=o) -> int:
            return _stat_int(m, *keys) - _stat_int(o, *keys)

        calls = d("inference_stats", "success", "count")
        if calls <= 0:
            continue
        compute = sum(d("inference_stats", k, "ns") for k in ("compute_input", "compute_infer", "compute_output"))
        out[m["name"]] = {
            "requests": calls,
            "executions": d("execution_count"),
            "inferences": d("inference_count"),
            "queue_ms": d("inference_stats", "queue", "ns") / calls / 1e6,
            "compute_ms": compute / calls / 1e6,
            "total_ms": d("inference_stats", "success", "ns") / calls / 1e6,
        }
    return out


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def parse_int_list(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


# --------------------------------------------------------------------------------------------- /proc and machine


def read_procs() -> dict[int, ProcStat]:
    procs = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                s = parse_proc_stat(f.read())
        except (OSError, ValueError, IndexError):  # gone meanwhile, or unreadable
            continue
        procs[s.pid] = s
    return procs


class CpuMeter:
    """CPU ticks of this process (without its children) and of the started server trees."""

    def __init__(self) -> None:
        self.roots: dict[str, int | None] = {"bench": os.getpid()}
        self.hz = os.sysconf("SC_CLK_TCK")

    def add(self, name: str, pid: int | None) -> None:
        self.roots[name] = pid

    def machine_ticks(self) -> int | None:
        try:
            return parse_cpu_line(Path("/proc/stat").read_text())
        except (OSError, ValueError):
            return None

    def snapshot(self) -> dict[str, int | None]:
        """Ticks per component, and under "machine" every CPU's busy ticks (whoever used them)."""
        machine = self.machine_ticks()
        procs = read_procs()
        return {"machine": machine} | {
            name: (None if pid is None else tree_ticks(procs, pid, with_children=(name != "bench")))
            for name, pid in self.roots.items()
        }


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    import onnxruntime

    info = {
        "host": platform.node(),
        "cpu_model": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "ram_gib": round(ram_gib, 1) if ram_gib else None,
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "os": platform.platform(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }
    try:
        import insightface

        info["insightface"] = insightface.__version__
    except ImportError:
        pass
    return info


# --------------------------------------------------------------------------------------------- images


def default_images() -> list[tuple[str, bytes]]:
    import cv2
    import insightface
    import skimage.data

    t1 = Path(os.path.dirname(insightface.__file__)) / "data" / "images" / "t1.jpg"
    astronaut = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", astronaut, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return [("t1.jpg", t1.read_bytes()), ("astronaut.jpg (skimage, JPEG q95)", buf.tobytes())]


def image_shape(data: bytes) -> tuple[int, int]:
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit("an image could not be decoded")
    return img.shape[1], img.shape[0]


# --------------------------------------------------------------------------------------------- measurements


@dataclass
class Result:
    name: str
    path: str  # "baseline", "grpc", "rest-miss", "rest-hit"
    concurrency: int
    requests: int = 0
    warmup: int = 0
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    answers: list[tuple[int, int]] = field(default_factory=list, repr=False)  # (image index, faces)
    errors: dict[str, int] = field(default_factory=dict)
    cpu_s: dict[str, float | None] = field(default_factory=dict)
    mismatches: dict[str, int] = field(default_factory=dict)
    steps: dict[str, dict[str, float]] = field(default_factory=dict)  # Triton's per-model statistics for the row
    machine_busy_s: float | None = None  # CPU seconds the whole machine was busy during the row, anyone's
    # REST rows: (client ms, API ms, inference ms) per counted request, the API's two from its Server-Timing header
    server_timing: list[tuple[float, float, float]] = field(default_factory=list, repr=False)

    @property
    def faces(self) -> int:
        return sum(f for _, f in self.answers)

    @property
    def images_per_s(self) -> float:
        return len(self.answers) / self.wall_s if self.wall_s else math.nan

    @property
    def faces_per_s(self) -> float:
        return self.faces / self.wall_s if self.wall_s else math.nan

    @property
    def cpu_total_s(self) -> float | None:
        known = [v for v in self.cpu_s.values() if v is not None]
        return sum(known) if known else None

    def error(self, message: str) -> None:
        self.errors[message] = self.errors.get(message, 0) + 1


class Sender:
    """Calls one path; `call(i)` sends request number i (of image i % len(images)) and returns the face count, or
    raises with a short reason."""

    def __init__(self, name: str, path: str, call: Callable, n_images: int):
        self.name, self.path, self.call, self.n_images = name, path, call, n_images
        self.timings: list[tuple[float, float, float]] = []  # filled by REST senders, taken by measure_async


def _run_threads(sender: Sender, result: Result, start: int, count: int, threads: int) -> None:
    counter = itertools.count(start)
    lock = threading.Lock()
    end = start + count

    def worker() -> None:
        while True:
            with lock:
                i = next(counter)
            if i >= end:
                return
            t0 = time.perf_counter()
            try:
                faces = sender.call(i)
            except Exception as exc:  # noqa: BLE001 - recorded and reported
                with lock:
                    result.error(f"{type(exc).__name__}: {str(exc)[:160]}")
                continue
            dt = (time.perf_counter() - t0) * 1000
            with lock:
                result.latencies_ms.append(dt)
                result.answers.append((i % sender.n_images, faces))

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


async def _run_coroutines(sender: Sender, result: Result, start: int, count: int, concurrency: int) -> None:
    counter = itertools.count(start)  # one event loop: no lock needed
    end = start + count

    async def worker() -> None:
        while (i := next(counter)) < end:
            t0 = time.perf_counter()
            try:
                faces = await sender.call(i)
            except Exception as exc:  # noqa: BLE001 - recorded and reported
                result.error(f"{type(exc).__name__}: {str(exc)[:160]}")
                continue
            result.latencies_ms.append((time.perf_counter() - t0) * 1000)
            result.answers.append((i % sender.n_images, faces))

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def _finish(result: Result, meter: CpuMeter, before: dict, t0: float, reference: list[int | None]) -> Result:
    result.wall_s = time.perf_counter() - t0
    cpu = cpu_seconds(before, meter.snapshot(), meter.hz)
    result.machine_busy_s = cpu.pop("machine", None)
    result.cpu_s = cpu
    result.mismatches = face_mismatches(result.answers, reference)
    return result


def _warmup_count(concurrency: int, quick: bool) -> int:
    return concurrency if quick else max(2 * concurrency, 8)


def measure_threads(sender: Sender, n: int, threads: int, meter: CpuMeter, reference, quick: bool) -> Result:
    result = Result(sender.name, sender.path, threads, requests=n, warmup=_warmup_count(threads, quick))
    _run_threads(sender, Result("warmup", sender.path, threads), 0, result.warmup, threads)
    before, t0 = meter.snapshot(), time.perf_counter()
    _run_threads(sender, result, result.warmup, n, threads)
    return _finish(result, meter, before, t0, reference)


async def measure_async(
    sender: Sender, n: int, concurrency: int, meter: CpuMeter, reference, quick: bool, stats: Callable | None = None
) -> Result:
    """`stats`: a blocking call returning Triton's statistics, read just outside the measured window."""
    result = Result(sender.name, sender.path, concurrency, requests=n, warmup=_warmup_count(concurrency, quick))
    warm = Result("warmup", sender.path, concurrency)
    await _run_coroutines(sender, warm, 0, result.warmup, concurrency)
    if warm.errors:
        result.errors.update({f"(warm-up) {k}": v for k, v in warm.errors.items()})
    stats_before = stats() if stats else None
    sender.timings.clear()
    before, t0 = meter.snapshot(), time.perf_counter()
    await _run_coroutines(sender, result, result.warmup, n, concurrency)
    _finish(result, meter, before, t0, reference)
    result.server_timing, sender.timings = sender.timings, []
    if stats:
        result.steps = step_delta(stats_before, stats())
    return result


# --------------------------------------------------------------------------------------------- the paths


class Baseline:
    """What a user writes with the `insightface` package on the pack's files: decode with cv2, SCRFD.detect, then
    per face norm_crop + the recognizer in onnxruntime with the pack's normalisation (default threading), and
    insightface's Attribute model where the pack has one."""

    def __init__(self, pack, models_dir: Path):
        import numpy as np
        import onnxruntime as ort
        from insightface.model_zoo.scrfd import SCRFD

        det_file, rec_file = models_dir / pack.detector.file, models_dir / pack.recognizer.file
        for f in (det_file, rec_file):
            if not f.is_file():
                raise SystemExit(f"baseline: {f} not found (--models-dir)")
        self.input_size = tuple(pack.detector.input_size)
        self.detector = SCRFD(model_file=str(det_file))
        self.detector.prepare(ctx_id=-1, input_size=self.input_size, det_thresh=pack.detector.threshold)
        self.recognizer = ort.InferenceSession(str(rec_file), providers=["CPUExecutionProvider"])
        self.rec_input = self.recognizer.get_inputs()[0].name
        self.crop_size = pack.recognizer.input_size[0]
        self.mean = np.array(pack.recognizer.mean, np.float32)
        self.std = np.array(pack.recognizer.std, np.float32)
        self.rgb = pack.recognizer.rgb
        self.attributes = None
        if pack.attributes is not None:  # packs with genderage: insightface's own Attribute class, as a user would
            from insightface.model_zoo.attribute import Attribute

            self.attributes = Attribute(model_file=str(models_dir / pack.attributes.file))

    def analyze(self, data: bytes) -> int:
        import cv2
        import numpy as np
        from insightface.utils import face_align

        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError("cv2.imdecode failed")
        boxes, kpss = self.detector.detect(img, input_size=self.input_size)
        if kpss is None:
            raise ValueError("the detector predicts no landmarks")
        for box, kps in zip(boxes, kpss):
            crop = face_align.norm_crop(img, landmark=kps, image_size=self.crop_size)
            x = crop[:, :, ::-1] if self.rgb else crop
            x = ((x - self.mean) / self.std).transpose(2, 0, 1)[None].astype(np.float32)
            e = self.recognizer.run(None, {self.rec_input: x})[0][0]
            _ = e / np.linalg.norm(e)
            if self.attributes is not None:
                from insightface.app.common import Face

                self.attributes.get(img, Face(bbox=box[:4], kps=kps))
        return len(kpss)


class RestClient:
    """POST /v1/faces/analyze with a multipart `image`, on aiohttp when installed, else httpx."""

    def __init__(self, url: str, key: str, connections: int):
        self.url, self.key, self.connections = url.rstrip("/"), key, connections
        try:
            import aiohttp
        except ImportError:
            aiohttp = None
        self.library = "aiohttp" if aiohttp else "httpx"
        self._session = None

    async def __aenter__(self) -> "RestClient":
        if self.library == "aiohttp":
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections),
                timeout=aiohttp.ClientTimeout(total=60),
                headers={"X-API-Key": self.key},
            )
        else:
            import httpx

            limits = httpx.Limits(max_connections=self.connections, max_keepalive_connections=self.connections)
            self._session = httpx.AsyncClient(limits=limits, timeout=60, headers={"X-API-Key": self.key})
        return self

    async def __aexit__(self, *exc) -> None:
        if self.library == "aiohttp":
            await self._session.close()
        else:
            await self._session.aclose()

    async def analyze(self, data: bytes) -> tuple[int, str | None, bytes, dict[str, float]]:
        """(status, X-Cache, body, Server-Timing durations in ms by name)"""
        url = f"{self.url}/v1/faces/analyze"
        if self.library == "aiohttp":
            import aiohttp

            form = aiohttp.FormData()
            form.add_field("image", data, filename="image.jpg", content_type="application/octet-stream")
            async with self._session.post(url, data=form) as r:
                body = await r.read()
                return r.status, r.headers.get("X-Cache"), body, parse_server_timing(r.headers.get("Server-Timing"))
        r = await self._session.post(url, files={"image": ("image.jpg", data, "application/octet-stream")})
        return r.status_code, r.headers.get("X-Cache"), r.content, parse_server_timing(r.headers.get("Server-Timing"))


def parse_server_timing(header: str | None) -> dict[str, float]:
    """`app;dur=1.2, inference;dur=40.1` -> {"app": 1.2, "inference": 40.1}; unparseable parts are skipped."""
    out = {}
    for part in (header or "").split(","):
        name, _, rest = part.strip().partition(";")
        if rest.startswith("dur="):
            try:
                out[name] = float(rest[4:])
            except ValueError:
                pass
    return out


def rest_sender(name: str, path: str, client: RestClient, bodies: Callable[[int], bytes], n_images: int, cache: str):
    async def call(i: int) -> int:
        t0 = time.perf_counter()
        status, x_cache, body, timing = await client.analyze(bodies(i))
        client_ms = (time.perf_counter() - t0) * 1000
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {body[:160].decode(errors='replace')}")
        if x_cache != cache:
            raise RuntimeError(f"X-Cache: {x_cache}, expected {cache}")
        if "app" in timing:
            sender.timings.append((client_ms, timing["app"], timing.get("inference", 0.0)))
        return int(json.loads(body)["face_count"])

    sender = Sender(name, path, call, n_images)
    return sender


# --------------------------------------------------------------------------------------------- servers


def bench_api(triton_url: str, work: Path) -> ApiProcess:
    """`face-api serve` in its own process, in-memory state, a rate tier that never throttles."""
    settings = {"LOG_LEVEL": "WARNING", "RATE_TIERS": json.dumps(BENCH_TIER), "DEFAULT_TIER": "bench"}
    return ApiProcess(triton_url, work, settings)


def bench_key(api: ApiProcess) -> str:
    # the tier is named: the default ("standard") is not among FACE_API_RATE_TIERS here and would be refused
    return api.create_key("bench", ["analyze"], "bench")


def api_facts(api_url: str) -> dict:
    try:
        packs = http_json(api_url.rstrip("/") + "/v1/info")["packs"]
    except (urllib.error.URLError, OSError, KeyError, ValueError):
        return {}
    return {"served_pack": ", ".join(p["pack"] for p in packs)}


def triton_stats_reader(grpc_url: str) -> Callable[[], dict]:
    import tritonclient.grpc as grpcclient

    from face_analysis.repository.configs import ENSEMBLE

    client = grpcclient.InferenceServerClient(grpc_url)

    def count(stats: dict) -> int:
        return sum(
            _stat_int(m, "inference_stats", "success", "count")
            for m in stats.get("model_stats", [])
            if m["name"] in (ENSEMBLE, "postprocess")
        )

    def read() -> dict:
        # Triton records the last step's and the ensemble's statistics just after the response leaves: wait until
        # they stop moving so that no request of the previous window (or warm-up) lands in the next one.
        stats = client.get_inference_statistics(as_json=True)
        for _ in range(40):
            time.sleep(0.05)
            again = client.get_inference_statistics(as_json=True)
            if count(again) == count(stats):
                return again
            stats = again
        return stats

    return read


def triton_facts(grpc_url: str) -> dict:
    from face_analysis.client import FaceAnalysisClient

    with FaceAnalysisClient(grpc_url) as client:
        info = client.pack_info()
        meta = client._client.get_server_metadata()
    return {"triton_version": meta.version, "served_pack": info.pack, "embedding_size": info.embedding_size}


# --------------------------------------------------------------------------------------------- report


def cpu_caveat(cpu_s: Mapping[str, float | None]) -> str:
    """' (without triton, api)' when some processes could not be measured (a deployment's), else ''."""
    missing = [k for k, v in cpu_s.items() if v is None]
    return f" (without {', '.join(missing)})" if missing else ""


def result_row(r: Result, base: Result | None) -> list[str]:
    lat = latency_summary(r.latencies_ms)
    cpu = cores_busy(r.cpu_total_s, r.wall_s)
    ok = "yes" if not r.mismatches and not r.errors else ""
    if r.mismatches:
        ok = f"**NO: {sum(r.mismatches.values())} mismatched**"
    if r.errors:
        ok = (ok + "; " if ok else "") + f"**{sum(r.errors.values())} errors**"
    return [
        r.name,
        str(r.concurrency),
        str(len(r.answers)),
        format_number(r.images_per_s),
        format_number(r.faces_per_s),
        format_number(lat["p50"]),
        format_number(lat["p95"]),
        format_number(lat["p99"]),
        format_number(cpu, 2) + cpu_caveat(r.cpu_s),
        format_ratio(ratio(r.images_per_s, base.images_per_s if base else None)),
        format_ratio(ratio(lat["p50"], latency_summary(base.latencies_ms)["p50"] if base else None)),
        ok,
    ]


HEADERS = [
    "path",
    "N",
    "requests",
    "images/s",
    "faces/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "CPU cores",
    "images/s vs (a)",
    "p50 vs (a)",
    "faces agree",
]


def cpu_rows(results: list[Result]) -> list[list[str]]:
    rows = []
    for r in results:
        cores = {k: cores_busy(v, r.wall_s) for k, v in r.cpu_s.items()}
        others = None
        if r.machine_busy_s is not None and r.cpu_total_s is not None:
            others = max(r.machine_busy_s - r.cpu_total_s, 0.0)
        rows.append(
            [r.name, str(r.concurrency), format_number(r.wall_s, 2)]
            + [format_number(cores.get(k), 2) for k in ("bench", "triton", "api")]
            + [format_number(r.cpu_total_s, 2), format_number(cores_busy(others, r.wall_s), 2)]
        )
    return rows


STEP_ORDER = ("preprocess", "detector", "align", "embedder", "attributes", "postprocess")


def steps_table(results: list[Result]) -> str:
    """Per row with Triton statistics: the client's mean latency beside the ensemble's time in Triton, each
    step's queue / compute ms per request, and the embedder's faces per execution (its dynamic batching)."""
    rows_with = [r for r in results if r.steps]
    if not rows_with:
        return ""
    from face_analysis.repository.configs import ENSEMBLE

    names = [n for n in STEP_ORDER if any(n in r.steps for r in rows_with)]
    names += sorted({n for r in rows_with for n in r.steps} - set(names) - {ENSEMBLE})
    rows = []
    for r in rows_with:
        ens = r.steps.get(ENSEMBLE, {})
        emb = r.steps.get("embedder", {})
        row = [r.name, str(r.concurrency), format_number(latency_summary(r.latencies_ms)["mean"])]
        row.append(format_number(ens.get("total_ms")))
        for n in names:
            st = r.steps.get(n)
            row.append(f"{st['queue_ms']:.1f} / {st['compute_ms']:.1f}" if st else "—")
        row.append(format_number(emb["inferences"] / emb["executions"], 1) if emb.get("executions") else "—")
        rows.append(row)
    headers = ["path", "N", "client mean ms", "in Triton ms"] + [f"{n} q/c ms" for n in names]
    return markdown_table(headers + ["embedder faces/batch"], rows)


def result_json(r: Result, base: Result | None) -> dict:
    lat = latency_summary(r.latencies_ms)
    base_p50 = latency_summary(base.latencies_ms)["p50"] if base else None
    return {
        "name": r.name,
        "path": r.path,
        "concurrency": r.concurrency,
        "requests": len(r.answers),
        "requests_planned": r.requests,
        "warmup": r.warmup,
        "duration_s": round(r.wall_s, 4),
        "images_per_s": round(r.images_per_s, 3),
        "faces": r.faces,
        "faces_per_s": round(r.faces_per_s, 3),
        "latency_ms": {k: round(v, 3) for k, v in lat.items()},
        "cpu_s": {k: (None if v is None else round(v, 3)) for k, v in r.cpu_s.items()},
        "cpu_s_total": None if r.cpu_total_s is None else round(r.cpu_total_s, 3),
        "cpu_cores_busy": None if r.cpu_total_s is None else round(r.cpu_total_s / r.wall_s, 3),
        "machine_busy_cores": None if r.machine_busy_s is None else round(r.machine_busy_s / r.wall_s, 3),
        "ratio_images_per_s_to_baseline": ratio(r.images_per_s, base.images_per_s if base else None),
        "ratio_p50_to_baseline": ratio(lat["p50"], base_p50),
        "face_count_mismatches": r.mismatches,
        "errors": r.errors,
        "triton_steps": {
            name: {k: (round(v, 3) if isinstance(v, float) else v) for k, v in step.items()}
            for name, step in r.steps.items()
        },
        "server_timing_p50_ms": server_timing_summary(r.server_timing),
    }


def per_image_p50(r: Result, n_images: int) -> list[float]:
    """Median latency of each image's requests: rows mix images of different face counts, so the overall median of
    a two-image row falls in the gap between them and moves with small changes; per image it does not."""
    by_image: list[list[float]] = [[] for _ in range(n_images)]
    for (k, _), ms in zip(r.answers, r.latencies_ms):
        by_image[k].append(ms)
    return [percentile(v, 50) if v else math.nan for v in by_image]


def goals(results: list[Result], n_images: int) -> list[tuple[str, str, str, bool | None]]:
    """Issue 5's goals for this 2-core machine: (goal, target, reached value, met?)."""

    def row(path: str, n: int) -> Result | None:
        return next((r for r in results if r.path == path and r.concurrency == n), None)

    base, out = row("baseline", 1), []
    g8, g1, rest1, hit1 = row("grpc", 8), row("grpc", 1), row("rest-miss", 1), row("rest-hit", 1)
    if base and g8:
        v = g8.images_per_s / base.images_per_s
        out.append(("ensemble throughput at 8 clients", ">= 1.3x (a)", f"{v:.2f}x", v >= 1.3))
    if base and g1:
        worst = max(a / b for a, b in zip(per_image_p50(g1, n_images), per_image_p50(base, n_images)))
        out.append(("p50 at 1 client, each image", "<= 1.1x (a)", f"{worst:.2f}x (worst image)", worst <= 1.1))
    if g1 and rest1:
        worst = max(a - b for a, b in zip(per_image_p50(rest1, n_images), per_image_p50(g1, n_images)))
        out.append(("REST p50 over direct gRPC, 1 client, each image", "<= 2 ms", f"{worst:+.1f} ms", worst <= 2))
        split = server_timing_summary(rest1.server_timing)
        if split:
            out.append(("  of which the API's own work (Server-Timing)", "", f"{split['api_own']:.2f} ms", None))
    if hit1:
        v = latency_summary(hit1.latencies_ms)["p99"]
        out.append(("cache hit p99, 1 client", "<= 3 ms", f"{v:.2f} ms", v <= 3))
    return out


def server_timing_summary(samples: list[tuple[float, float, float]]) -> dict[str, float] | None:
    """Medians of a REST row's per-request split: the client's latency, the API's own time (Server-Timing `app`
    minus `inference`) and what lies outside the API (client library, HTTP, sockets: client minus `app`)."""
    if not samples:
        return None
    med = statistics.median
    return {
        "client": round(med(c for c, _, _ in samples), 3),
        "api": round(med(a for _, a, _ in samples), 3),
        "inference": round(med(i for _, _, i in samples), 3),
        "api_own": round(med(a - i for _, a, i in samples), 3),
        "outside_api": round(med(c - a for c, a, _ in samples), 3),
    }


GPU_SECTION = """\
## Running it against a GPU Triton

The compose stack serves the same ensemble on the GPU (ONNX Runtime + TensorRT FP16) beside the REST API and Redis:

```bash
cp .env.example .env                              # set FACE_API_ADMIN_TOKEN and FACE_API_CACHE_ENCRYPTION_KEY, and
# a tier that never throttles (FACE_API_RATE_TIERS replaces the default tiers: keep the ones your keys use):
T='{"standard": {"burst": 50, "per_minute": 600}, "bench": {"burst": 100000, "per_minute": 1e7}}'
echo "FACE_API_RATE_TIERS=$T" >> .env
docker compose run --rm triton build-engines      # TensorRT engines for this GPU first (minutes)
docker compose up -d
ADMIN=...                                         # FACE_API_ADMIN_TOKEN from .env
KEY=$(curl -s -X POST http://127.0.0.1:8080/v1/admin/keys -H "Authorization: Bearer $ADMIN" \\
      -H 'Content-Type: application/json' -d '{"name": "bench", "scopes": ["analyze"], "tier": "bench"}' |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])')
python scripts/benchmark.py --triton 127.0.0.1:8001 --api http://127.0.0.1:8080 --key "$KEY"
```

- The key needs a tier that does not throttle (`bench` above):
  with the default `standard` tier (burst 50, 600/min) the REST rows measure the rate limiter.
- With `--triton`/`--api` the script starts nothing and skips (a); add `--baseline --models-dir DIR --pack NAME`
  to time the in-process `insightface` baseline on the same files as the served pack (the baseline runs on this
  machine's CPU, which is the comparison a user without the server would make). The compose stack serves
  `buffalo_l` unless `FACE_ANALYSIS_PACK` says otherwise.
- CPU use is only counted for processes the script started (and itself): against a deployment the Triton and
  API columns read `—`.
- Every cache-miss request carries a fresh random tag, so reruns against a long-lived Redis cache stay misses.
"""


def write_reports(args, facts: dict, images, state: dict, total_s: float, started: dict) -> None:
    results, base, reference, ref_source = state["results"], state["base"], state["reference"], state["ref_source"]
    cmd = "python scripts/benchmark.py" + "".join(" " + shlex.quote(a) for a in sys.argv[1:])
    json_name = _shown_path(Path(args.json))
    m = facts["machine"]
    embedded = not args.triton and not args.api
    uses = [u for u, on in (("the baseline", args.run_baseline), ("the embedded Triton", embedded)) if on]
    pack_line = f"served: `{facts.get('served_pack', '—')}`"
    if uses:
        pack_line = f"`{facts['pack']}` ({facts['pack_files']}) for {' and '.join(uses)}; " + pack_line
    table = markdown_table(HEADERS, [result_row(r, base) for r in results])
    n_images = len(images)
    by_image = markdown_table(
        ["path", "N", *(f"p50 ms, {name}" for name, _ in images)],
        [[r.name, str(r.concurrency), *(f"{v:.1f}" for v in per_image_p50(r, n_images))] for r in results],
    )
    goal_table = markdown_table(
        ["goal", "target", "reached", "met"],
        [[g, t, v, {True: "yes", False: "**no**", None: ""}[ok]] for g, t, v, ok in goals(results, n_images)],
    )
    cpu_headers = ["path", "N", "seconds", "bench cores", "triton cores", "api cores", "CPU seconds", "others' cores"]
    cpu_table = markdown_table(cpu_headers, cpu_rows(results))
    image_lines = "\n".join(
        f"- `{name}`: {w}x{h}, {len(data)} bytes, {ref if ref is not None else '?'} face(s) ({ref_source})"
        for (name, data), (w, h), ref in zip(images, facts["image_sizes"], reference, strict=True)
    )
    steps = steps_table(results)
    split_rows = [(r, server_timing_summary(r.server_timing)) for r in results if r.server_timing]
    split_section = ""
    if split_rows:
        split = markdown_table(
            ["path", "N", "client p50", "API p50", "inference p50", "API's own p50", "outside the API p50"],
            [
                [r.name, str(r.concurrency)]
                + [f"{s[k]:.2f}" for k in ("client", "api", "inference", "api_own", "outside_api")]
                for r, s in split_rows
            ],
        )
        split_section = f"""- **Where REST's time goes** (ms, medians of per-request values; the API's `Server-Timing`
  header gives its time and the share spent waiting on Triton): "API's own" is the REST layer's work (HTTP
  parsing, multipart, auth, rate limit, hashing, cache, JSON); "outside the API" is the client library, the
  socket and uvicorn's reading of the upload.

{split}
"""
    steps_section = ""
    if steps:
        steps_section = f"""- **Inside Triton** (its statistics API, per request of each step over the row): queue /
  compute ms (compute = input + infer + output; a batched step's execution counts for every request in the batch).
  "in Triton" is the ensemble's whole time per image; the rest of the client's latency is the client, the
  network stack and, for REST, the API.

{steps}
"""
    problems = [r for r in results if r.mismatches or r.errors]
    problem_text = ""
    if problems:
        problem_text = (
            "\n## Problems\n\n"
            + "\n".join(
                f"- {r.name} N={r.concurrency}: "
                + "; ".join(f"{k} (x{v})" for k, v in {**r.mismatches, **r.errors}.items())
                for r in problems
            )
            + "\n"
        )
    md = f"""# Benchmarks

Side-by-side throughput of the same images through the same model files on one machine:
(a) the `insightface` package in-process, (b) the `face_analysis` Triton ensemble over gRPC, (c) the REST API on
cache misses and (d) on cache hits. Produced by `scripts/benchmark.py` (this file is rewritten by each run; the
raw numbers are in `{json_name}`).

## Machine and software

| | |
|---|---|
| CPU | {m["cpu_model"]} |
| cores available | {m["cores"]} (`os.sched_getaffinity`) |
| RAM | {m["ram_gib"]} GiB |
| load average at start | {" ".join(m["loadavg_at_start"])} |
| Python | {m["python"]} |
| onnxruntime | {m["onnxruntime"]} |
| insightface | {m.get("insightface", "—")} |
| Triton | {facts.get("triton_version", "—")} ({facts.get("triton_mode", "—")}) |
| pack | {pack_line} |
| REST client | {facts.get("rest_client", "—")} |
| run | {time.strftime("%Y-%m-%d %H:%M", time.localtime(started["wall"]))}, {total_s:.0f} s in all |

Command: `{cmd}`

Images (each request takes the next image in turn):

{image_lines}

## Results

{table}

Latency by image (a row alternates the images; its overall p50 falls between them):

{by_image}

Goals for this machine (issue 5), computed from the rows above:

{goal_table}

- **N**: requests in flight (coroutines sharing one client; threads for (a')). Requests are counted after
  {"N" if args.quick else "max(2N, 8)"} warm-up requests per row.
- **CPU cores**: CPU seconds used during the row (this process + tritonserver and its Python-backend stubs + the
  API process, from `/proc/<pid>/stat`) divided by the row's wall time. Breakdown, with the cores that everything
  else on the machine kept busy meanwhile (`/proc/stat`; well above 0 means the numbers were disturbed):

{cpu_table}

{steps_section}
{split_section}
- **vs (a)**: ratio to the sequential in-process baseline; above 1 for images/s and below 1 for p50 is better.
- **faces agree**: every answer's face count equals the reference count of its image.
{problem_text}
## Reading it

- (a) is one image at a time in one Python thread; onnxruntime's own intra-op threads use the other cores.
  (a') runs 4 Python threads over one detector and one recognizer session (onnxruntime sessions are thread-safe).
- (b) pays for gRPC, the ensemble's Python steps (decode, letterbox, align, postprocess in Python-backend stubs,
  tensors through shared memory) and Triton's scheduling; it gains dynamic batching of the recognizer across
  requests and a pipeline in which the steps of different requests overlap.
- (c) adds HTTP, multipart parsing, auth, the rate limiter, SHA-256 of the upload and the cache lookup/store to (b).
- (d) is the cost of the API alone: no Triton call.
- On a small CPU machine every process competes for the same cores: the client (this script) is part of the
  load, which is why its CPU is counted too.

{GPU_SECTION}"""
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md)
    doc = {
        "command": cmd,
        "facts": facts,
        "images": [
            {"name": name, "bytes": len(data), "size": list(size), "reference_faces": ref}
            for (name, data), size, ref in zip(images, facts["image_sizes"], reference, strict=True)
        ],
        "reference_source": ref_source,
        "total_s": round(total_s, 2),
        "results": [result_json(r, base) for r in results],
    }
    jpath = Path(args.json)
    jpath.parent.mkdir(parents=True, exist_ok=True)
    jpath.write_text(json.dumps(doc, indent=2, allow_nan=False, default=str) + "\n")


def _shown_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def print_row(r: Result, base: Result | None) -> None:
    row = result_row(r, base)
    print("| " + " | ".join(row) + " |", flush=True)
    for k, v in {**r.mismatches, **r.errors}.items():
        print(f"!!! {r.name} N={r.concurrency}: {k} (x{v})", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--triton", metavar="HOST:PORT", help="a running Triton (gRPC); without it one is started")
    ap.add_argument("--api", metavar="URL", help="a running REST API; without it `face-api serve` is started")
    ap.add_argument("--key", help="API key for --api (scope analyze, a tier that does not throttle)")
    ap.add_argument("--baseline", action="store_true", help="with --triton/--api: also run (a) on --models-dir")
    ap.add_argument(
        "--models-dir",
        type=Path,
        help="the pack's files (default: the pack's folder, ../shared/models for the test pack, else models/NAME)",
    )
    ap.add_argument("--pack", default="test", help="pack manifest (name or .json) for the baseline and the server")
    ap.add_argument("--images", nargs="+", type=Path, help="JPEG/PNG files (default: t1.jpg and skimage's astronaut)")
    ap.add_argument("--requests", type=int, help=f"measured requests per configuration (default {DEFAULT_REQUESTS})")
    ap.add_argument("--concurrency", type=parse_int_list, default=parse_int_list(DEFAULT_CONCURRENCY))
    ap.add_argument("--hit-concurrency", type=parse_int_list, default=parse_int_list(DEFAULT_HIT_CONCURRENCY))
    ap.add_argument("--out", help="Markdown report (default docs/benchmarks.md; --quick: build/benchmark-quick.md)")
    ap.add_argument("--json", help="raw numbers (default docs/benchmarks.json; --quick: build/benchmark-quick.json)")
    ap.add_argument("--quick", action="store_true", help="tiny counts: a smoke run")
    args = ap.parse_args(argv)
    if args.requests is None:
        args.requests = QUICK_REQUESTS if args.quick else DEFAULT_REQUESTS
    if not 1 <= args.requests <= 100_000:
        ap.error("--requests must be between 1 and 100000")
    stem = ROOT / ("build/benchmark-quick" if args.quick else "docs/benchmarks")
    args.out = args.out or str(stem.with_suffix(".md"))
    args.json = args.json or str(stem.with_suffix(".json"))
    if args.api and not args.key:
        ap.error("--api needs --key")
    if args.triton:
        check_loopback_host(args.triton.rsplit(":", 1)[0])
    if args.api:
        from urllib.parse import urlparse

        check_loopback_host(urlparse(args.api).hostname or "")
    args.run_baseline = args.baseline or not (args.triton or args.api)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    # insightface's face_align calls a scikit-image API deprecated in 0.26: not ours to fix, and noise in the table
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"insightface\..*")
    started = {"wall": time.time(), "mono": time.monotonic()}
    from face_analysis.packs.fetch import pack_dir
    from face_analysis.packs.manifest import load_manifest

    pack = load_manifest(args.pack)
    args.models_dir = args.models_dir or pack_dir(pack, ROOT / "models", ROOT)
    images = [(p.name, p.read_bytes()) for p in args.images] if args.images else default_images()
    for _, data in images:
        variant(data, "check")  # JPEG or PNG, or stop now
    facts: dict = {
        "machine": machine_info(),
        "pack": pack.name,
        "pack_files": f"{pack.detector.file} + {pack.recognizer.file}"
        + (f" + {pack.attributes.file}" if pack.attributes else ""),
        "image_sizes": [image_shape(data) for _, data in images],
        "requests_per_configuration": args.requests,
        "concurrency": args.concurrency,
        "hit_concurrency": args.hit_concurrency,
    }
    nonce = secrets.token_hex(4)  # cache-miss bodies stay new across runs against a long-lived cache
    meter = CpuMeter()
    triton = api = None
    state: dict = {"results": [], "base": None, "reference": [None] * len(images), "ref_source": "first answer seen"}
    with tempfile.TemporaryDirectory(prefix="face-bench-") as tmp:
        work = Path(tmp)
        try:
            triton_url = args.triton
            if args.api and not args.triton:  # the API's Triton is not ours to reach: no gRPC rows
                print("--api without --triton: skipping the gRPC rows (b)", flush=True)
                facts["triton_mode"] = "not measured (--api without --triton)"
                meter.add("triton", None)
                facts.update(api_facts(args.api))
            elif not triton_url:
                t0 = time.monotonic()
                triton = TritonProcess(pack, args.models_dir, work)
                print(f"starting the embedded Triton (CPU, pack {pack.name}) ...", flush=True)
                triton.start()
                triton_url = triton.grpc_url
                facts["triton_mode"] = "embedded CPU, started by the script"
                facts["triton_startup_s"] = round(time.monotonic() - t0, 1)
                meter.add("triton", triton.pid)
                print(f"  ready after {facts['triton_startup_s']} s on {triton_url}", flush=True)
            else:
                facts["triton_mode"] = f"external {triton_url}"
                meter.add("triton", None)
            if triton_url:
                facts.update(triton_facts(triton_url))
            api_url, key = args.api, args.key
            if not api_url:
                t0 = time.monotonic()
                api = bench_api(triton_url, work).start()
                api_url, key = api.url, bench_key(api)
                meter.add("api", api.proc.pid)
                facts["api_mode"] = "face-api serve, started by the script (in-memory state)"
                facts["api_startup_s"] = round(time.monotonic() - t0, 1)
                print(f"face-api ready after {facts['api_startup_s']} s on {api_url}", flush=True)
            else:
                facts["api_mode"] = f"external {api_url}"
                meter.add("api", None)
            run_all(args, pack, images, triton_url, api_url, key, nonce, meter, facts, state)
        except BaseException:
            if state["results"]:  # keep what was measured before the failure
                args.out, args.json = args.out + ".partial", args.json + ".partial"
                write_reports(args, facts, images, state, time.monotonic() - started["mono"], started)
                print(f"!!! the run failed; partial results in {args.out}", file=sys.stderr)
            raise
        finally:
            if api is not None:
                api.stop()
            if triton is not None:
                triton.stop()
    total_s = time.monotonic() - started["mono"]
    write_reports(args, facts, images, state, total_s, started)
    results = state["results"]
    bad = [r for r in results if r.mismatches or r.errors]
    print(
        f"\n{len(results)} configurations in {total_s:.0f} s; wrote {_shown_path(Path(args.out))} and "
        f"{_shown_path(Path(args.json))}"
    )
    if bad:
        print(f"!!! {len(bad)} configuration(s) with face-count mismatches or errors: see the report", file=sys.stderr)
        return 1
    return 0


def run_all(args, pack, images, triton_url, api_url, key, nonce, meter, facts, state: dict) -> None:
    """Every configuration in turn; results land in `state` as they come (a failure keeps the earlier ones)."""
    n_images = len(images)
    datas = [d for _, d in images]
    results: list[Result] = state["results"]
    reference: list[int | None] = state["reference"]
    base: Result | None = None
    stats = triton_stats_reader(triton_url) if triton_url else None
    print("| " + " | ".join(HEADERS) + " |", flush=True)
    if args.run_baseline:
        baseline = Baseline(pack, args.models_dir)
        reference[:] = [baseline.analyze(d) for d in datas]
        state["ref_source"] = "insightface baseline"
        sender = Sender(
            "(a) insightface in-process", "baseline", lambda i: baseline.analyze(datas[i % n_images]), n_images
        )
        base = state["base"] = measure_threads(sender, args.requests, 1, meter, reference, args.quick)
        results.append(base)
        print_row(base, base)
        sender.name = f"(a') insightface, {BASELINE_THREADS} threads"
        r = measure_threads(sender, args.requests, BASELINE_THREADS, meter, reference, args.quick)
        results.append(r)
        print_row(r, base)

    async def network_paths() -> None:
        if triton_url:
            await grpc_rows()
        await rest_rows()

    async def grpc_rows() -> None:
        from face_analysis.client import AsyncFaceAnalysisClient

        async with AsyncFaceAnalysisClient(triton_url, timeout_s=60) as grpc:
            if reference[0] is None:  # no baseline: the ensemble's first answers are the reference
                reference[:] = [len(await grpc.analyze(d)) for d in datas]
                state["ref_source"] = "first gRPC answer (no baseline)"

            async def grpc_call(i: int) -> int:
                return len(await grpc.analyze(datas[i % n_images]))

            sender = Sender("(b) gRPC ensemble", "grpc", grpc_call, n_images)
            for n in args.concurrency:
                r = await measure_async(sender, args.requests, n, meter, reference, args.quick, stats)
                results.append(r)
                print_row(r, base)

    async def rest_rows() -> None:
        async with RestClient(api_url, key, max(args.concurrency + args.hit_concurrency)) as rest:
            facts["rest_client"] = rest.library
            if reference[0] is None:  # neither baseline nor gRPC: the API's first answers are the reference
                for k, d in enumerate(datas):
                    status, _, body, _ = await rest.analyze(variant(d, f"bench {nonce} reference"))
                    if status != 200:
                        raise SystemExit(f"REST reference request failed: HTTP {status} {body[:200]!r}")
                    reference[k] = int(json.loads(body)["face_count"])
                state["ref_source"] = "first REST answer (no baseline)"
            counter = itertools.count()  # every miss body distinct across rows, warm-ups included

            def miss_body(i: int) -> bytes:
                return variant(datas[i % n_images], f"bench {nonce} miss {next(counter)}")

            sender = rest_sender("(c) REST analyze, cache miss", "rest-miss", rest, miss_body, n_images, "miss")
            for n in args.concurrency:
                r = await measure_async(sender, args.requests, n, meter, reference, args.quick, stats)
                results.append(r)
                print_row(r, base)

            hit_bodies = [variant(d, f"bench {nonce} hit") for d in datas]
            for body in hit_bodies:  # store them: the first sight of each is a miss
                status, _, text, _ = await rest.analyze(body)
                if status != 200:
                    raise SystemExit(f"REST priming failed: HTTP {status} {text[:200]!r}")
            sender = rest_sender(
                "(d) REST analyze, cache hit", "rest-hit", rest, lambda i: hit_bodies[i % n_images], n_images, "hit"
            )
            for n in args.hit_concurrency:
                r = await measure_async(sender, args.requests, n, meter, reference, args.quick)
                results.append(r)
                print_row(r, base)

    asyncio.run(network_paths())


if __name__ == "__main__":
    sys.exit(main())
