"""The optional shared Redis and whether it answers right now.

Every component that keeps shared state (keys, rate limits, cache, usage) takes a `SharedRedis`. When Redis is not
configured, or stops answering, the component falls back to its in-process twin; `SharedRedis` remembers a failure
for `retry_interval_s` so that a dead Redis costs one short timeout per interval, not one per request.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# What a component catches around a Redis call before falling back (connection refused, timeouts, OOM...).
REDIS_ERRORS = (RedisError, OSError)


class SharedRedis:
    def __init__(
        self,
        url: str | None,
        *,
        socket_timeout_s: float = 0.5,
        retry_interval_s: float = 1.0,
        client: aioredis.Redis | None = None,
    ):
        self.url = url
        self.retry_interval_s = retry_interval_s
        self.client: aioredis.Redis | None = client
        if self.client is None and url:
            self.client = aioredis.Redis.from_url(
                url,
                socket_timeout=socket_timeout_s,
                socket_connect_timeout=socket_timeout_s,
                health_check_interval=30,
                # After a Redis restart every pooled connection is stale and fails once ("Connection closed by
                # server"): retry such a command once, at once, on a fresh connection instead of failing the request
                # and marking a healthy Redis down. Timeouts are not retried: they already cost socket_timeout_s.
                retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
            )
        self._down_since: float | None = None
        self.last_error: str | None = None

    @property
    def configured(self) -> bool:
        return self.client is not None

    @property
    def available(self) -> bool:
        """Configured and not known to be down (the state readiness reports)."""
        return self.configured and self._down_since is None

    def usable(self) -> bool:
        """Worth trying now: configured and either up or due for a retry after a failure."""
        if self.client is None:
            return False
        if self._down_since is None:
            return True
        return time.monotonic() - self._down_since >= self.retry_interval_s

    def mark_up(self) -> None:
        if self._down_since is not None:
            log.warning("redis is reachable again", extra={"event": "redis_up"})
        self._down_since = None
        self.last_error = None

    def mark_down(self, exc: BaseException) -> None:
        if self._down_since is None:
            log.warning("redis unreachable, serving from in-process state: %s", exc, extra={"event": "redis_down"})
        self._down_since = time.monotonic()
        self.last_error = f"{type(exc).__name__}: {exc}"

    async def ping(self) -> bool:
        if self.client is None:
            return False
        try:
            await self.client.ping()
        except REDIS_ERRORS as exc:
            self.mark_down(exc)
            return False
        self.mark_up()
        return True

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
