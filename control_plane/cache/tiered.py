"""The cache the API uses: memory, then Redis, then local disk, each optional but memory.

A hit in a lower tier is copied into the tiers above it so that the next lookup is cheaper; a set writes every
tier. `on_lookup(tier, hit)` is called once per tier consulted (for hit/miss counters); a configured Redis that is
down counts as a miss, since that is what the caller got.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from control_plane.cache.disk import DiskCache
from control_plane.cache.memory import MemoryCache
from control_plane.cache.redis_tier import RedisCache


class TieredCache:
    def __init__(
        self,
        memory: MemoryCache,
        redis: RedisCache | None = None,
        disk: DiskCache | None = None,
        on_lookup: Callable[[str, bool], None] | None = None,
    ):
        self.memory = memory
        self.redis = redis
        self.disk = disk
        self.on_lookup = on_lookup

    def _record(self, tier: str, hit: bool) -> None:
        if self.on_lookup is not None:
            self.on_lookup(tier, hit)

    async def get(self, key: str) -> tuple[bytes | None, str | None]:
        """The cached value and the tier that answered ("memory", "redis", "disk"), or (None, None)."""
        if self.memory.enabled:
            value = self.memory.get(key)
            self._record("memory", value is not None)
            if value is not None:
                return value, "memory"
        if self.redis is not None:
            value = await self.redis.get(key)
            self._record("redis", value is not None)
            if value is not None:
                self.memory.set(key, value)
                return value, "redis"
        if self.disk is not None:
            value = await self.disk.get(key)
            self._record("disk", value is not None)
            if value is not None:
                self.memory.set(key, value)
                if self.redis is not None:
                    await self.redis.set(key, value)
                return value, "disk"
        return None, None

    async def set(self, key: str, value: bytes) -> None:
        self.memory.set(key, value)
        writes = [tier.set(key, value) for tier in (self.redis, self.disk) if tier is not None]
        if writes:
            await asyncio.gather(*writes)

    async def close(self) -> None:
        """Closes the disk tier; the SharedRedis belongs to the app, which closes it."""
        if self.disk is not None:
            self.disk.close()
