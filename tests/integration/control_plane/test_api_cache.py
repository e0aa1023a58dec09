"""The result cache through the app: a hit answers exactly what the miss did, without calling Triton; replicas
share hits through Redis; what Redis and the disk tier hold is encrypted when a key is configured."""

from __future__ import annotations

import pytest
import redis
from cryptography.fernet import Fernet

from tests.images import t1_path
from tests.redis_helpers import SHARED_URL

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def t1() -> bytes:
    return t1_path().read_bytes()


def count_triton_calls(api) -> list:
    calls = []
    real = api.services.gateway.analyze

    async def spy(*args, **kwargs):
        calls.append(args)
        return await real(*args, **kwargs)

    api.services.gateway.analyze = spy
    return calls


async def test_hit_is_identical_and_skips_triton(api, t1):
    key = await api.new_key()
    calls = count_triton_calls(api)
    form = {"image": ("t1.jpg", t1)}
    miss = await api.client.post(
        "/v1/faces/analyze", files=form, data={"return_embedding": "true"}, headers={"X-API-Key": key}
    )
    hit = await api.client.post(
        "/v1/faces/analyze", files=form, data={"return_embedding": "true"}, headers={"X-API-Key": key}
    )
    assert miss.status_code == hit.status_code == 200
    assert miss.headers["X-Cache"] == "miss" and hit.headers["X-Cache"] == "hit"
    assert hit.headers["X-Cache-Tier"] == "memory"
    assert hit.content == miss.content
    assert len(calls) == 1
    # detect and compare reuse the same cached analysis
    await api.client.post("/v1/faces/detect", files=form, headers={"X-API-Key": key})
    await api.client.post(
        "/v1/faces/compare", files={"image_a": ("a.jpg", t1), "image_b": ("b.jpg", t1)}, headers={"X-API-Key": key}
    )
    assert len(calls) == 1
    # options that change the result are part of the key
    await api.client.post("/v1/faces/detect", files=form, data={"max_faces": "2"}, headers={"X-API-Key": key})
    assert len(calls) == 2
    metrics = (await api.client.get("/metrics")).text
    assert 'face_api_cache_lookups_total{result="hit",tier="memory"}' in metrics


async def test_replicas_share_hits_through_encrypted_redis(make_api, t1):
    secret = Fernet.generate_key().decode()
    a = await make_api(cache_encryption_key=secret)
    b = await make_api(cache_encryption_key=secret, redis_prefix=a.settings.redis_prefix)
    key = await a.new_key()
    miss = await a.client.post(
        "/v1/faces/analyze",
        files={"image": ("t1.jpg", t1)},
        data={"return_embedding": "true"},
        headers={"X-API-Key": key},
    )
    calls = count_triton_calls(b)
    hit = await b.client.post(
        "/v1/faces/analyze",
        files={"image": ("t1.jpg", t1)},
        data={"return_embedding": "true"},
        headers={"X-API-Key": key},
    )
    assert hit.headers["X-Cache"] == "hit" and hit.headers["X-Cache-Tier"] == "redis"
    assert hit.content == miss.content and calls == []
    raw = redis.Redis.from_url(SHARED_URL)
    try:
        names = list(raw.scan_iter(match=a.settings.redis_prefix + "cache:*"))
        assert names, "nothing was cached in Redis"
        for name in names:
            value = raw.get(name)
            assert value.startswith(b"gAAAA")  # a Fernet token, not the plain arrays
            assert raw.ttl(name) > 0
    finally:
        raw.close()


async def test_disk_tier_survives_a_restart_without_redis(make_api, t1, tmp_path):
    secret = "a passphrase for the disk tier"
    first = await make_api(redis_url=None, cache_disk_dir=tmp_path / "cache", cache_encryption_key=secret)
    key = await first.new_key()
    miss = await first.client.post("/v1/faces/detect", files={"image": ("t1.jpg", t1)}, headers={"X-API-Key": key})
    second = await make_api(redis_url=None, cache_disk_dir=tmp_path / "cache", cache_encryption_key=secret)
    key2 = await second.new_key()
    calls = count_triton_calls(second)
    hit = await second.client.post("/v1/faces/detect", files={"image": ("t1.jpg", t1)}, headers={"X-API-Key": key2})
    assert hit.headers["X-Cache-Tier"] == "disk" and hit.content == miss.content and calls == []
    # nothing on disk is an image or plain results
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert t1[:64] not in data and b"FACR" not in data


def test_disk_tier_requires_an_encryption_key(tmp_path):
    from control_plane.core.settings import Settings
    from control_plane.services.container import build_services

    with pytest.raises(ValueError, match="ENCRYPTION_KEY"):
        build_services(Settings(cache_disk_dir=tmp_path))


def _server_timing(response) -> dict[str, float]:
    parts = (p.strip().split(";dur=") for p in response.headers["Server-Timing"].split(","))
    return {name: float(ms) for name, ms in parts}


async def test_server_timing_splits_the_apis_time_from_inference(api):
    key = await api.new_key()
    # a fresh image (a JPEG comment makes new bytes), so the first request is a miss here whatever ran before
    image = t1_path().read_bytes()
    image = image[:2] + b"\xff\xfe\x00\x0aserver-t" + image[2:]
    form = {"image": ("t1.jpg", image)}
    miss = await api.client.post("/v1/faces/analyze", files=form, headers={"X-API-Key": key})
    hit = await api.client.post("/v1/faces/analyze", files=form, headers={"X-API-Key": key})
    assert miss.headers["X-Cache"] == "miss" and hit.headers["X-Cache"] == "hit"
    timing = _server_timing(miss)
    assert 0 < timing["inference"] <= timing["app"]
    assert set(_server_timing(hit)) == {"app"}  # no inference call on a hit
    assert set(_server_timing(await api.client.get("/health"))) == {"app"}
