"""Keys, rate limits and usage against a real Redis: the machine's server (namespaced per test) and, for outage
drills, a private redis-server that the test stops and restarts."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import redis

from control_plane.core.redis import SharedRedis
from control_plane.security.api_keys import KeyStore, KeyStoreUnavailable
from control_plane.security.rate_limit import US, RateLimiter, gcra, interval_us
from control_plane.security.usage import UsageRecorder, UsageUnavailable
from tests.redis_helpers import SHARED_URL, RedisProcess, delete_prefix, unique_prefix

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix():
    p = unique_prefix()
    yield p
    delete_prefix(SHARED_URL, p)


async def test_keys_shared_between_instances(prefix):
    a, b = SharedRedis(SHARED_URL), SharedRedis(SHARED_URL)
    try:
        store_a, store_b = KeyStore(a, prefix), KeyStore(b, prefix)
        secret, key = await store_a.create("ci", ["detect", "batch"], "free")
        raw = redis.Redis.from_url(SHARED_URL)
        stored = raw.hgetall(f"{prefix}key:{key.id}")
        assert secret.encode() not in b"".join(stored.values())  # only the hash is stored
        assert raw.get(f"{prefix}keyhash:{stored[b'hash'].decode()}") == key.id.encode()
        raw.close()

        got = await store_b.authenticate(secret)  # visible from a second instance
        assert got is not None and got.scopes == ("detect", "batch") and got.last_used_at is not None
        assert (await store_a.get(key.id)).last_used_at == got.last_used_at
        _, other = await store_b.create("other", ["admin"], "premium")
        assert [k.id for k in await store_a.list()] == [key.id, other.id]
        assert await store_b.authenticate(secret[:-1] + ("x" if secret[-1] != "x" else "y")) is None

        assert await store_a.revoke(key.id) is True
        assert await store_b.authenticate(secret) is None  # at once, on the other replica too
        assert (await store_b.get(key.id)).revoked_at is not None
        assert await store_b.revoke("000000000000") is False
        assert len(await store_b.list()) == 2
        assert a.available and b.available
    finally:
        await a.close()
        await b.close()


async def test_last_used_written_once_per_interval(prefix):
    shared = SharedRedis(SHARED_URL)
    try:
        store = KeyStore(shared, prefix, touch_interval_s=3600)
        secret, key = await store.create("k", ["detect"], "free")
        first = (await store.authenticate(secret)).last_used_at
        for _ in range(3):
            assert (await store.authenticate(secret)).last_used_at == first
        assert (await store.get(key.id)).last_used_at == first
    finally:
        await shared.close()


async def test_lua_limiter_exact_at_boundary(prefix):
    shared = SharedRedis(SHARED_URL)
    try:
        limiter = RateLimiter(shared, prefix)
        ds = [await limiter.hit("key:a", burst=5, per_minute=0.001) for _ in range(10)]
        assert [d.allowed for d in ds] == [True] * 5 + [False] * 5
        assert [d.remaining for d in ds] == [4, 3, 2, 1, 0, 0, 0, 0, 0, 0]
        assert ds[5].retry_after_s > 3600 and ds[5].headers()["Retry-After"]
        ttl = redis.Redis.from_url(SHARED_URL).pttl(f"{prefix}rl:key:a")
        assert 0 < ttl <= ds[4].reset_s * 1000 + 1
        over = await limiter.hit("key:b", burst=5, per_minute=60, cost=6)
        assert not over.allowed and over.retry_after_s == float("inf")
        assert shared.available
    finally:
        await shared.close()


async def test_two_limiters_share_a_bucket_concurrently(prefix):
    a, b = SharedRedis(SHARED_URL), SharedRedis(SHARED_URL)
    try:
        la, lb = RateLimiter(a, prefix), RateLimiter(b, prefix)
        n = 7
        calls = [(la if i % 2 else lb).hit("authfail:10.1.2.3", burst=n, per_minute=0.001) for i in range(n + 5)]
        ds = await asyncio.gather(*calls)
        assert sum(d.allowed for d in ds) == n
        assert sorted(d.remaining for d in ds if d.allowed) == list(range(n))
        assert a.available and b.available  # really served by Redis, not the in-process twins
    finally:
        await a.close()
        await b.close()


async def test_lua_agrees_with_python(prefix):
    shared = SharedRedis(SHARED_URL)
    try:
        limiter = RateLimiter(shared, prefix)
        burst, per_minute = 6, 7.0
        interval = interval_us(per_minute)
        t0 = 1_700_000_000 * US
        offsets = [0, 0, 1, 5, 5, 5, 5, 9, 100_000, 8_571_428, 8_571_429, 8_571_430, 30 * US, 30 * US, 200 * US]
        costs = [1, 2, 1, 1, 2, 3, 7, 1, 1, 1, 1, 1, 4, 3, 6]
        tat = None
        for off, cost in zip(offsets, costs):
            lua = await limiter._hit_redis("agree", burst, interval, cost, now_us=t0 + off)
            new_tat, py = gcra(tat, t0 + off, burst, interval, cost)
            tat = new_tat if new_tat is not None else tat
            assert lua == py, (off, cost)
        # and on the real clocks: same decisions for the same sequence when no refill happens meanwhile
        python_twin = RateLimiter(SharedRedis(None))
        for cost in (1, 3, 2, 1, 1, 5):
            lua = await limiter.hit("agree-clock", 5, 0.001, cost)
            py = await python_twin.hit("agree-clock", 5, 0.001, cost)
            assert (lua.allowed, lua.remaining) == (py.allowed, py.remaining)
            assert lua.reset_s == pytest.approx(py.reset_s, abs=1.0)
    finally:
        await shared.close()


async def test_usage_in_redis(prefix):
    shared = SharedRedis(SHARED_URL)
    try:
        usage = UsageRecorder(shared, prefix, retention_days=10)
        today = dt.datetime.now(dt.timezone.utc).date()
        await usage.record("k1", "/v1/detect", 1, 3)
        await usage.record("k1", "/v1/detect", 1, 1)
        await usage.record("k1", "/v1/batch", 5, 9, day=today - dt.timedelta(days=2))
        raw = redis.Redis.from_url(SHARED_URL)
        name = f"{prefix}usage:k1:{today.isoformat()}"
        assert raw.hgetall(name) == {
            b"/v1/detect|requests": b"2",
            b"/v1/detect|images": b"2",
            b"/v1/detect|faces": b"4",
        }
        assert 9 * 86400 < raw.ttl(name) <= 10 * 86400
        raw.close()
        other = UsageRecorder(SharedRedis(SHARED_URL), prefix)  # another replica reads the same counters
        assert await other.report("k1", days=3) == [
            {"date": (today - dt.timedelta(days=2)).isoformat(), "route": "/v1/batch", "requests": 1, "images": 5,
             "faces": 9},
            {"date": today.isoformat(), "route": "/v1/detect", "requests": 2, "images": 2, "faces": 4},
        ]  # fmt: skip
        await other.redis.close()
    finally:
        await shared.close()


async def test_outage_drill_keys():
    with RedisProcess() as proc:
        shared = SharedRedis(proc.url, retry_interval_s=0, socket_timeout_s=0.3)
        try:
            store = KeyStore(shared, local_ttl_s=300)
            secret, key = await store.create("k", ["detect"], "free")
            never_seen, _ = await store.create("k2", ["detect"], "free")
            assert (await store.authenticate(secret)).id == key.id
            proc.stop()
            assert (await store.authenticate(secret)).id == key.id  # known keys keep working
            assert not shared.available
            assert await store.authenticate(never_seen) is None  # not verified here before the outage
            assert await store.authenticate("fa_" + "A" * 43) is None
            for change in (
                store.create("k3", ["detect"], "free"),
                store.revoke(key.id),
                store.list(),
                store.get(key.id),
            ):
                with pytest.raises(KeyStoreUnavailable):
                    await change
            store.local_ttl_s = 0  # the local cache ages out: then even known keys are refused
            assert await store.authenticate(secret) is None
        finally:
            await shared.close()


async def test_outage_drill_limiter_and_usage():
    with RedisProcess() as proc:
        shared = SharedRedis(proc.url, retry_interval_s=0, socket_timeout_s=0.3)
        try:
            limiter, usage = RateLimiter(shared), UsageRecorder(shared)
            assert (await limiter.hit("key:a", 3, 0.001)).allowed
            await usage.record("k1", "/v1/detect", 1, 1)

            proc.stop()
            ds = [await limiter.hit("key:a", 3, 0.001) for _ in range(5)]  # limited in memory meanwhile
            assert [d.allowed for d in ds] == [True] * 3 + [False] * 2
            await usage.record("k1", "/v1/detect", 2, 5)
            await usage.record("k1", "/v1/compare", 2, 2)
            assert not shared.available
            assert await usage.flush() is False
            with pytest.raises(UsageUnavailable):
                await usage.report("k1")

            proc.start()  # back, but empty
            assert await usage.flush() is True
            raw = redis.Redis(port=proc.port)
            name = f"fa:usage:k1:{dt.datetime.now(dt.timezone.utc).date().isoformat()}"
            assert raw.hgetall(name) == {
                b"/v1/detect|requests": b"1",
                b"/v1/detect|images": b"2",
                b"/v1/detect|faces": b"5",
                b"/v1/compare|requests": b"1",
                b"/v1/compare|images": b"2",
                b"/v1/compare|faces": b"2",
            }
            raw.close()
            rows = await usage.report("k1")
            assert [(r["route"], r["requests"]) for r in rows] == [("/v1/compare", 1), ("/v1/detect", 1)]
            # the script cache was lost with the restart: EVALSHA reloads it
            assert [(await limiter.hit("key:z", 2, 0.001)).allowed for _ in range(3)] == [True, True, False]
            assert shared.available
        finally:
            await shared.close()


async def test_usage_pending_flushed_by_next_record():
    with RedisProcess() as proc:
        shared = SharedRedis(proc.url, retry_interval_s=0, socket_timeout_s=0.3)
        try:
            usage = UsageRecorder(shared)
            proc.stop()
            await usage.record("k1", "/v1/detect", 1, 1)
            proc.start()
            await usage.record("k1", "/v1/detect", 1, 1)  # carries the pending count along
            raw = redis.Redis(port=proc.port)
            name = f"fa:usage:k1:{dt.datetime.now(dt.timezone.utc).date().isoformat()}"
            assert raw.hget(name, "/v1/detect|requests") == b"2"
            raw.close()
        finally:
            await shared.close()


async def test_pooled_connections_survive_a_redis_restart():
    """After a restart every pooled connection is stale; each command retries once on a fresh one instead of
    failing and marking a healthy Redis down."""
    with RedisProcess() as server:
        shared = SharedRedis(server.url)
        store = KeyStore(shared, "restart:")
        try:
            await asyncio.gather(*(shared.client.ping() for _ in range(8)))  # eight pooled connections
            server.stop()
            server.start()
            created = await asyncio.gather(*(store.create(f"k{i}", ["detect"], "standard") for i in range(8)))
            assert len({key.id for _, key in created}) == 8
            assert shared.available and shared.last_error is None
        finally:
            await shared.close()
