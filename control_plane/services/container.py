"""Everything one app instance holds, built from the settings (the composition root's one job)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from control_plane.cache.crypto import Encryptor
from control_plane.cache.disk import DiskCache
from control_plane.cache.memory import MemoryCache
from control_plane.cache.redis_tier import RedisCache
from control_plane.cache.tiered import TieredCache
from control_plane.core.metrics import Metrics
from control_plane.core.redis import SharedRedis
from control_plane.core.settings import Settings
from control_plane.inference.gateway import InferenceGateway
from control_plane.security.api_keys import KeyStore
from control_plane.security.rate_limit import RateLimiter
from control_plane.security.usage import UsageRecorder
from control_plane.services.faces import FaceService

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    metrics: Metrics
    redis: SharedRedis
    gateway: InferenceGateway
    cache: TieredCache
    keys: KeyStore
    limiter: RateLimiter
    usage: UsageRecorder
    faces: FaceService

    async def start(self) -> None:
        s = self.settings
        if not self.redis.configured:
            log.warning(
                "no FACE_API_REDIS_URL: API keys, rate limits, usage and the cache live in this process only",
                extra={"event": "memory_mode"},
            )
        elif not await self.redis.ping():
            log.warning("redis at %s does not answer; serving degraded", s.redis_url, extra={"event": "redis_down"})
        self.metrics.redis_up.set(1 if self.redis.available else 0)
        await self.gateway.start()

    async def close(self) -> None:
        await self.usage.flush()
        await self.gateway.close()
        await self.cache.close()
        await self.redis.close()


def build_services(settings: Settings, metrics: Metrics | None = None, gateway: InferenceGateway | None = None):
    metrics = metrics or Metrics()
    redis = SharedRedis(settings.redis_url, socket_timeout_s=settings.redis_timeout_s)
    encryptor = Encryptor.from_secret(
        settings.cache_encryption_key.get_secret_value() if settings.cache_encryption_key else None
    )
    disk = None
    if settings.cache_disk_dir is not None:
        if encryptor is None:
            raise ValueError("FACE_API_CACHE_DISK_DIR needs FACE_API_CACHE_ENCRYPTION_KEY: embeddings are biometric")
        disk = DiskCache(settings.cache_disk_dir, encryptor, settings.cache_disk_ttl_s, settings.cache_disk_max_mb)
    cache = TieredCache(
        MemoryCache(settings.cache_memory_items, settings.cache_ttl_s),
        RedisCache(redis, settings.redis_prefix, settings.cache_ttl_s, encryptor) if redis.configured else None,
        disk,
        on_lookup=metrics.cache_lookup,
    )
    gateway = gateway or InferenceGateway(settings, metrics)
    return Services(
        settings=settings,
        metrics=metrics,
        redis=redis,
        gateway=gateway,
        cache=cache,
        keys=KeyStore(redis, settings.redis_prefix),
        limiter=RateLimiter(redis, settings.redis_prefix),
        usage=UsageRecorder(redis, settings.redis_prefix),
        faces=FaceService(gateway, cache, metrics),
    )
