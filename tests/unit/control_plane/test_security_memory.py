"""Keys, rate limits and usage without Redis: everything in process memory, same behaviour."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from control_plane.core.redis import SharedRedis
from control_plane.security import api_keys
from control_plane.security.api_keys import SCOPES, ApiKey, KeyStore
from control_plane.security.rate_limit import RateLimiter
from control_plane.security.usage import UsageRecorder

NO_REDIS = SharedRedis(None)


async def test_create_authenticate_revoke_list():
    store = KeyStore(NO_REDIS)
    secret, key = await store.create("  ci bot ", ["compare", "detect"], "free")
    assert secret.startswith("fa_") and len(secret) == 46
    assert len(key.id) == 12 and int(key.id, 16) >= 0
    assert key.name == "ci bot" and key.scopes == ("detect", "compare") and key.tier == "free"
    assert secret not in repr(key) and hashlib.sha256(secret.encode()).hexdigest() not in repr(key)

    got = await store.authenticate(secret)
    assert got is not None and got.id == key.id and got.last_used_at is not None
    _, other = await store.create("other", SCOPES, "premium")
    assert [k.id for k in await store.list()] == [key.id, other.id]
    assert (await store.get(key.id)).name == "ci bot"
    assert await store.get("000000000000") is None

    assert await store.revoke(key.id) is True
    assert await store.authenticate(secret) is None
    revoked = await store.get(key.id)
    assert revoked.revoked_at is not None and revoked.public()["revoked"] is True
    assert await store.revoke(key.id) is True and (await store.get(key.id)).revoked_at == revoked.revoked_at
    assert await store.revoke("nope") is False
    assert len(await store.list()) == 2  # kept for audit


async def test_wrong_and_malformed_secrets():
    store = KeyStore(NO_REDIS)
    secret, _ = await store.create("k", ["detect"], "free")
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for bad in (flipped, "", "fa_", secret + "x", secret[3:], "Bearer " + secret, None, 12, "fa_" + "é" * 43):
        assert await store.authenticate(bad) is None


@pytest.mark.parametrize(
    "name,scopes", [("", ["detect"]), ("   ", ["detect"]), ("k", []), ("k", ["detect", "delete"]), ("k", ["ADMIN"])]
)
async def test_create_validation(name, scopes):
    with pytest.raises(ValueError):
        await KeyStore(NO_REDIS).create(name, scopes, "free")


async def test_last_used_is_throttled(monkeypatch):
    now = [1_700_000_000.0]
    monkeypatch.setattr(api_keys.time, "time", lambda: now[0])
    store = KeyStore(NO_REDIS, touch_interval_s=60)
    secret, key = await store.create("k", ["detect"], "free")
    assert key.last_used_at is None
    assert (await store.authenticate(secret)).last_used_at == now[0]
    first = now[0]
    now[0] += 59
    assert (await store.authenticate(secret)).last_used_at == first
    now[0] += 1
    assert (await store.authenticate(secret)).last_used_at == first + 60
    assert (await store.get(key.id)).last_used_at == first + 60


def test_public_is_json_ready():
    key = ApiKey("0123456789ab", "n", ("detect",), "free", 0.0, 86400.5, None)
    assert key.public() == {
        "id": "0123456789ab",
        "name": "n",
        "scopes": ["detect"],
        "tier": "free",
        "created_at": "1970-01-01T00:00:00+00:00",
        "last_used_at": "1970-01-02T00:00:00.500000+00:00",
        "revoked_at": None,
        "revoked": False,
    }


async def test_rate_limiter_in_memory():
    limiter = RateLimiter(NO_REDIS)
    ds = [await limiter.hit("key:a", burst=3, per_minute=0.01) for _ in range(5)]
    assert [d.allowed for d in ds] == [True, True, True, False, False]
    assert (await limiter.hit("authfail:10.0.0.1", burst=3, per_minute=0.01)).allowed  # buckets are independent
    assert not (await limiter.hit("key:b", burst=3, per_minute=60, cost=4)).allowed
    with pytest.raises(ValueError):
        await limiter.hit("key:c", burst=3, per_minute=60, cost=0)


async def test_usage_report_in_memory():
    usage = UsageRecorder(NO_REDIS)
    today = dt.datetime.now(dt.timezone.utc).date()
    yesterday = today - dt.timedelta(days=1)
    await usage.record("k1", "/v1/detect", 1, 3)
    await usage.record("k1", "/v1/detect", 1, 0)
    await usage.record("k1", "/v1/batch", 4, 7)
    await usage.record("k1", "/v1/detect", 2, 2, day=yesterday)
    await usage.record("k1", "/v1/detect", 1, 1, day=today - dt.timedelta(days=40))
    await usage.record("k2", "/v1/detect", 1, 1)
    assert await usage.report("k1") == [
        {"date": yesterday.isoformat(), "route": "/v1/detect", "requests": 1, "images": 2, "faces": 2},
        {"date": today.isoformat(), "route": "/v1/batch", "requests": 1, "images": 4, "faces": 7},
        {"date": today.isoformat(), "route": "/v1/detect", "requests": 2, "images": 2, "faces": 3},
    ]
    assert len(await usage.report("k1", days=1)) == 2
    assert len(await usage.report("k1", days=41)) == 4
    assert await usage.report("nobody") == []
    assert await usage.flush() is True
