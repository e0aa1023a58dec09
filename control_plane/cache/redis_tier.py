"""The shared tier: encoded results in Redis, seen by every replica, optionally encrypted.

A Redis failure never reaches the caller: a failed get is a miss, a failed set is skipped, and `SharedRedis`
remembers the outage so that the next calls skip Redis until its retry interval has passed.
"""

from __future__ import annotations

import logging

from control_plane.cache.codec import CacheCodecError
from control_plane.cache.crypto import Encryptor
from control_plane.core.redis import REDIS_ERRORS, SharedRedis

log = logging.getLogger(__name__)


class RedisCache:
    def __init__(self, redis: SharedRedis, prefix: str = "fa:", ttl_s: int = 86400, encryptor: Encryptor | None = None):
        if ttl_s < 1:
            raise ValueError("ttl_s must be at least 1 second: cached results must not live forever in Redis")
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = int(ttl_s)
        self.encryptor = encryptor

    def redis_key(self, key: str) -> str:
        return f"{self.prefix}cache:{key}"

    async def get(self, key: str) -> bytes | None:
        if not self.redis.usable():
            return None
        try:
            raw = await self.redis.client.get(self.redis_key(key))
            self.redis.mark_up()
        except REDIS_ERRORS as exc:
            self.redis.mark_down(exc)
            return None
        if raw is None or self.encryptor is None:
            return raw
        try:
            return self.encryptor.decrypt(raw)
        except CacheCodecError:
            # Written with another key (rotation, misconfigured replica) or corrupt: a miss, overwritten on the set.
            log.warning("undecryptable cache entry in redis, treated as a miss", extra={"event": "cache_undecryptable"})
            return None

    async def set(self, key: str, value: bytes) -> None:
        if not self.redis.usable():
            return
        data = self.encryptor.encrypt(value) if self.encryptor is not None else value
        try:
            await self.redis.client.set(self.redis_key(key), data, ex=self.ttl_s)
            self.redis.mark_up()
        except REDIS_ERRORS as exc:
            self.redis.mark_down(exc)
