"""Load, fault and abuse figures for the REST API on one machine, bounded in time, on loopback addresses only.

    python scripts/reliability.py              # ~2 minutes: docs/reliability.md and docs/reliability.json
    python scripts/reliability.py --quick      # ~1 minute smoke run: build/reliability-quick.{md,json}

It starts its own stack (scripts/stack.py): the embedded CPU Triton on the test pack, a private redis-server (an
append-only file fsynced on every write, on a free port, in its own temporary folder) and `face-api serve` as a
separate process with the default Triton deadline, a short breaker reset, a tier that never throttles for load keys
and a small limit of failed authentications per address. Then:

1. Load: N aiohttp clients for D seconds on a weighted mix of endpoints (detect and analyze as multipart and as
   JSON data URLs, compare, batch, usage, readiness), mostly new image bytes (cache misses) with some repeats (hits),
   and a share of bad requests (corrupt or truncated image, missing field, wrong key) whose 4xx are expected.
2. Faults under a light load: Triton SIGKILLed and restarted; Redis SIGKILLed and restarted (it comes back from its
   append-only file); then every key created (201) must still authenticate and every acknowledged request of a
   counted route must be in GET /v1/usage.
3. Abuse: a flood of invalid keys from one address; key-check timing (a near miss of a valid key vs a random key,
   with a Welch t-statistic); no image bytes written to disk; no secret, admin token or image data in the logs.

Each section prints a table; the report (--out) and the raw numbers (--json) carry the machine and the command.
Exit code 1 when a verdict fails (unexpected 5xx, a hang, recovery over 10 s, a lost key or usage count, a secret in
the logs, image bytes on disk...).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import math
import os
import random
import re
import secrets
import shlex
import stat
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.benchmark import (  # noqa: E402
    CpuMeter,
    cores_busy,
    cpu_seconds,
    default_images,
    format_number,
    latency_summary,
    machine_info,
    markdown_table,
    percentile,
    triton_facts,
    variant,
)
from scripts.stack import ApiProcess, RedisProcess, TritonProcess  # noqa: E402

__all__ = ["percentile", "latency_summary"]  # re-exported: the report's statistics

# --------------------------------------------------------------------------------------------- settings

TRITON_TIMEOUT_S = 10.0  # FACE_API_TRITON_TIMEOUT_S: the per-request deadline (the API's default)
BREAKER_RESET_S = 2.0  # FACE_API_BREAKER_RESET_S
AUTH_FAILURES_PER_MINUTE = 20  # FACE_API_AUTH_FAILURES_PER_MINUTE for the flood
TIMING_AUTH_FAILURES_PER_MINUTE = 1_000_000  # the second API process (key-check timing): never limits
CLIENT_TIMEOUT_S = 30.0  # a request without an answer by then is a hang
HANG_MARGIN_S = 2.0  # during an outage no request may take longer than the deadline plus this
RECOVERY_GOAL_S = 10.0
LOAD_KEYS = 4
THINK_S = 0.05  # the light load's pause between requests: an outage's fast 503s must not become a busy loop
REPEAT_SHARE = 0.2  # load requests whose image was sent before (cache hits)
POOL_SIZE = 6  # images primed before the load: the repeats
TIERS = {
    "load": {"burst": 1_000_000, "per_minute": 1e9},  # never throttles
    "standard": {"burst": 50, "per_minute": 600},
}
URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass(frozen=True)
class Plan:
    load_s: float
    load_clients: int
    fault_clients: int
    outage_s: float
    warm_s: float  # light load before each fault
    settle_s: float  # light load after each recovery
    flood: int
    timing_samples: int  # per kind (near miss, far miss)
    key_every_s: float  # a new key this often during the load and the faults
    flush_s: float  # wait before reading usage
    deadline_s: float = TRITON_TIMEOUT_S  # FACE_API_TRITON_TIMEOUT_S


DEFAULT_PLAN = Plan(60, 50, 8, 10, 5, 4, 500, 300, 2.0, 2.0)
QUICK_PLAN = Plan(10, 16, 8, 4, 2, 2, 100, 60, 1.0, 1.0)

# --------------------------------------------------------------------------------------------- request kinds

LABELS = {
    "detect": "POST /v1/faces/detect (multipart)",
    "detect_json": "POST /v1/faces/detect (JSON data URL)",
    "analyze": "POST /v1/faces/analyze (multipart)",
    "analyze_json": "POST /v1/faces/analyze (JSON data URL)",
    "compare": "POST /v1/faces/compare (multipart)",
    "batch": "POST /v1/faces/batch (2-4 images)",
    "detect_hit": "POST /v1/faces/detect (a primed image)",
    "usage": "GET /v1/usage",
    "ready": "GET /health/ready",
    "bad_corrupt": "bad: corrupt image (random bytes)",
    "bad_truncated": "bad: truncated JPEG (first third)",
    "bad_missing": "bad: missing `image` field (JSON)",
    "bad_wrong_key": "bad: wrong API key",
    "prime": "priming the repeated images",
    "new_key": "POST /v1/admin/keys",
    "new_key_detect": "detect with a just-created key",
}
LOAD_MIX = {
    "detect": 18,
    "detect_json": 7,
    "analyze": 10,
    "analyze_json": 12,
    "compare": 8,
    "batch": 5,
    "usage": 10,
    "ready": 8,
    "bad_corrupt": 4,
    "bad_truncated": 2,
    "bad_missing": 4,
    "bad_wrong_key": 4,
}
FAULT_MIX = {"detect": 35, "analyze_json": 15, "detect_hit": 25, "usage": 15, "ready": 10}
EXPECTED = {  # statuses that are right for a kind whatever happens
    **dict.fromkeys(
        ("detect", "detect_json", "analyze", "analyze_json", "compare", "batch", "detect_hit", "prime"), {200}
    ),
    "new_key_detect": {200},
    "usage": {200},
    "ready": {200},
    "bad_corrupt": {400, 415},
    "bad_truncated": {200, 400},
    "bad_missing": {422},
    "bad_wrong_key": {401, 429},  # 429 once the address's failed-authentication budget is spent
    "new_key": {201},
    "usage_check": {200},
}
INFERENCE_KINDS = frozenset(
    ("detect", "detect_json", "analyze", "analyze_json", "compare", "batch", "detect_hit", "prime")
    + ("new_key_detect", "bad_truncated")
)
MISS_KINDS = frozenset(("detect", "detect_json", "analyze", "analyze_json"))
# counted in /v1/usage when answered 2xx (control_plane/api/routes: faces.py and batch.py record after the analysis)
COUNTED_KINDS = INFERENCE_KINDS
# what each fault may legitimately cause, while it lasts: kind -> {(status, error code)}; None: any code
FAULT_ALLOWED: dict[str, dict[str, set[tuple[int, str | None]]]] = {
    "triton": {
        **{k: {(503, "inference_unavailable"), (504, "inference_timeout")} for k in INFERENCE_KINDS},
        "ready": {(503, None)},  # readiness says `unavailable` with 503 while no Triton answers
    },
    "redis": {
        "usage": {(503, "store_unavailable")},
        "new_key": {(503, "store_unavailable")},
        # a key created just before the crash was never verified by this replica: refused until Redis is back
        "new_key_detect": {(401, "unauthorized")},
    },
}


# --------------------------------------------------------------------------------------------- pure helpers


@dataclass
class Rec:
    """One request as the client saw it. Times are seconds since the run started; status 0: no answer."""

    kind: str
    start: float
    end: float
    status: int
    code: str | None = None  # the error code of a 4xx/5xx, "timeout" or "transport: ..." without an answer
    retry_after: str | None = None
    cache: str | None = None  # X-Cache
    key: int | None = None  # index of the API key used (None: admin, anonymous or a wrong key)
    phase: str = ""
    circuit: bool = False  # a 503 answered by the open circuit breaker without calling Triton

    @property
    def latency_ms(self) -> float:
        return (self.end - self.start) * 1000


@dataclass(frozen=True)
class Window:
    fault: str  # a key of FAULT_ALLOWED
    start: float
    end: float


def classify(rec: Rec, windows: Sequence[Window] = ()) -> str:
    """`ok` (an expected status), `fault` (allowed by a fault the request overlapped), `overloaded` (503 of the
    documented in-flight cap), `timeout` (a hang), `transport` (no HTTP answer), `unexpected_5xx` or `unexpected`."""
    if rec.status == 0:
        return "timeout" if rec.code == "timeout" else "transport"
    if rec.status in EXPECTED.get(rec.kind, ()):
        return "ok"
    if rec.status == 503 and rec.code == "overloaded" and rec.kind in INFERENCE_KINDS:
        return "overloaded"
    for w in windows:
        if rec.start <= w.end and rec.end >= w.start:
            allowed = FAULT_ALLOWED.get(w.fault, {}).get(rec.kind, set())
            if (rec.status, rec.code) in allowed or (rec.status, None) in allowed:
                return "fault"
    return "unexpected_5xx" if rec.status >= 500 else "unexpected"


def tally_statuses(records: Iterable[Rec]) -> dict[str, Counter]:
    """kind -> Counter of statuses ("timeout" / "transport" for requests without an answer)."""
    out: dict[str, Counter] = {}
    for r in records:
        label = r.status if r.status else ("timeout" if r.code == "timeout" else "transport")
        out.setdefault(r.kind, Counter())[label] += 1
    return out


def status_text(counts: Mapping) -> str:
    """'200: 12, 503: 1' in status order (answers first, then requests without one)."""
    keys = sorted(counts, key=lambda k: (isinstance(k, str), k if isinstance(k, int) else 0, str(k)))
    return ", ".join(f"{k}: {counts[k]}" for k in keys) or "—"


def tally_classes(records: Iterable[Rec], windows: Sequence[Window] = ()) -> Counter:
    return Counter(classify(r, windows) for r in records)


def welch_t(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Welch's t-statistic of mean(a) - mean(b) and its Welch-Satterthwaite degrees of freedom (NaN, NaN with fewer
    than two samples on a side)."""
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        return math.nan, math.nan
    m1, m2 = math.fsum(a) / n1, math.fsum(b) / n2
    v1 = math.fsum((x - m1) ** 2 for x in a) / (n1 - 1)
    v2 = math.fsum((x - m2) ** 2 for x in b) / (n2 - 1)
    s1, s2 = v1 / n1, v2 / n2
    if s1 + s2 == 0:
        return (0.0 if m1 == m2 else math.copysign(math.inf, m1 - m2)), math.nan
    t = (m1 - m2) / math.sqrt(s1 + s2)
    df = (s1 + s2) ** 2 / (s1**2 / (n1 - 1) + s2**2 / (n2 - 1))
    return t, df


def summary(samples_ms: Sequence[float]) -> dict[str, float]:
    """Count, mean, stdev, min, p50, p95, p99 and max of latencies (ms)."""
    out = {"n": len(samples_ms), **latency_summary(samples_ms)}
    out["stdev"] = statistics.stdev(samples_ms) if len(samples_ms) > 1 else math.nan
    return out


def near_miss(key: str, rng: random.Random) -> str:
    """`key` with its final character changed to another URL-safe one: still a well-formed key."""
    return key[:-1] + rng.choice([c for c in URLSAFE if c != key[-1]])


def random_key() -> str:
    return "fa_" + secrets.token_urlsafe(32)


IMAGE_MAGIC = {"jpeg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n"}


def image_magic(data: bytes) -> str | None:
    """The image format whose magic bytes `data` starts with, or None."""
    for name, magic in IMAGE_MAGIC.items():
        if data.startswith(magic):
            return name
    return None


def find_needles(data: bytes, needles: Mapping[str, bytes]) -> dict[str, int]:
    """How often each non-empty needle occurs in `data` (only those found)."""
    found = {}
    for name, needle in needles.items():
        if needle:
            n = data.count(needle)
            if n:
                found[name] = n
    return found


def snapshot(root: Path, exclude: Sequence[Path] = (), limit: int = 200_000) -> tuple[dict[str, tuple], bool]:
    """Regular files under `root` (not following links, skipping `exclude`) -> (size, mtime_ns, inode); and whether
    the walk stopped at `limit` files."""
    skip = {os.path.abspath(p) for p in exclude}
    files: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip]
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                files[path] = (st.st_size, st.st_mtime_ns, st.st_ino)
            if len(files) >= limit:
                return files, True
    return files, False


def changed_files(before: Mapping[str, tuple], after: Mapping[str, tuple]) -> list[str]:
    """Files new in `after` or changed since `before` (size, modification time or inode)."""
    return sorted(p for p, sig in after.items() if before.get(p) != sig)


def scan_file(path: str, needles: Mapping[str, bytes], max_bytes: int = 64 << 20) -> dict | None:
    """A finding for one file: its image magic and the needles in it; None when it holds neither (or is unreadable
    or larger than `max_bytes`: then {"skipped": reason})."""
    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            return {"path": path, "size": size, "skipped": "too large to read"}
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        return {"path": path, "skipped": type(exc).__name__}
    magic, hits = image_magic(data), find_needles(data, needles)
    if magic is None and not hits:
        return None
    return {"path": path, "size": len(data), "magic": magic, "needles": hits}


KEY_TOKEN = re.compile(r"fa_[A-Za-z0-9_-]{8,}")
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{120,}={0,2}")
IMAGE_BASE64_HEADS = ("/9j/", "iVBORw0KGgo")  # base64 of the JPEG and PNG magic bytes


def scan_log_text(
    text: str, secrets_: Iterable[str], sent_keys: Iterable[str], admin_token: str, needles: Iterable[str] = ()
) -> dict[str, int]:
    """Counts of what must never be logged: API key secrets (or any string sharing their first 11 characters: a near
    miss, a truncation), other `fa_` keys the client sent, the admin token (or its first 12 characters), base64
    runs of 120+ characters, base64 image heads and this run's image needles."""
    prefixes = {s[:11] for s in secrets_}
    sent = set(sent_keys)
    counts = dict.fromkeys(
        ("API key secrets", "other keys sent", "other fa_ tokens", "admin token", "base64 runs", "image data"), 0
    )
    for token in KEY_TOKEN.findall(text):
        if token[:11] in prefixes:
            counts["API key secrets"] += 1
        elif token in sent or any(s.startswith(token) for s in sent):
            counts["other keys sent"] += 1
        else:
            counts["other fa_ tokens"] += 1
    if admin_token:
        counts["admin token"] = text.count(admin_token[:12])
    counts["base64 runs"] = len(BASE64_RUN.findall(text))
    counts["image data"] = sum(text.count(h) for h in IMAGE_BASE64_HEADS) + sum(text.count(n) for n in needles if n)
    return counts


def written_fds(pid: int) -> set[str]:
    """Regular files `pid` holds open for writing, or deleted ones (an unnamed temporary file), except fds 0-2."""
    out = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        if not fd.isdigit() or int(fd) <= 2:
            continue
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                flags = next((int(line.split()[1], 8) for line in f if line.startswith("flags:")), 0)
        except (OSError, ValueError):
            continue
        if not target.startswith("/") or target.startswith(("/dev/", "/proc/", "/sys/")):
            continue
        if flags & (os.O_WRONLY | os.O_RDWR) or target.endswith(" (deleted)"):
            out.add(target)
    return out


def key_groups(per_key: Sequence[Mapping]) -> list[dict]:
    """The load keys one by one, the keys created meanwhile summed by when they were created (in order)."""
    groups: dict[str, dict] = {}
    for p in per_key:
        name = p["id"] if p["origin"].startswith("load") else f"{p['origin']}"
        g = groups.setdefault(
            name,
            {"keys": p["id"], "origin": p["origin"], "n": 0, "auth": Counter(), "acknowledged": 0, "counted": 0}
            | {"unanswered": 0},
        )
        g["n"] += 1
        g["auth"][p["auth_status"]] += 1
        g["acknowledged"] += p["acknowledged"]
        g["counted"] += p["counted"] or 0
        g["unanswered"] += p["unanswered"]
    for g in groups.values():
        if g["n"] > 1 or not g["origin"].startswith("load"):
            g["keys"] = f"{g['n']} key(s)"
    return list(groups.values())


def answer_label(r: Rec) -> str:
    """'503 inference_unavailable', '503 (readiness)', 'timeout'..."""
    if r.status == 0:
        return r.code or "no answer"
    label = f"{r.status} {r.code or '(' + ('readiness' if r.kind == 'ready' else r.kind) + ')'}"
    return label + (" (circuit open)" if r.circuit else "")


def first(records: Iterable[Rec], pred: Callable[[Rec], bool]) -> Rec | None:
    """The record that ended first among those matching `pred`."""
    best = None
    for r in records:
        if pred(r) and (best is None or r.end < best.end):
            best = r
    return best


def fmt_s(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f} s"


def verdict(section: str, check: str, target: str, measured: str, ok: bool | None) -> dict:
    return {"section": section, "check": check, "target": target, "measured": measured, "ok": ok}


def verdict_mark(ok: bool | None) -> str:
    return {True: "pass", False: "**FAIL**", None: "info"}[ok]


SECTIONS = (
    "1. Load",
    "2a. Triton crash",
    "2b. Redis crash",
    "2c. Nothing lost",
    "2c. Nothing lost (API restart)",
    "3a. Invalid-key flood",
    "3b. Key-check timing",
    "3c. Image bytes on disk",
    "3d. Logs",
)


def section_rank(section: str) -> int:
    return SECTIONS.index(section) if section in SECTIONS else len(SECTIONS)


def sorted_verdicts(verdicts: Sequence[dict]) -> list[dict]:
    """In report order (sections ran in another: the API restart comes after the flood)."""
    return sorted(verdicts, key=lambda v: section_rank(v["section"]))


def verdict_table(verdicts: Sequence[dict]) -> str:
    return markdown_table(
        ["section", "check", "target", "measured", "verdict"],
        [[v["section"], v["check"], v["target"], v["measured"], verdict_mark(v["ok"])] for v in verdicts],
    )


# --------------------------------------------------------------------------------------------- the client side


@dataclass
class Key:
    secret: str
    id: str
    origin: str  # "load", "created during <phase>", "timing"
    created_at: float


@dataclass
class Poll:
    t: float
    http: int
    status: str | None  # ready / degraded / unavailable
    redis_up: bool | None
    triton_ready: bool | None


class Traffic:
    """The script's HTTP side: one aiohttp session, the keys, the images and every request's record."""

    def __init__(self, url: str, admin: str, images: Sequence[bytes], t0: float, connections: int):
        import aiohttp

        self.aiohttp = aiohttp
        self.url, self.admin, self.t0 = url, admin, t0
        self.nonce = secrets.token_hex(6)
        self.tag = f"rel {self.nonce}"
        self.bases = list(images)
        self.counter = itertools.count()
        self.pool = [variant(self.bases[i % len(self.bases)], f"{self.tag} pool {i}") for i in range(POOL_SIZE)]
        self.records: list[Rec] = []
        self.polls: list[Poll] = []
        self.keys: list[Key] = []
        self.sent_invalid: list[str] = []  # wrong keys sent (for the log scan)
        self.connections = connections
        self.session = None

    async def __aenter__(self) -> "Traffic":
        aiohttp = self.aiohttp
        # keep-alive shorter than uvicorn's 5 s: never reuse a connection the server is closing
        connector = aiohttp.TCPConnector(limit=self.connections, keepalive_timeout=4)
        self.session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S))
        return self

    async def __aexit__(self, *exc) -> None:
        await self.session.close()

    def now(self) -> float:
        return time.monotonic() - self.t0

    # images -----------------------------------------------------------------------------------------------

    def fresh(self) -> bytes:
        n = next(self.counter)
        return variant(self.bases[n % len(self.bases)], f"{self.tag} {n}")

    def image(self, rng: random.Random, repeat_share: float) -> bytes:
        return rng.choice(self.pool) if rng.random() < repeat_share else self.fresh()

    @staticmethod
    def data_url(data: bytes) -> str:
        return "data:image/jpeg;base64," + base64.b64encode(data).decode()

    def form(self, *parts: tuple[str, bytes], fields: Mapping[str, str] | None = None):
        form = self.aiohttp.FormData()
        for i, (name, data) in enumerate(parts):
            form.add_field(name, data, filename=f"image{i}.jpg", content_type="image/jpeg")
        for name, value in (fields or {}).items():
            form.add_field(name, value)
        return form

    # requests ---------------------------------------------------------------------------------------------

    async def send(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        key: int | None = None,
        secret: str | None = None,
        data=None,
        json_body=None,
        phase: str = "",
    ) -> tuple[Rec, bytes]:
        headers = {}
        credential = self.keys[key].secret if key is not None else secret
        if credential:
            headers["X-API-Key"] = credential
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        start = self.now()
        body = b""
        try:
            async with self.session.request(method, self.url + path, data=data, headers=headers) as r:
                body = await r.read()
                rec = Rec(kind, start, self.now(), r.status, key=key, phase=phase)
                rec.retry_after, rec.cache = r.headers.get("Retry-After"), r.headers.get("X-Cache")
                if r.status >= 400:
                    rec.code = error_code(body)
                    rec.circuit = rec.status == 503 and b"(circuit open)" in body
        except asyncio.TimeoutError:
            rec = Rec(kind, start, self.now(), 0, code="timeout", key=key, phase=phase)
        except (self.aiohttp.ClientError, OSError) as exc:
            rec = Rec(kind, start, self.now(), 0, code=f"transport: {type(exc).__name__}", key=key, phase=phase)
        self.records.append(rec)
        return rec, body

    async def request(self, kind: str, rng: random.Random, key: int, phase: str, repeat_share: float = 0.0) -> Rec:
        """One request of `kind` with key number `key`."""
        img = lambda: self.image(rng, repeat_share)  # noqa: E731
        if kind in ("detect", "analyze"):
            return (
                await self.send(
                    kind, "POST", f"/v1/faces/{kind}", key=key, data=self.form(("image", img())), phase=phase
                )
            )[0]
        if kind in ("detect_json", "analyze_json"):
            route = kind.removesuffix("_json")
            payload = {"image": self.data_url(img())}
            if route == "analyze":
                payload["return_embedding"] = rng.random() < 0.5
            return (await self.send(kind, "POST", f"/v1/faces/{route}", key=key, json_body=payload, phase=phase))[0]
        if kind == "detect_hit":
            data = self.form(("image", rng.choice(self.pool)))
            return (await self.send(kind, "POST", "/v1/faces/detect", key=key, data=data, phase=phase))[0]
        if kind == "compare":
            data = self.form(("image_a", img()), ("image_b", img()))
            return (await self.send(kind, "POST", "/v1/faces/compare", key=key, data=data, phase=phase))[0]
        if kind == "batch":
            data = self.form(*[("images", img()) for _ in range(rng.randint(2, 4))])
            return (await self.send(kind, "POST", "/v1/faces/batch", key=key, data=data, phase=phase))[0]
        if kind == "usage":
            return (await self.send(kind, "GET", "/v1/usage?days=2", key=key, phase=phase))[0]
        if kind == "ready":
            return await self.poll_ready(phase)
        if kind == "bad_corrupt":
            data = self.form(("image", rng.randbytes(3000)))
            return (await self.send(kind, "POST", "/v1/faces/detect", key=key, data=data, phase=phase))[0]
        if kind == "bad_truncated":
            whole = self.fresh()
            data = self.form(("image", whole[: len(whole) // 3]))
            return (await self.send(kind, "POST", "/v1/faces/detect", key=key, data=data, phase=phase))[0]
        if kind == "bad_missing":
            body = {"detection_threshold": 0.5}
            return (await self.send(kind, "POST", "/v1/faces/detect", key=key, json_body=body, phase=phase))[0]
        if kind == "bad_wrong_key":
            wrong = random_key()
            self.sent_invalid.append(wrong)
            data = self.form(("image", self.pool[0]))
            return (await self.send(kind, "POST", "/v1/faces/detect", secret=wrong, data=data, phase=phase))[0]
        raise ValueError(f"unknown request kind {kind!r}")

    async def poll_ready(self, phase: str) -> Rec:
        rec, body = await self.send("ready", "GET", "/health/ready", phase=phase)
        status = redis_up = triton_ready = None
        try:
            doc = json.loads(body)
            status = doc.get("status")
            redis_up = doc["checks"]["redis"].get("up")
            triton_ready = doc["checks"]["triton"]["primary"].get("ready")
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        self.polls.append(Poll(rec.end, rec.status, status, redis_up, triton_ready))
        return rec

    async def create_key(self, name: str, tier: str, origin: str, phase: str) -> int | None:
        """A new key through the admin endpoint; its index in `keys` when created (201)."""
        body = {"name": name, "scopes": ["detect", "analyze", "compare", "batch"], "tier": tier}
        rec, raw = await self.send("new_key", "POST", "/v1/admin/keys", secret=self.admin, json_body=body, phase=phase)
        if rec.status != 201:
            return None
        doc = json.loads(raw)
        self.keys.append(Key(doc["secret"], doc["id"], origin, rec.end))
        return len(self.keys) - 1


def error_code(body: bytes) -> str | None:
    try:
        return json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


async def run_clients(
    traffic: Traffic,
    clients: int,
    mix: Mapping[str, int],
    phase: str,
    *,
    keys: Sequence[int],
    until: Callable[[], bool],
    think_s: float = 0.0,
    repeat_share: float = 0.0,
    seed: int = 0,
) -> None:
    kinds, weights = list(mix), list(mix.values())

    async def client(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        key = keys[i % len(keys)]
        while not until():
            await traffic.request(rng.choices(kinds, weights)[0], rng, key, phase, repeat_share)
            if think_s:
                await asyncio.sleep(think_s)

    await asyncio.gather(*(client(i) for i in range(clients)))


async def key_creator(traffic: Traffic, every_s: float, stop: asyncio.Event, phase: Callable[[], str]) -> None:
    """A new key every `every_s` seconds; each one created is used at once for one (cached) detect."""
    for n in itertools.count():
        p = phase()
        index = await traffic.create_key(f"reliability-{n}", "load", f"created during {p}", p)
        if index is not None:
            data = traffic.form(("image", traffic.pool[n % len(traffic.pool)]))
            await traffic.send("new_key_detect", "POST", "/v1/faces/detect", key=index, data=data, phase=p)
        try:
            await asyncio.wait_for(stop.wait(), every_s)
            return
        except asyncio.TimeoutError:
            pass


async def ready_poller(traffic: Traffic, stop: asyncio.Event, every_s: float = 0.25) -> None:
    while not stop.is_set():
        await traffic.poll_ready("faults")
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except asyncio.TimeoutError:
            pass


async def wait_for(pred: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True


class FdWatcher(threading.Thread):
    """Samples the API process's open files (for writing, or deleted) every 0.2 s while the traffic runs."""

    def __init__(self, pid: Callable[[], int | None]):
        super().__init__(daemon=True)
        self.pid, self.seen, self.samples = pid, set(), 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.2):
            pid = self.pid()
            if pid:
                self.seen |= written_fds(pid)
                self.samples += 1

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)


# --------------------------------------------------------------------------------------------- the run


@dataclass
class Stack:
    triton: TritonProcess
    redis: RedisProcess
    api: ApiProcess
    work: Path
    api_cwd: Path
    api_tmp: Path
    logs: list[Path] = field(default_factory=list)


def api_settings(redis_url: str, auth_failures_per_minute: int, deadline_s: float) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "TRITON_TIMEOUT_S": f"{deadline_s:g}",
        "BREAKER_RESET_S": str(BREAKER_RESET_S),
        "RATE_TIERS": json.dumps(TIERS),
        "DEFAULT_TIER": "standard",
        "AUTH_FAILURES_PER_MINUTE": str(auth_failures_per_minute),
        "LOG_LEVEL": "INFO",  # the access log too: more text the log scan must find clean
        "LOG_JSON": "true",
    }


def start_api(
    stack: Stack, auth_failures_per_minute: int, deadline_s: float, log_name: str, admin: str | None = None
) -> ApiProcess:
    """`face-api serve` with its own working directory and temporary directory (TMPDIR), both scanned afterwards."""
    settings = api_settings(stack.redis.url, auth_failures_per_minute, deadline_s)
    tmp = str(stack.api_tmp)
    api = ApiProcess(
        stack.triton.grpc_url,
        stack.work,
        settings,
        log_name=log_name,
        cwd=stack.api_cwd,
        env={"TMPDIR": tmp, "TEMP": tmp, "TMP": tmp},
    )
    if admin:
        api.admin = admin
    stack.logs.append(api.log)
    return api.start()


class Reliability:
    """The sections, in the order they run; each adds its figures to `doc`, its Markdown to `md` and its verdicts."""

    def __init__(self, args, plan: Plan, stack: Stack, images: Sequence[tuple[str, bytes]], t0: float):
        self.args, self.plan, self.stack, self.t0 = args, plan, stack, t0
        self.images = images
        self.verdicts: list[dict] = []
        self.doc: dict = {}
        self.md: dict[str, str] = {}
        self.meter = CpuMeter()  # "bench": this process alone (its children are the servers, metered apart)

    def add(self, section: str, check: str, target: str, measured: str, ok: bool | None) -> None:
        self.verdicts.append(verdict(section, check, target, measured, ok))

    def emit(self, name: str, text: str) -> None:
        text = text.rstrip()
        self.md[name] = text
        print("\n" + text, flush=True)

    async def run(self) -> None:
        plan, stack = self.plan, self.stack
        connections = max(plan.load_clients, plan.fault_clients) + 8
        async with Traffic(stack.api.url, stack.api.admin, [d for _, d in self.images], self.t0, connections) as tr:
            self.traffic = tr
            for i in range(LOAD_KEYS):
                if await tr.create_key(f"load-{i}", "load", "load (before the run)", "setup") is None:
                    raise SystemExit("could not create the load keys: " + repr(tr.records[-1]))
            self.load_keys = list(range(LOAD_KEYS))
            for i, data in enumerate(tr.pool):  # the repeats: their first sight is a miss
                rec, _ = await tr.send(
                    "prime", "POST", "/v1/faces/detect", key=i % LOAD_KEYS, data=tr.form(("image", data))
                )
                if rec.status != 200:
                    raise SystemExit(f"priming failed: {rec}")
            self.disk_before = await asyncio.to_thread(self.disk_snapshot)
            watcher = FdWatcher(lambda: self.stack.api.pid)
            watcher.start()
            try:
                await self.load()
                await self.faults()
                await self.usage_and_keys("after the Redis restart")
            finally:
                watcher.stop()
            self.fd_watch = watcher
            await self.flood()
            await asyncio.to_thread(self.stack.api.stop)
            self.stack.api = await asyncio.to_thread(
                start_api,
                stack,
                TIMING_AUTH_FAILURES_PER_MINUTE,
                self.plan.deadline_s,
                "face-api-2.log",
                stack.api.admin,
            )
            tr.url = self.stack.api.url
            await self.usage_and_keys("after an API restart")
            await self.timing()
        await asyncio.to_thread(self.stack.api.stop)  # its last log lines are written
        self.disk()
        self.logs()

    # 1. load ----------------------------------------------------------------------------------------------

    async def load(self) -> None:
        plan, tr = self.plan, self.traffic
        print(f"\n1. load: {plan.load_clients} clients for {plan.load_s:g} s ...", flush=True)
        n0 = len(tr.records)
        before = await asyncio.to_thread(self.meter_snapshot)
        start = tr.now()
        end = start + plan.load_s
        stop = asyncio.Event()
        creator = asyncio.create_task(key_creator(tr, plan.key_every_s, stop, lambda: "load"))
        await run_clients(
            tr,
            plan.load_clients,
            LOAD_MIX,
            "load",
            keys=self.load_keys,
            until=lambda: tr.now() >= end,
            repeat_share=REPEAT_SHARE,
            seed=1,
        )
        stop.set()
        await creator
        wall = tr.now() - start
        cpu = cpu_seconds(before, await asyncio.to_thread(self.meter_snapshot), self.meter.hz)
        recs = [r for r in tr.records[n0:] if r.phase == "load"]
        tallies = tally_statuses(recs)
        rows, per_kind = [], {}
        for kind in [k for k in LABELS if k in tallies]:
            rs = [r for r in recs if r.kind == kind]
            lat = summary([r.latency_ms for r in rs if r.status])
            hits = sum(r.cache == "hit" for r in rs)
            per_kind[kind] = {
                "requests": len(rs),
                "per_s": len(rs) / wall,
                "latency_ms": lat,
                "statuses": {str(k): v for k, v in tallies[kind].items()},
                "cache_hits": hits,
            }
            rows.append(
                [LABELS[kind], str(len(rs)), format_number(len(rs) / wall, 2)]
                + [format_number(lat[q], 0) for q in ("p50", "p95", "p99", "max")]
                + [str(hits) if kind in INFERENCE_KINDS else "", status_text(tallies[kind])]
            )
        all_lat = summary([r.latency_ms for r in recs if r.status])
        total = Counter()
        for c in tallies.values():
            total.update(c)
        rows.append(
            ["**all**", str(len(recs)), format_number(len(recs) / wall, 2)]
            + [format_number(all_lat[q], 0) for q in ("p50", "p95", "p99", "max")]
            + [str(sum(r.cache == "hit" for r in recs)), status_text(total)]
        )
        images = sum(
            {"compare": 2}.get(r.kind, 1) if r.kind != "batch" else 3 for r in recs if r.kind in INFERENCE_KINDS
        )
        classes = tally_classes(recs)
        timeouts = sum(r.code == "inference_timeout" for r in recs)
        circuit = sum(r.circuit for r in recs)
        opened = self.stack.api.log.read_text(errors="replace").count('"state": "open"')  # the load came first
        odd = Counter(f"{r.kind} → {answer_label(r)}" for r in recs if classify(r) != "ok")
        table = markdown_table(
            ["endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "cache hits", "statuses"], rows
        )
        cpu["script"] = cpu.pop("bench", None)
        cores = {k: cores_busy(v, wall) for k, v in cpu.items()}
        ours = sum(v for k, v in cpu.items() if k != "machine" and v is not None)
        others = None if cpu.get("machine") is None else max(cpu["machine"] - ours, 0.0) / wall
        cpu_line = ", ".join(f"{k} {format_number(cores.get(k), 2)}" for k in ("script", "triton", "api", "redis"))
        section = "1. Load"
        self.add(section, "unexpected 5xx", "0", str(classes["unexpected_5xx"]), classes["unexpected_5xx"] == 0)
        self.add(
            section,
            "client timeouts (hangs)",
            f"0 (client timeout {CLIENT_TIMEOUT_S:g} s)",
            str(classes["timeout"]),
            classes["timeout"] == 0,
        )
        self.add(
            section, "transport errors (no HTTP answer)", "0", str(classes["transport"]), classes["transport"] == 0
        )
        self.add(
            section, "unexpected 4xx / other statuses", "0", str(classes["unexpected"]), classes["unexpected"] == 0
        )
        self.add(section, "503 `overloaded` (documented in-flight cap)", "reported", str(classes["overloaded"]), None)
        self.doc["load"] = {
            "clients": plan.load_clients,
            "duration_s": round(wall, 2),
            "requests": len(recs),
            "requests_per_s": len(recs) / wall,
            "images_sent_per_s_approx": images / wall,
            "latency_ms": all_lat,
            "per_kind": per_kind,
            "classes": dict(classes),
            "not_ok": dict(odd),
            "cpu_cores": {k: v for k, v in cores.items() if k != "machine"} | {"others": others},
            "deadline_timeouts": timeouts,
            "circuit_open_503": circuit,
            "breaker_opened": opened,
        }
        odd_text = "\n".join(f"- {k}: {v}" for k, v in odd.most_common()) or "- none"
        breaker_note = ""
        if timeouts or circuit:
            breaker_note = f"""
- Triton was up throughout this section, yet {timeouts} request(s) hit the API's deadline (504 `inference_timeout`,
  `FACE_API_TRITON_TIMEOUT_S={plan.deadline_s:g}`) while queued, and {circuit} were answered 503
  `inference_unavailable` "(circuit open)"; the breaker opened {opened} time(s) (the API's log). Timeouts while
  other calls are answered do not count against the breaker, and latency-based shedding
  (`FACE_API_SHED_LATENCY_FRACTION`) answers 503 `overloaded` before queued work would time out: a shorter
  `--deadline` leaves less room for the queue's tail."""
        self.emit(
            section,
            f"""## 1. Load

{plan.load_clients} concurrent clients (aiohttp) for {wall:.1f} s, each in a closed loop (the next request when
the previous one is answered) on a weighted mix: {", ".join(f"{k} {v}" for k, v in LOAD_MIX.items())}; about
{REPEAT_SHARE:.0%} of the images were sent before (cache hits), the others are new bytes (a JPEG comment with a
counter: a cache miss, same pixels). The load keys use a tier that never throttles; a key was created every
{plan.key_every_s:g} s meanwhile. Client timeout {CLIENT_TIMEOUT_S:g} s.

{table}

- **unexpected 5xx: {classes["unexpected_5xx"]}**; 503 `overloaded` (the documented in-flight cap,
  `FACE_API_MAX_IN_FLIGHT`=64 per replica): {classes["overloaded"]}; client timeouts (hangs):
  {classes["timeout"]}; transport errors: {classes["transport"]}; other unexpected statuses: {classes["unexpected"]}.
- Answers outside each kind's expected statuses (the bad requests' 4xx are expected):
{odd_text}
- About {images / wall:.1f} images/s reached the API on the image routes (hits included). CPU cores busy on
  average: {cpu_line}; everything else on the machine: {format_number(others, 2)}.{breaker_note}""",
        )

    # 2. faults --------------------------------------------------------------------------------------------

    async def faults(self) -> None:
        plan, tr, stack = self.plan, self.traffic, self.stack
        print(
            f"\n2. faults under {plan.fault_clients} clients: Triton, then Redis, {plan.outage_s:g} s each ...",
            flush=True,
        )
        n0, p0 = len(tr.records), len(tr.polls)
        stop = asyncio.Event()
        phase = {"name": "faults (warm-up)"}
        clients = asyncio.create_task(
            run_clients(
                tr,
                plan.fault_clients,
                FAULT_MIX,
                "faults",
                keys=self.load_keys,
                until=stop.is_set,
                think_s=THINK_S,
                seed=2,
            )
        )
        creator = asyncio.create_task(key_creator(tr, plan.key_every_s, stop, lambda: phase["name"]))
        poller = asyncio.create_task(ready_poller(tr, stop))
        t = {}
        try:
            await asyncio.sleep(plan.warm_s)
            phase["name"] = "the Triton outage"
            t["triton_kill"] = tr.now()
            shm = await asyncio.to_thread(stack.triton.kill)
            await asyncio.sleep(max(0.0, t["triton_kill"] + plan.outage_s - tr.now()))
            t["triton_restart"] = tr.now()
            await asyncio.to_thread(stack.triton.start)
            t["triton_ready"] = tr.now()
            phase["name"] = "the Triton recovery"

            def miss_ok(r: Rec) -> bool:
                return r.kind in MISS_KINDS and r.status == 200 and r.cache == "miss" and r.end >= t["triton_ready"]

            await wait_for(lambda: any(miss_ok(r) for r in tr.records[n0:]), 3 * RECOVERY_GOAL_S)
            first_miss = first(tr.records[n0:], miss_ok)
            t["triton_recovered"] = first_miss.end if first_miss else math.nan
            await asyncio.sleep(plan.settle_s)

            phase["name"] = "the Redis outage"
            t["redis_kill"] = tr.now()
            await asyncio.to_thread(stack.redis.kill)
            await asyncio.sleep(max(0.0, t["redis_kill"] + plan.outage_s - tr.now()))
            t["redis_restart"] = tr.now()
            await asyncio.to_thread(stack.redis.start)
            t["redis_up"] = tr.now()
            phase["name"] = "the Redis recovery"

            def ready_again(p: Poll) -> bool:
                return p.t >= t["redis_up"] and p.status == "ready"

            await wait_for(lambda: any(ready_again(p) for p in tr.polls[p0:]), 3 * RECOVERY_GOAL_S)
            first_ready = first((Rec("", p.t, p.t, p.http) for p in tr.polls[p0:] if ready_again(p)), lambda r: True)
            t["redis_ready_seen"] = first_ready.end if first_ready else math.nan
            await asyncio.sleep(plan.settle_s)
            phase["name"] = "faults (settling)"
        finally:
            stop.set()
            await asyncio.gather(clients, creator, poller)
        t["end"] = tr.now()
        recs, polls = tr.records[n0:], tr.polls[p0:]
        end_triton = t["triton_recovered"] if math.isfinite(t["triton_recovered"]) else t["redis_kill"]
        end_redis = t["redis_ready_seen"] if math.isfinite(t["redis_ready_seen"]) else t["end"]
        self.windows = [
            Window("triton", t["triton_kill"], end_triton + 0.5),
            Window("redis", t["redis_kill"], end_redis + 0.5),
        ]
        self.fault_times = t
        triton_part = [r for r in recs if r.start < t["redis_kill"]]
        redis_part = [r for r in recs if r.start >= t["redis_kill"]]
        a = self.triton_figures(triton_part, polls, t, end_triton, shm)
        b = self.redis_figures(redis_part, polls, t, end_redis)
        self.doc["faults"] = {
            "clients": plan.fault_clients,
            "think_s": THINK_S,
            "outage_s": plan.outage_s,
            "times_s": {k: round(v, 3) for k, v in t.items()},
            "triton": a,
            "redis": b,
            "records": [
                [r.kind, round(r.start, 3), round(r.end, 3), r.status, r.code, r.retry_after, r.cache] for r in recs
            ],
            "readiness": [[round(p.t, 3), p.http, p.status, p.redis_up, p.triton_ready] for p in polls],
        }

    def add_outcome_verdicts(self, section: str, classes: Counter) -> None:
        """A drill's verdicts on what every request got: no unexpected 5xx, hang or transport error, no odd 4xx."""
        self.add(
            section,
            "unexpected 5xx / hangs / transport errors",
            "0",
            f"{classes['unexpected_5xx']} / {classes['timeout']} / {classes['transport']}",
            classes["unexpected_5xx"] + classes["timeout"] + classes["transport"] == 0,
        )
        self.add(section, "unexpected 4xx", "0", str(classes["unexpected"]), classes["unexpected"] == 0)

    def triton_figures(self, recs, polls, t, end, shm) -> dict:
        section = "2a. Triton crash"
        kill, ready = t["triton_kill"], t["triton_ready"]
        first_503 = first(recs, lambda r: r.kind in INFERENCE_KINDS and r.status == 503 and r.end >= kill)
        during = [r for r in recs if r.start <= end and r.end >= kill]
        max_ms = max((r.latency_ms for r in during), default=math.nan)
        slowest = max(during, key=lambda r: r.latency_ms, default=None)
        e503 = [r for r in during if r.kind in INFERENCE_KINDS and r.status == 503]
        with_retry = sum(r.retry_after is not None for r in e503)
        hits = [r for r in recs if r.kind == "detect_hit" and r.start >= kill and r.end <= ready]
        hits_ok = sum(r.status == 200 for r in hits)
        recovery = end - ready if math.isfinite(t["triton_recovered"]) else math.nan
        out_polls = Counter(p.status for p in polls if kill <= p.t <= ready)
        classes = tally_classes(recs, self.windows)
        limit_ms = (self.plan.deadline_s + HANG_MARGIN_S) * 1000
        codes = Counter(answer_label(r) for r in during if not 200 <= r.status < 300)
        fig = {
            "kill_to_first_503_s": None if first_503 is None else first_503.end - kill,
            "down_s": t["triton_restart"] - kill,
            "restart_to_ready_s": ready - t["triton_restart"],
            "ready_to_first_miss_200_s": recovery,
            "kill_to_recovered_s": end - kill,
            "max_latency_ms": max_ms,
            "slowest": None if slowest is None else asdict(slowest),
            "requests_during": len(during),
            "statuses_during": dict(Counter(str(r.status) for r in during)),
            "errors_during": dict(codes),
            "inference_503": len(e503),
            "inference_503_with_retry_after": with_retry,
            "inference_503_latency_ms": summary([r.latency_ms for r in e503]),
            "cached_during_outage": len(hits),
            "cached_during_outage_200": hits_ok,
            "readiness_during_outage": dict(out_polls),
            "classes": dict(classes),
            "shm_regions_removed": len(shm),
        }
        self.add(section, "time from the kill to the first 503", "reported", fmt_s(fig["kill_to_first_503_s"]), None)
        self.add(
            section,
            "max latency of any request during the outage",
            f"<= {limit_ms / 1000:g} s (deadline + {HANG_MARGIN_S:g} s)",
            fmt_s(max_ms / 1000),
            math.isfinite(max_ms) and max_ms <= limit_ms,
        )
        self.add(
            section,
            "503s carrying Retry-After",
            "all",
            f"{with_retry} of {len(e503)}",
            len(e503) > 0 and with_retry == len(e503),
        )
        self.add(
            section,
            "cached images answered 200 during the outage",
            "all",
            f"{hits_ok} of {len(hits)}",
            len(hits) > 0 and hits_ok == len(hits),
        )
        self.add(
            section,
            "Triton ready again → first 200 on a miss",
            f"<= {RECOVERY_GOAL_S:g} s",
            fmt_s(recovery),
            math.isfinite(recovery) and recovery <= RECOVERY_GOAL_S,
        )
        self.add_outcome_verdicts(section, classes)
        rows = [
            ["SIGKILL (server and its Python-backend stubs) → first 503", fmt_s(fig["kill_to_first_503_s"])],
            ["held down", fmt_s(fig["down_s"], 1)],
            ["restart → `face_analysis` ready (Triton's own start-up)", fmt_s(fig["restart_to_ready_s"], 1)],
            ["**ready → first 200 on a cache miss** (goal <= 10 s)", fmt_s(recovery)],
            ["kill → first 200 on a miss, in all", fmt_s(fig["kill_to_recovered_s"], 1)],
            [
                "requests overlapping the outage; statuses",
                f"{len(during)}; {status_text(Counter(r.status for r in during))}",
            ],
            ["errors during it", ", ".join(f"{k}: {v}" for k, v in codes.most_common()) or "—"],
            [f"max latency during it (deadline {self.plan.deadline_s:g} s)", fmt_s(max_ms / 1000)],
            [
                "503 latency p50 / p99 (breaker open: answered at once)",
                f"{format_number(fig['inference_503_latency_ms']['p50'], 1)} / "
                f"{format_number(fig['inference_503_latency_ms']['p99'], 1)} ms",
            ],
            ["503s with Retry-After", f"{with_retry} of {len(e503)}"],
            ["cached images (detect of a primed image) during the outage: 200", f"{hits_ok} of {len(hits)}"],
            ["readiness during the outage", status_text(out_polls)],
            ["shared-memory regions left by the killed server, removed", str(len(shm))],
        ]
        self.emit(
            section,
            f"""## 2. Faults

Under a lighter continuous load: {self.plan.fault_clients} clients, each pausing {THINK_S * 1000:.0f} ms between
requests, on {", ".join(f"{k} {v}" for k, v in FAULT_MIX.items())} (misses are new bytes; `detect_hit` sends a
primed image); `/health/ready` polled every 250 ms; a key created every {self.plan.key_every_s:g} s and used at once.
The API runs with `FACE_API_TRITON_TIMEOUT_S={self.plan.deadline_s:g}`, `FACE_API_BREAKER_RESET_S={BREAKER_RESET_S:g}`
and the default 5 failures to open the breaker.

### (a) Triton crash: SIGKILL mid-load, {self.plan.outage_s:g} s down, restart on the same ports

{markdown_table(["measure", "value"], rows)}""",
        )
        return fig

    def redis_figures(self, recs, polls, t, end) -> dict:
        section = "2b. Redis crash"
        kill, restart, up = t["redis_kill"], t["redis_restart"], t["redis_up"]
        down = [r for r in recs if r.start >= kill and r.end <= restart]
        during = [r for r in recs if r.start <= end and r.end >= kill]
        ok_down = Counter(r.kind for r in down if r.status == 200)
        out_polls = Counter(p.status for p in polls if kill + 0.5 <= p.t <= restart)
        first_degraded = first(
            (Rec("", p.t, p.t, p.http) for p in polls if p.t >= kill and p.status == "degraded"), lambda r: True
        )
        recovery = end - up if math.isfinite(t["redis_ready_seen"]) else math.nan
        max_ms = max((r.latency_ms for r in during), default=math.nan)
        limit_ms = (self.plan.deadline_s + HANG_MARGIN_S) * 1000
        classes = tally_classes(recs, self.windows)
        store = [r for r in during if r.status == 503 and r.code == "store_unavailable"]
        keys_tried = Counter(str(r.status) for r in during if r.kind == "new_key")
        after = [p for p in polls if p.t >= end]
        fig = {
            "down_s": restart - kill,
            "restart_to_ping_s": up - restart,
            "redis_up_to_ready_s": recovery,
            "kill_to_first_degraded_s": None if first_degraded is None else first_degraded.end - kill,
            "answered_200_while_down": sum(ok_down.values()),
            "answered_200_while_down_by_kind": dict(ok_down),
            "requests_while_down": len(down),
            "statuses_while_down": dict(Counter(str(r.status) for r in down)),
            "readiness_while_down": dict(out_polls),
            "readiness_after": dict(Counter(p.status for p in after)),
            "max_latency_ms": max_ms,
            "store_unavailable_503": len(store),
            "store_unavailable_with_retry_after": sum(r.retry_after is not None for r in store),
            "key_creations_during": dict(keys_tried),
            "classes": dict(classes),
        }
        total_ok = sum(ok_down.values())
        self.add(section, "200s while Redis is down", "> 0", f"{total_ok} of {len(down)}", total_ok > 0)
        self.add(
            section,
            "/health/ready while down",
            "`degraded`",
            status_text(out_polls),
            bool(out_polls) and set(out_polls) == {"degraded"},
        )
        self.add(
            section,
            "Redis back → /health/ready `ready`",
            f"<= {RECOVERY_GOAL_S:g} s",
            fmt_s(recovery),
            math.isfinite(recovery) and recovery <= RECOVERY_GOAL_S,
        )
        flaps = sum(p.status != "ready" for p in after)
        self.add(
            section,
            "readiness after the recovery: polls not `ready`",
            "reported (see the note below the table)",
            f"{flaps} of {len(after)}",
            None,
        )
        self.add(
            section,
            "max latency during the outage",
            f"<= {limit_ms / 1000:g} s",
            fmt_s(max_ms / 1000),
            math.isfinite(max_ms) and max_ms <= limit_ms,
        )
        self.add_outcome_verdicts(section, classes)
        rows = [
            ["SIGKILL → first `degraded` readiness", fmt_s(fig["kill_to_first_degraded_s"])],
            ["held down", fmt_s(fig["down_s"], 1)],
            ["restart → PING answered (append-only file reloaded)", fmt_s(fig["restart_to_ping_s"])],
            ["**Redis answering → /health/ready `ready`** (goal <= 10 s)", fmt_s(recovery)],
            ["requests while Redis was down; statuses", f"{len(down)}; {status_text(Counter(r.status for r in down))}"],
            ["200s while down, by kind", ", ".join(f"{k}: {v}" for k, v in ok_down.most_common()) or "—"],
            ["readiness while down / after", f"{status_text(out_polls)} / {status_text(fig['readiness_after'])}"],
            ["max latency during the outage", fmt_s(max_ms / 1000)],
            [
                "503 `store_unavailable` (usage reports, key creation) with Retry-After",
                f"{fig['store_unavailable_with_retry_after']} of {len(store)}",
            ],
            ["key creations during the outage and recovery", status_text(keys_tried)],
        ]
        flap_note = ""
        if flaps:
            flap_note = f"""
Readiness after the recovery: {flaps} of {len(after)} polls were not `ready`. A `degraded` after the first `ready`
comes from the API's Redis client: each pooled connection opened before the crash fails once (`Connection closed by
server`), the replica then marks Redis down again for its retry interval (1 s: in-process limits and key cache, no
key creation, usage buffered) and the next call reconnects. A control-plane issue, reported; not a verdict here."""
        self.emit(
            section,
            f"""### (b) Redis crash: SIGKILL mid-load, {self.plan.outage_s:g} s down, restart from its append-only file

{markdown_table(["measure", "value"], rows)}

{flap_note}""",
        )
        return fig

    # 2c. keys and usage -----------------------------------------------------------------------------------

    async def usage_and_keys(self, when: str) -> None:
        tr = self.traffic
        await asyncio.sleep(self.plan.flush_s)  # counts buffered while Redis was down are flushed by the next write
        checks = []
        for i, key in enumerate(tr.keys):
            rec, body = await tr.send("usage_check", "GET", "/v1/usage?days=30", key=i, phase="check")
            counted = None
            if rec.status == 200:
                counted = json.loads(body)["totals"]["requests"]
            checks.append((i, key, rec.status, counted))
        acked = Counter(
            r.key for r in tr.records if r.kind in COUNTED_KINDS and 200 <= r.status < 300 and r.key is not None
        )
        unanswered = Counter(
            r.key for r in tr.records if r.kind in COUNTED_KINDS and r.status == 0 and r.key is not None
        )
        rows, per_key = [], []
        for i, key, status, counted in checks:
            expected = acked.get(i, 0)
            per_key.append(
                {
                    "id": key.id,
                    "origin": key.origin,
                    "auth_status": status,
                    "acknowledged": expected,
                    "counted": counted,
                    "unanswered": unanswered.get(i, 0),
                }
            )
        lost_keys = [p for p in per_key if p["auth_status"] != 200]
        short = [p for p in per_key if p["counted"] is not None and p["counted"] < p["acknowledged"]]
        excess = sum(max((p["counted"] or 0) - p["acknowledged"], 0) for p in per_key)
        total_acked = sum(p["acknowledged"] for p in per_key)
        total_counted = sum(p["counted"] or 0 for p in per_key)
        section = "2c. Nothing lost" if "Redis" in when else "2c. Nothing lost (API restart)"
        created = Counter(str(r.status) for r in tr.records if r.kind == "new_key")
        self.add(
            section,
            f"keys created (201) that authenticate {when}",
            "all",
            f"{len(per_key) - len(lost_keys)} of {len(per_key)}",
            not lost_keys,
        )
        self.add(
            section,
            f"acknowledged counted requests in /v1/usage {when}",
            "counted >= acknowledged, every key",
            f"{total_counted} counted, {total_acked} acknowledged, {len(short)} key(s) short",
            not short and not lost_keys,
        )
        self.add(section, f"excess counts {when} (at-least-once)", "reported", str(excess), None)
        self.doc.setdefault("keys_and_usage", {})[when] = {
            "keys": per_key,
            "key_creations": dict(created),
            "acknowledged": total_acked,
            "counted": total_counted,
            "excess": excess,
            "short_keys": short,
        }
        for group in key_groups(per_key):
            rows.append(
                [
                    group["keys"],
                    group["origin"],
                    status_text(group["auth"]),
                    str(group["acknowledged"]),
                    str(group["counted"]),
                    f"{group['counted'] - group['acknowledged']:+d}",
                    str(group["unanswered"]),
                ]
            )
        rows.append(["**all**", "", "", str(total_acked), str(total_counted), f"{total_counted - total_acked:+d}", ""])
        headers = ["key(s)", "created", "GET /v1/usage", "2xx seen (counted routes)", "usage `requests`"]
        table = markdown_table(headers + ["difference", "no answer"], rows)
        if "Redis" in when:
            text = f"""### (c) Nothing acknowledged is lost

After the faults and a {self.plan.flush_s:g} s pause, every key the admin endpoint created (answered 201: before the
run, during the load and during both outages; creations answered 503 while Redis was down are not keys) calls
GET /v1/usage. Its `totals.requests` must be at least the number of 2xx the client saw with that key on the counted
routes (detect, analyze, compare, batch: `control_plane/api/routes/faces.py` and `batch.py` record usage after the
analysis succeeded; usage reports, readiness and failed requests are not counted). Counts buffered while Redis was
down are flushed at the next write or report (`control_plane/security/usage.py`): at-least-once, so an excess is
possible (a request counted whose answer the client never got) and is reported, not failed. Key creations seen:
{status_text(created)}.

{table}"""
        else:
            text = f"""### (c, again) The same after an API restart

The API process is stopped (SIGTERM: pending counts flushed) and started again with the same Redis (for the timing
measurement below); every key is checked again.

- keys that authenticate: {len(per_key) - len(lost_keys)} of {len(per_key)}; usage `requests` {total_counted} for
  {total_acked} acknowledged (difference {total_counted - total_acked:+d}); keys short: {len(short)}."""
        self.emit(section, text)

    # 3. abuse ---------------------------------------------------------------------------------------------

    async def flood(self) -> None:
        import aiohttp

        tr, n = self.traffic, self.plan.flood
        print(f"\n3a. flood: {n} requests with random invalid keys ...", flush=True)
        source = "127.0.0.2"  # a fresh address: the load's wrong keys spent 127.0.0.1's budget
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0))) as s:
                async with s.get(tr.url + "/health") as r:
                    await r.read()
        except (aiohttp.ClientError, OSError):
            source = None
        connector = aiohttp.TCPConnector(limit=1, local_addr=(source, 0) if source else None)
        answers = []
        start = time.monotonic()
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)
        ) as s:
            for _ in range(n):
                key = random_key()
                tr.sent_invalid.append(key)
                try:
                    async with s.get(tr.url + "/v1/usage", headers={"X-API-Key": key}) as r:
                        await r.read()
                        answers.append((r.status, r.headers.get("Retry-After")))
                except (asyncio.TimeoutError, aiohttp.ClientError, OSError):
                    answers.append((0, None))  # no answer: counted among the statuses as 0
        took = time.monotonic() - start
        statuses = [a[0] for a in answers]
        first_429 = statuses.index(429) if 429 in statuses else None
        before = statuses[:first_429] if first_429 is not None else statuses
        n401_before = sum(s == 401 for s in before)
        r429 = [a for a in answers if a[0] == 429]
        retry_values = sorted({int(v) for _, v in r429 if v and v.isdigit()})
        refill = math.ceil(took * AUTH_FAILURES_PER_MINUTE / 60) + 1
        section = "3a. Invalid-key flood"
        budget_ok = first_429 is not None and n401_before <= AUTH_FAILURES_PER_MINUTE + refill
        if source is not None:
            budget_ok = budget_ok and n401_before >= AUTH_FAILURES_PER_MINUTE
        self.add(
            section,
            "401s before the first 429",
            f"the budget, {AUTH_FAILURES_PER_MINUTE}/min per address",
            str(n401_before),
            budget_ok,
        )
        self.add(
            section,
            "429s carrying Retry-After",
            "all",
            f"{sum(v is not None for _, v in r429)} of {len(r429)}",
            bool(r429) and all(v is not None for _, v in r429),
        )
        self.add(
            section, "5xx during the flood", "0", str(sum(s >= 500 for s in statuses)), all(s < 500 for s in statuses)
        )
        self.doc["flood"] = {
            "requests": n,
            "source_address": source or "127.0.0.1 (127.0.0.2 unusable: the load's wrong keys shared its budget)",
            "auth_failures_per_minute": AUTH_FAILURES_PER_MINUTE,
            "duration_s": took,
            "statuses": dict(Counter(str(s) for s in statuses)),
            "n401_before_first_429": n401_before,
            "first_429_at": first_429,
            "retry_after_values": retry_values,
        }
        rows = [
            ["requests (GET /v1/usage, a new random well-formed key each, one connection)", str(n)],
            ["client address", source or "127.0.0.1 (shared with the load)"],
            ["statuses", status_text(Counter(statuses))],
            ["answered 401 before the first 429", str(n401_before)],
            ["first 429 at request #", "—" if first_429 is None else str(first_429 + 1)],
            [
                "429 with Retry-After; values (s)",
                f"{sum(v is not None for _, v in r429)} of {len(r429)}; "
                + (f"{retry_values[0]}–{retry_values[-1]}" if retry_values else "—")
                if r429
                else "—",
            ],
            ["flood duration", fmt_s(took)],
        ]
        self.emit(
            section,
            f"""## 3. Abuse

### (a) A flood of invalid keys from one address

`FACE_API_AUTH_FAILURES_PER_MINUTE={AUTH_FAILURES_PER_MINUTE}`: a bucket of that many failed authentications per
client address, refilled at that rate per minute.

{markdown_table(["measure", "value"], rows)}""",
        )

    async def timing(self) -> None:
        import aiohttp

        tr, n = self.traffic, self.plan.timing_samples
        print(f"\n3b. key-check timing: {n} near misses and {n} far misses ...", flush=True)
        valid = tr.keys[0].secret
        rng = random.Random(11)
        samples: dict[str, list[float]] = {"near": [], "far": []}
        statuses = Counter()
        connector = aiohttp.TCPConnector(limit=1, keepalive_timeout=4)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_S)
        ) as s:

            async def one(key: str) -> float:
                t0 = time.perf_counter()
                try:
                    async with s.get(tr.url + "/v1/usage", headers={"X-API-Key": key}) as r:
                        await r.read()
                        statuses[r.status] += 1
                except (asyncio.TimeoutError, aiohttp.ClientError, OSError):
                    statuses["no answer"] += 1
                return (time.perf_counter() - t0) * 1000

            for _ in range(20):  # warm-up: connection, code paths
                await one(near_miss(valid, rng))
                await one(random_key())
            statuses.clear()
            for _ in range(n):
                pair = [("near", near_miss(valid, rng)), ("far", random_key())]
                rng.shuffle(pair)
                for label, key in pair:
                    tr.sent_invalid.append(key)
                    samples[label].append(await one(key))
        near, far = summary(samples["near"]), summary(samples["far"])
        t_stat, df = welch_t(samples["near"], samples["far"])
        section = "3b. Key-check timing"
        self.add(
            section,
            "all answers 401 (the measure is valid)",
            f"{2 * n} × 401",
            status_text(statuses),
            set(statuses) == {401},
        )
        self.add(
            section,
            "near miss − far miss, mean (Welch t)",
            "noise (|t| < 3)",
            f"{(near['mean'] - far['mean']) * 1000:+.0f} µs (t = {t_stat:+.2f})",
            None,
        )
        self.doc["timing"] = {
            "samples_per_kind": n,
            "near_ms": near,
            "far_ms": far,
            "mean_diff_us": (near["mean"] - far["mean"]) * 1000,
            "p50_diff_us": (near["p50"] - far["p50"]) * 1000,
            "welch_t": t_stat,
            "welch_df": df,
            "statuses": dict(statuses),
            "raw_ms": {k: [round(v, 4) for v in vs] for k, vs in samples.items()},
        }
        rows = [
            [label, str(s_["n"])] + [format_number(s_[q], 3) for q in ("mean", "p50", "p95", "stdev")]
            for label, s_ in (("near miss (valid key, last character changed)", near), ("far miss (random key)", far))
        ]
        self.emit(
            section,
            f"""### (b) Key-check timing

GET /v1/usage, {n} near misses and {n} far misses interleaved in random order on one kept-alive connection, after
20 warm-up pairs, against a fresh API process whose failed-authentication limit is
{TIMING_AUTH_FAILURES_PER_MINUTE} per minute (so every answer is the 401 path; statuses: {status_text(statuses)}).
Keys are found by their SHA-256 (`control_plane/security/api_keys.py`), so how much of a wrong key matches a real
one should not show.

{markdown_table(["key sent", "n", "mean ms", "p50 ms", "p95 ms", "stdev ms"], rows)}

- difference near − far: mean {(near["mean"] - far["mean"]) * 1000:+.1f} µs, p50
  {(near["p50"] - far["p50"]) * 1000:+.1f} µs; **Welch t = {t_stat:+.2f}** (df {format_number(df, 0)}):
  {"noise (|t| < 3)" if math.isfinite(t_stat) and abs(t_stat) < 3 else "worth a second look (|t| >= 3)"}.""",
        )

    # 3c. disk ---------------------------------------------------------------------------------------------

    def disk_roots(self) -> list[tuple[str, Path, bool]]:
        """(label, folder, private): private folders are only ours; the system's temporary folder is shared."""
        s = self.stack
        return [
            ("the API's temporary directory (its TMPDIR)", s.api_tmp, True),
            ("the API's working directory (its cwd)", s.api_cwd, True),
            ("the run's folder (API logs, Redis's append-only file, Triton's folder)", s.work, True),
            (f"the system's temporary directory ({tempfile.gettempdir()})", Path(tempfile.gettempdir()), False),
        ]

    def disk_snapshot(self) -> dict:
        out = {}
        for label, root, private in self.disk_roots():
            exclude = [] if private else [self.stack.work]
            out[label] = snapshot(root, exclude)
        return out

    def needles(self) -> tuple[dict[str, bytes], dict[str, bytes]]:
        """(ours, any): ours mark this run's uploads (their JPEG comment, raw or in base64); `any` adds the test
        images' own bytes (other users of the machine may hold copies of them)."""
        tag = self.traffic.tag.encode()
        ours = {"this run's image tag": tag, "this run's image tag, base64": base64.b64encode(tag[:15])}
        images = {f"bytes of {name}": data[2:66] for name, data in self.images}
        return ours, {**ours, **images}

    def disk(self) -> None:
        after = self.disk_snapshot()
        ours, anything = self.needles()
        rows, findings, foreign, verdict_ok = [], [], [], True
        for label, _, private in self.disk_roots():
            (before, trunc_b), (now, trunc_a) = self.disk_before[label], after[label]
            changed = changed_files(before, now)
            found = [f for f in (scan_file(p, anything if private else ours | anything) for p in changed) if f]
            mine = [f for f in found if private and (f.get("magic") or f.get("needles"))]
            mine += [f for f in found if not private and set(f.get("needles", {})) & set(ours)]
            other = [f for f in found if f not in mine and not f.get("skipped")]
            skipped = [f for f in found if f.get("skipped")]
            findings += mine
            foreign += other
            verdict_ok = verdict_ok and not mine
            rows.append(
                [
                    label,
                    str(len(now)) + (" (walk capped)" if trunc_a or trunc_b else ""),
                    str(len(changed)),
                    str(len(mine)),
                    str(len(other)),
                    str(len(skipped)),
                ]
            )
        headers = ["folder", "files after", "new or changed", "this run's image bytes", "other image files", "unread"]
        table = markdown_table(headers, rows)
        fds = sorted(self.fd_watch.seen)
        fd_bad = [f for f in fds if f.endswith(" (deleted)") or "/tmp" in f or str(self.stack.api_tmp) in f]
        verdict_ok = verdict_ok and not fd_bad
        section = "3c. Image bytes on disk"
        self.add(
            section,
            "new or changed files holding image bytes (magic, the test images, this run's tag)",
            "none",
            str(len(findings)),
            not findings,
        )
        self.add(
            section,
            "files the API held open for writing or deleted-but-open (sampled)",
            "none in temp dirs",
            f"{len(fds)} ({len(fd_bad)} suspicious)",
            not fd_bad,
        )
        self.doc["disk"] = {
            "findings": findings,
            "foreign_image_files": foreign[:50],
            "api_open_files_for_writing": fds,
            "fd_samples": self.fd_watch.samples,
            "needles": {k: v.hex() for k, v in anything.items()},
        }
        found_text = "\n".join(f"- `{f['path']}`: {f.get('magic') or ''} {f.get('needles', '')}" for f in findings)
        foreign_text = "\n".join(
            f"- `{f['path']}` ({f.get('magic') or ''} {f.get('needles', '')})" for f in foreign[:10]
        )
        self.emit(
            section,
            f"""### (c) No image bytes on disk

Files were listed before the load and after the last request (the API stopped), in the folders below. New or changed
files were read and searched for image magic bytes at their start, bytes 2-66 of each test image (every upload
carries them after its JPEG comment) and this run's tag (the comment every upload carries, raw and base64). In the
shared system temporary directory only files with this run's tag count (other users of the machine may write test
images there). The API ran with `TMPDIR` pointing at its own temporary directory, so anything it spooled would
land there; its open files were also sampled from `/proc/<pid>/fd` every 200 ms during the load and the faults
({self.fd_watch.samples} samples), which sees unnamed temporary files (O_TMPFILE) too.

{table}

- files with image bytes: **{len(findings)}**{":" if findings else ""}
{found_text}
- files the API held open for writing (or deleted and open): {", ".join(f"`{f}`" for f in fds) or "none"}
- image files not from this run (other users of the machine): {len(foreign)}
{foreign_text}""",
        )

    # 3d. logs ---------------------------------------------------------------------------------------------

    def logs(self) -> None:
        tr = self.traffic
        ours, _ = self.needles()
        text = "\n".join(p.read_text(errors="replace") for p in self.stack.logs if p.exists())
        secrets_ = [k.secret for k in tr.keys]
        counts = scan_log_text(
            text, secrets_, tr.sent_invalid, self.stack.api.admin, [v.decode() for v in ours.values()]
        )
        lines = text.splitlines()
        json_lines, events = 0, Counter()
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            json_lines += 1
            if isinstance(entry, dict):
                if entry.get("level") in ("error", "critical") or entry.get("event") == "unhandled":
                    events["errors / unhandled exceptions"] += 1
                if entry.get("event"):
                    events[entry["event"]] += 1
        leaks = sum(counts.values())
        section = "3d. Logs"
        self.add(section, "secrets, keys, admin token or image data in the API's logs", "0", f"{leaks}", leaks == 0)
        self.add(
            section,
            "error-level lines / unhandled exceptions",
            "reported",
            str(events["errors / unhandled exceptions"]),
            None,
        )
        self.doc["logs"] = {
            "files": [p.name for p in self.stack.logs],
            "bytes": len(text),
            "lines": len(lines),
            "json_lines": json_lines,
            "leaks": counts,
            "events": dict(events),
            "secrets_searched": len(secrets_),
            "invalid_keys_searched": len(tr.sent_invalid),
        }
        rows = [[k, str(v)] for k, v in counts.items()]
        self.emit(
            section,
            f"""### (d) Secrets and image data in the logs

The API's stdout and stderr ({len(self.stack.logs)} processes, {len(lines)} lines, {json_lines} of them JSON,
{len(text) / 1e6:.1f} MB) searched for the {len(secrets_)} key secrets this run created (or any `fa_` string
sharing their first 11 characters), the {len(tr.sent_invalid)} invalid keys it sent, the admin token (its first 12
characters), runs of 120+ base64 characters, base64 JPEG/PNG heads and this run's image tag.

{markdown_table(["found in the logs", "count"], rows)}

- events logged: {", ".join(f"{k} {v}" for k, v in events.most_common()) or "—"}""",
        )

    # helpers ----------------------------------------------------------------------------------------------

    def meter_snapshot(self) -> dict:
        self.meter.roots.update(triton=self.stack.triton.pid, api=self.stack.api.pid, redis=self.stack.redis.pid)
        return self.meter.snapshot()


# --------------------------------------------------------------------------------------------- report


def render(args, plan: Plan, facts: dict, rel: Reliability, total_s: float, started: float, cmd: str) -> str:
    m = facts["machine"]
    failed = [v for v in rel.verdicts if v["ok"] is False]
    settings = api_settings("redis://127.0.0.1:<port>/0", AUTH_FAILURES_PER_MINUTE, plan.deadline_s)
    triton = f"{facts.get('triton_version', '—')} (embedded CPU, pack `{facts.get('served_pack', '—')}`), started in "
    triton += f"{facts['triton_startup_s']} s"
    settings_text = ", ".join(f"`FACE_API_{k}={v}`" for k, v in settings.items() if k != "REDIS_URL")
    head = f"""# Reliability: load, faults and abuse

Load, crash and abuse figures for the REST API (`face-api serve`) in front of the embedded CPU Triton, with a private
Redis, all on one machine over loopback. Produced by `scripts/reliability.py` (this file is rewritten by each run;
the raw numbers are in `{args.json_shown}`).

## Machine and run

| | |
|---|---|
| CPU | {m["cpu_model"]} |
| cores available | {m["cores"]} (`os.sched_getaffinity`; the machine may be shared) |
| RAM | {m["ram_gib"]} GiB |
| load average at start / at end | {" ".join(m["loadavg_at_start"])} / {" ".join(facts["loadavg_at_end"])} |
| OS | {m["os"]} |
| Python, onnxruntime | {m["python"]}, {m["onnxruntime"]} |
| Triton | {triton} |
| Redis | {facts["redis_version"]}, private: `appendonly yes`, `appendfsync always` |
| API | `face-api serve`, separate process: {settings_text} |
| run | {time.strftime("%Y-%m-%d %H:%M", time.localtime(started))}, {total_s:.0f} s in all |

Command: `{cmd}`

## Verdicts

{"**All verdicts pass.**" if not failed else f"**{len(failed)} verdict(s) FAIL.**"}

{verdict_table(sorted_verdicts(rel.verdicts))}
"""
    body = "\n\n".join(text for _, text in sorted(rel.md.items(), key=lambda kv: section_rank(kv[0])))
    notes = """
## How to read it

- Everything is local: the script, Triton, Redis and the API share the machine's cores, so the load section measures
  the whole machine at saturation (about 35 images/s for the test pack on 2 cores): with many clients, latency is
  queueing. Statuses, hangs and recovery times are the point here, not throughput (see docs/benchmarks.md).
- A crash is a SIGKILL: Triton's process group (server and Python-backend stubs; the shared-memory regions only a
  clean exit removes are unlinked by the script), or redis-server. Restarts reuse the same ports and, for Redis, the
  same append-only file.
- 5xx are expected only where documented (control_plane/README.md): 503 `overloaded` (the in-flight cap) anywhere,
  503 `inference_unavailable`/504 `inference_timeout` and readiness 503 while Triton is down (until the first 200 on a
  miss), 503 `store_unavailable` for usage reports and key creation while Redis is down (until readiness says
  `ready`), and 401 for a key created just before Redis died (never verified by this replica). Anything else counts
  as unexpected.
- Shared-memory regions of a live Triton (`/dev/shm`) hold decoded images by design (tensors between steps); they are
  memory, not disk, and are not part of the disk scan.
"""
    return head + "\n" + body + "\n" + notes


# --------------------------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a ~1 minute smoke run (build/reliability-quick.*)")
    ap.add_argument("--duration", type=float, help="load seconds (default 60; --quick 10)")
    ap.add_argument("--clients", type=int, help="load clients (default 50; --quick 16)")
    ap.add_argument("--outage", type=float, help="seconds each fault lasts (default 10; --quick 4)")
    ap.add_argument(
        "--deadline", type=float, help=f"the API's FACE_API_TRITON_TIMEOUT_S (default {TRITON_TIMEOUT_S:g})"
    )
    ap.add_argument("--out", help="Markdown report (default docs/reliability.md; --quick: build/reliability-quick.md)")
    ap.add_argument("--json", help="raw numbers (default docs/reliability.json; --quick: build/reliability-quick.json)")
    ap.add_argument("--pack", default="test", help="pack manifest for the embedded Triton")
    ap.add_argument("--keep-work", action="store_true", help="keep the run's temporary folder (logs, Redis files)")
    args = ap.parse_args(argv)
    plan = QUICK_PLAN if args.quick else DEFAULT_PLAN
    overrides = {"load_s": args.duration, "load_clients": args.clients, "outage_s": args.outage}
    overrides["deadline_s"] = args.deadline
    plan = Plan(**{**asdict(plan), **{k: v for k, v in overrides.items() if v is not None}})
    if not (1 <= plan.load_s <= 3600 and 1 <= plan.load_clients <= 1000 and 1 <= plan.outage_s <= 120):
        ap.error("--duration 1..3600, --clients 1..1000, --outage 1..120")
    if not 0.1 <= plan.deadline_s <= 120:
        ap.error("--deadline 0.1..120")
    args.plan = plan
    stem = ROOT / ("build/reliability-quick" if args.quick else "docs/reliability")
    args.out = Path(args.out or stem.with_suffix(".md"))
    args.json = Path(args.json or stem.with_suffix(".json"))
    args.json_shown = _shown(args.json)
    return args


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _clean(value):
    """JSON without NaN/inf (null instead)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def main(argv=None) -> int:
    args = parse_args(argv)
    plan = args.plan
    cmd = "python scripts/reliability.py" + "".join(" " + shlex.quote(a) for a in (argv or sys.argv[1:]))
    started, t0 = time.time(), time.monotonic()
    from face_analysis.packs.fetch import pack_dir
    from face_analysis.packs.manifest import load_manifest

    pack = load_manifest(args.pack)
    models_dir = pack_dir(pack, ROOT / "models", ROOT)
    facts: dict = {"machine": machine_info(), "plan": asdict(plan)}
    print(f"load average at start: {' '.join(facts['machine']['loadavg_at_start'])}", flush=True)
    try:
        facts["redis_version"] = (
            subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=10)
            .stdout.split()[2]
            .removeprefix("v=")
        )
    except (OSError, IndexError, subprocess.SubprocessError):
        facts["redis_version"] = "?"
    images = default_images()
    tmp = tempfile.mkdtemp(prefix="face-reliability-")
    work = Path(tmp)
    rel = None
    stack = None
    try:
        (work / "api").mkdir()
        (work / "api-tmp").mkdir()
        s0 = time.monotonic()
        triton = TritonProcess(pack, models_dir, work)
        print(f"starting the embedded Triton (pack {pack.name}), Redis and face-api in {work} ...", flush=True)
        triton.start()
        facts["triton_startup_s"] = round(time.monotonic() - s0, 1)
        facts.update(triton_facts(triton.grpc_url))
        redis = RedisProcess(work / "redis").start()
        stack = Stack(triton, redis, None, work, work / "api", work / "api-tmp")  # type: ignore[arg-type]
        stack.api = start_api(stack, AUTH_FAILURES_PER_MINUTE, plan.deadline_s, "face-api.log")
        rel = Reliability(args, plan, stack, images, t0)
        asyncio.run(rel.run())
    finally:
        if stack is not None:
            for proc in (stack.api, stack.triton, stack.redis):
                if proc is not None:
                    proc.stop()
        elif "triton" in locals():
            triton.stop()
        if args.keep_work:
            print(f"kept {work}", flush=True)
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    total_s = time.monotonic() - t0
    facts["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    md = render(args, plan, facts, rel, total_s, started, cmd)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(md)
    doc = {
        "command": cmd,
        "facts": facts,
        "settings": api_settings("redis://127.0.0.1:<port>/0", AUTH_FAILURES_PER_MINUTE, plan.deadline_s),
        "total_s": round(total_s, 2),
        "verdicts": rel.verdicts,
        **rel.doc,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(_clean(doc), separators=(",", ":"), default=str) + "\n")
    failed = [v for v in rel.verdicts if v["ok"] is False]
    print("\n" + verdict_table(sorted_verdicts(rel.verdicts)))
    print(
        f"\n{len(rel.verdicts)} checks in {total_s:.0f} s, {len(failed)} failed; wrote {_shown(args.out)} and "
        f"{_shown(args.json)}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
