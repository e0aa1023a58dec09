"""Real Redis for tests: the machine's server on 127.0.0.1:6379 (namespaced per test), and private
`redis-server` processes that a test may stop and restart to drill failures."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import redis

from scripts.stack import RedisProcess as ManagedRedis

SHARED_URL = "redis://127.0.0.1:6379/0"


def unique_prefix() -> str:
    """A key prefix no other test (or replica) uses: tests share the machine's Redis."""
    return f"fa-test-{uuid.uuid4().hex[:10]}:"


def delete_prefix(url: str, prefix: str) -> None:
    r = redis.Redis.from_url(url)
    try:
        keys = list(r.scan_iter(match=prefix + "*", count=1000))
        if keys:
            r.delete(*keys)
    finally:
        r.close()


class RedisProcess(ManagedRedis):
    """A private redis-server on a free port, in memory only. `stop()` kills it; `start()` brings it back on the
    same port (empty, as after a crash of a cache-only Redis)."""

    def __init__(self, port: int | None = None):
        self._folder = tempfile.TemporaryDirectory(prefix="fa-test-redis-")  # its log; no data is written
        super().__init__(Path(self._folder.name), port, appendonly=False)

    def stop(self) -> None:
        self.kill()
