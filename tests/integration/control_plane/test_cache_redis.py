"""The Redis tier against a real Redis: the machine's server (namespaced per test) and a private one for outages."""

from __future__ import annotations

import time

import pytest
import redis
from cryptography.fernet import Fernet

from control_plane.cache.crypto import Encryptor
from control_plane.cache.memory import MemoryCache
from control_plane.cache.redis_tier import RedisCache
from control_plane.cache.tiered import TieredCache
from control_plane.core.redis import SharedRedis
from tests.redis_helpers import SHARED_URL, RedisProcess, delete_prefix, unique_prefix

pytestmark = pytest.mark.integration

PLAINTEXT = b"EMBEDDING-PLAINTEXT-MARKER" + bytes(range(256)) * 8


@pytest.fixture
def prefix():
    value = unique_prefix()
    yield value
    delete_prefix(SHARED_URL, value)


@pytest.fixture
def sync_redis():
    client = redis.Redis.from_url(SHARED_URL)
    yield client
    client.close()


def new_encryptor() -> Encryptor:
    return Encryptor.from_secret(Fernet.generate_key().decode())


async def test_round_trip_with_ttl(prefix, sync_redis):
    shared = SharedRedis(SHARED_URL)
    cache = RedisCache(shared, prefix=prefix, ttl_s=120)
    assert await cache.get("k") is None
    await cache.set("k", PLAINTEXT)
    assert await cache.get("k") == PLAINTEXT
    assert sync_redis.get(f"{prefix}cache:k") == PLAINTEXT  # no encryptor: stored as is
    assert 100 < sync_redis.ttl(f"{prefix}cache:k") <= 120
    await shared.close()


async def test_values_are_encrypted_and_another_key_misses(prefix, sync_redis):
    shared = SharedRedis(SHARED_URL)
    cache = RedisCache(shared, prefix=prefix, ttl_s=60, encryptor=new_encryptor())
    await cache.set("k", PLAINTEXT)
    assert await cache.get("k") == PLAINTEXT
    raw = sync_redis.get(f"{prefix}cache:k")
    assert raw is not None and b"EMBEDDING-PLAINTEXT" not in raw
    assert 0 < sync_redis.ttl(f"{prefix}cache:k") <= 60

    other = RedisCache(shared, prefix=prefix, ttl_s=60, encryptor=new_encryptor())
    assert await other.get("k") is None
    plain = RedisCache(shared, prefix=prefix, ttl_s=60)  # an unencrypted reader gets the token, never the plaintext
    assert b"EMBEDDING-PLAINTEXT" not in await plain.get("k")
    assert shared.available  # a bad value is not a Redis outage
    await shared.close()


async def test_another_replica_hits_in_redis(prefix):
    encryptor = new_encryptor()
    shared_a, shared_b = SharedRedis(SHARED_URL), SharedRedis(SHARED_URL)
    a = TieredCache(MemoryCache(100, 60), RedisCache(shared_a, prefix=prefix, ttl_s=60, encryptor=encryptor))
    lookups: list[tuple[str, bool]] = []
    b = TieredCache(
        MemoryCache(100, 60),
        RedisCache(shared_b, prefix=prefix, ttl_s=60, encryptor=encryptor),
        on_lookup=lambda tier, hit: lookups.append((tier, hit)),
    )
    await a.set("k", PLAINTEXT)
    assert await a.get("k") == (PLAINTEXT, "memory")
    assert await b.get("k") == (PLAINTEXT, "redis")
    assert lookups == [("memory", False), ("redis", True)]
    assert await b.get("k") == (PLAINTEXT, "memory")  # promoted into b's own memory tier
    assert await b.get("missing") == (None, None)
    assert lookups[-2:] == [("memory", False), ("redis", False)]
    for cache, shared in ((a, shared_a), (b, shared_b)):
        await cache.close()
        await shared.close()


async def test_outage_is_a_miss_and_recovery_resumes_writes():
    with RedisProcess() as server:
        shared = SharedRedis(server.url, retry_interval_s=0)
        tier = RedisCache(shared, prefix="fa:", ttl_s=60, encryptor=new_encryptor())
        cache = TieredCache(MemoryCache(100, 60), tier)
        await cache.set("before", b"value-before")
        assert await tier.get("before") == b"value-before"

        server.stop()
        started = time.monotonic()
        assert await tier.get("before") is None  # Redis down: a miss, not an error
        await cache.set("during", b"value-during")  # the write to Redis is skipped, not raised
        assert await cache.get("before") == (b"value-before", "memory")  # memory keeps serving
        assert await cache.get("during") == (b"value-during", "memory")
        assert await cache.get("absent") == (None, None)
        assert time.monotonic() - started < 2.0
        assert not shared.available and shared.last_error

        server.start()  # same port, empty
        await cache.set("after", b"value-after")
        assert shared.available
        check = redis.Redis(port=server.port)
        try:
            assert check.exists("fa:cache:after") == 1
            assert check.ttl("fa:cache:after") > 0
        finally:
            check.close()
        fresh = TieredCache(MemoryCache(100, 60), tier)
        assert await fresh.get("after") == (b"value-after", "redis")
        await cache.close()
        await shared.close()
