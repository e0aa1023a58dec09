"""Failure drills on real parts: the Triton process stopped and restarted, a Redis server stopped and restarted."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from tests.images import encode, t1_path
from tests.redis_helpers import RedisProcess

pytestmark = pytest.mark.integration


def image(seed: int) -> bytes:
    """A distinct valid image per call, so nothing is answered from the cache by accident."""
    return encode(np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8), ".png")


async def test_triton_down_breaker_cache_and_recovery(make_api, own_triton):
    api = await make_api(triton_url=own_triton.grpc_url, triton_timeout_s=2.0, breaker_failures=2, breaker_reset_s=1.0)
    key = await api.new_key()
    h = {"X-API-Key": key}
    t1 = t1_path().read_bytes()
    assert (await api.client.post("/v1/faces/detect", files={"image": ("t1.jpg", t1)}, headers=h)).status_code == 200

    own_triton.stop()
    for attempt in range(2):  # the failures that open the breaker, each answered within the deadline
        start = time.monotonic()
        r = await api.client.post("/v1/faces/detect", files={"image": ("x.png", image(attempt))}, headers=h)
        assert r.status_code == 503, r.text
        assert time.monotonic() - start < 2.5
        assert r.json()["error"]["code"] == "inference_unavailable"
        assert int(r.headers["Retry-After"]) >= 1
    start = time.monotonic()
    r = await api.client.post("/v1/faces/detect", files={"image": ("x.png", image(9))}, headers=h)
    assert r.status_code == 503 and time.monotonic() - start < 0.2  # open breaker: answered at once
    assert "circuit open" in r.json()["error"]["message"]
    # cached answers are still served
    r = await api.client.post("/v1/faces/detect", files={"image": ("t1.jpg", t1)}, headers=h)
    assert r.status_code == 200 and r.headers["X-Cache"] == "hit" and r.json()["face_count"] == 6
    ready = await api.client.get("/health/ready")
    assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
    assert ready.json()["checks"]["triton"]["primary"]["breaker"] == "open"
    assert 'face_api_circuit_breaker_state{target="primary"} 2.0' in (await api.client.get("/metrics")).text
    assert (await api.client.get("/health")).status_code == 200  # alive all along

    own_triton.start()
    back = time.monotonic()
    while True:
        r = await api.client.post("/v1/faces/detect", files={"image": ("x.png", image(10))}, headers=h)
        if r.status_code == 200:
            break
        assert time.monotonic() - back < 10, r.text
        await asyncio.sleep(0.2)
    assert (await api.client.get("/health/ready")).json()["status"] == "ready"


async def test_redis_down_degraded_but_serving(make_api):
    with RedisProcess() as redis_server:
        api = await make_api(redis_url=redis_server.url)
        key = await api.new_key()
        h = {"X-API-Key": key}
        assert (
            await api.client.post("/v1/faces/detect", files={"image": ("a.png", image(1))}, headers=h)
        ).status_code == 200
        redis_server.stop()
        start = time.monotonic()
        r = await api.client.post("/v1/faces/detect", files={"image": ("b.png", image(2))}, headers=h)
        assert r.status_code == 200, r.text  # the key verified before the outage keeps working
        assert "RateLimit-Remaining" in r.headers  # limits go on, in process
        assert time.monotonic() - start < 3
        ready = await api.client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded" and ready.json()["checks"]["redis"]["up"] is False
        # writes that must not split between replicas are refused clearly
        r = await api.client.post(
            "/v1/admin/keys", json={"name": "new"}, headers={"X-API-Key": "admin-token-for-tests"}
        )
        assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable"

        redis_server.start()  # back, empty (an in-memory Redis that crashed)
        await asyncio.sleep(1.1)  # past the retry interval
        ready = await api.client.get("/health/ready")
        assert ready.json()["status"] == "ready"
        r = await api.client.post(
            "/v1/admin/keys", json={"name": "new"}, headers={"X-API-Key": "admin-token-for-tests"}
        )
        assert r.status_code == 201
