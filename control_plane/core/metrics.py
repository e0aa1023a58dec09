"""Prometheus metrics of one app instance, in their own registry (so several apps can live in one process).

Latency histograms give p50/p95/p99 through `histogram_quantile`; the buckets span the cache-hit path (~1 ms) to
Triton deadlines (~10 s).
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10, 30)
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        ProcessCollector(registry=r)  # process_resident_memory_bytes, cpu seconds, open fds
        self.requests = Histogram(
            "face_api_request_duration_seconds",
            "HTTP request latency by route template, method and status",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.triton = Histogram(
            "face_api_triton_request_duration_seconds",
            "Latency of calls to the face_analysis ensemble by target and outcome",
            ["target", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.faces_per_image = Histogram(
            "face_api_faces_per_image",
            "Faces found per analysed image",
            buckets=(0, 1, 2, 3, 5, 10, 20, 50, 100, 200),
            registry=r,
        )
        self.detections = Counter(
            "face_api_images_total", "Analysed images by outcome (faces found or none)", ["outcome"], registry=r
        )
        self.similarity = Histogram(
            "face_api_similarity",
            "Cosine similarity of compared faces",
            buckets=tuple(round(x * 0.1, 1) for x in range(-10, 11)),
            registry=r,
        )
        self.cache = Counter(
            "face_api_cache_lookups_total", "Cache lookups by tier and result", ["tier", "result"], registry=r
        )
        self.rate_limited = Counter(
            "face_api_rate_limited_total", "Requests refused by a rate limit", ["tier"], registry=r
        )
        self.auth_failures = Counter(
            "face_api_auth_failures_total", "Refused credentials by reason", ["reason"], registry=r
        )
        self.breaker = Gauge(
            "face_api_circuit_breaker_state",
            "Breaker per Triton target: 0 closed, 1 half-open, 2 open",
            ["target"],
            registry=r,
        )
        self.in_flight = Gauge("face_api_inference_in_flight", "Ensemble calls in flight", registry=r)
        self.redis_up = Gauge("face_api_redis_up", "1 when the shared Redis answers, 0 otherwise", registry=r)

    def cache_lookup(self, tier: str, hit: bool) -> None:
        self.cache.labels(tier, "hit" if hit else "miss").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
