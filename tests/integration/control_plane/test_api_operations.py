"""Health, readiness and the Prometheus metrics a dashboard and the alerts read."""

from __future__ import annotations

import pytest

from tests.images import t1_path

pytestmark = pytest.mark.integration


async def test_liveness_and_readiness(api):
    assert (await api.client.get("/health")).json() == {"status": "ok"}
    r = await api.client.get("/health/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert body["checks"]["triton"]["primary"] == {
        "ready": True,
        "breaker": "closed",
        "pack": "test",
        "url": api.settings.triton_url,
    }
    assert body["checks"]["redis"] == {"configured": True, "up": True}


async def test_readiness_without_redis_is_ready(make_api):
    api = await make_api(redis_url=None)
    body = (await api.client.get("/health/ready")).json()
    assert body["status"] == "ready" and body["checks"]["redis"] == {"configured": False, "up": None}


async def test_metrics_cover_requests_triton_faces_and_similarity(api):
    key = await api.new_key()
    t1 = t1_path().read_bytes()
    h = {"X-API-Key": key}
    await api.client.post("/v1/faces/compare", files={"image_a": ("a.jpg", t1), "image_b": ("b.jpg", t1)}, headers=h)
    await api.client.post("/v1/faces/detect", files={"image": ("a.jpg", t1)})  # 401
    text = (await api.client.get("/metrics")).text
    for needle in (
        'face_api_request_duration_seconds_bucket{le="0.1",method="POST",route="/v1/faces/compare",status="200"}',
        'face_api_request_duration_seconds_count{method="POST",route="/v1/faces/detect",status="401"} 1.0',
        'face_api_triton_request_duration_seconds_count{outcome="ok",target="primary"} 1.0',
        "face_api_faces_per_image_sum 12.0",
        'face_api_images_total{outcome="faces"} 2.0',
        "face_api_similarity_count 1.0",
        'face_api_auth_failures_total{reason="missing"} 1.0',
        'face_api_circuit_breaker_state{target="primary"} 0.0',
        "process_resident_memory_bytes",
        "face_api_redis_up",
    ):
        assert needle in text, needle
