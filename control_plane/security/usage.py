"""Per-key usage counters by UTC day and route: requests, images and faces.

In Redis each (key, day) is one hash `{prefix}usage:{key_id}:{YYYY-MM-DD}` with fields `{route}|{metric}`, kept for
`retention_days`. While Redis is down, counts wait in a pending buffer and are added to Redis at the next successful
write or report (or `flush()`), so nothing acknowledged is lost unless the process dies. A flush whose reply is lost
to a timeout after Redis applied it is retried, so counts are at-least-once. Without Redis the counters stay in memory.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

from control_plane.core.redis import REDIS_ERRORS, SharedRedis

METRICS = ("requests", "images", "faces")

# (key_id, "YYYY-MM-DD") -> Counter of "{route}|{metric}"
_Counts = dict[tuple[str, str], Counter]


class UsageUnavailable(RuntimeError):
    """Redis is configured but down: a report now would miss everything already flushed to it."""


def _today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def _merge(into: _Counts, counts: _Counts) -> None:
    for k, c in counts.items():
        into.setdefault(k, Counter()).update(c)


class UsageRecorder:
    def __init__(self, redis: SharedRedis, prefix: str = "fa:", retention_days: int = 400):
        self.redis = redis
        self.prefix = prefix
        self.retention_days = retention_days
        # With Redis: counts not yet flushed. Without: the counters themselves.
        self._pending: _Counts = {}

    def _key(self, key_id: str, day: str) -> str:
        return f"{self.prefix}usage:{key_id}:{day}"

    async def record(self, key_id: str, route: str, images: int, faces: int, *, day: dt.date | None = None) -> None:
        """Count one request of `route` by `key_id` that carried `images` images and found `faces` faces."""
        counts = {
            (key_id, (day or _today()).isoformat()): Counter(
                {f"{route}|requests": 1, f"{route}|images": images, f"{route}|faces": faces}
            )
        }
        if self.redis.usable():
            # Swap the buffer out before awaiting, so counts recorded meanwhile are neither lost nor sent twice.
            batch, self._pending = self._pending, {}
            _merge(batch, counts)
            try:
                await self._write(batch)
                self.redis.mark_up()
                return
            except REDIS_ERRORS as exc:
                self.redis.mark_down(exc)
                _merge(self._pending, batch)
                return
        _merge(self._pending, counts)
        if not self.redis.configured:
            self._prune()

    async def flush(self) -> bool:
        """Push pending counts to Redis. False when Redis is configured but did not take them."""
        if not self.redis.configured or not self._pending:
            return True
        batch, self._pending = self._pending, {}
        try:
            await self._write(batch)
        except REDIS_ERRORS as exc:
            self.redis.mark_down(exc)
            _merge(self._pending, batch)
            return False
        self.redis.mark_up()
        return True

    async def _write(self, batch: _Counts) -> None:
        if not batch:
            return
        async with self.redis.client.pipeline(transaction=True) as pipe:
            for (key_id, day), counter in batch.items():
                name = self._key(key_id, day)
                for field, n in counter.items():
                    if n:
                        pipe.hincrby(name, field, n)
                pipe.expire(name, self.retention_days * 86400)
            await pipe.execute()

    def _prune(self) -> None:
        oldest = (_today() - dt.timedelta(days=self.retention_days)).isoformat()
        for k in [k for k in self._pending if k[1] < oldest]:
            del self._pending[k]

    async def report(self, key_id: str, days: int = 30) -> list[dict]:
        """Rows `{date, route, requests, images, faces}` for the last `days` UTC days (today included), pending counts
        included, sorted by date then route. Raises UsageUnavailable when Redis is configured but down."""
        if days < 1:
            raise ValueError("days must be >= 1")
        today = _today()
        dates = [(today - dt.timedelta(days=i)).isoformat() for i in range(min(days, self.retention_days))]
        totals: _Counts = {}
        if self.redis.configured:
            if not await self.flush():
                raise UsageUnavailable("usage store (Redis) is unreachable")
            try:
                async with self.redis.client.pipeline(transaction=False) as pipe:
                    for day in dates:
                        pipe.hgetall(self._key(key_id, day))
                    raws = await pipe.execute()
            except REDIS_ERRORS as exc:
                self.redis.mark_down(exc)
                raise UsageUnavailable("usage store (Redis) is unreachable") from exc
            self.redis.mark_up()
            for day, raw in zip(dates, raws):
                totals[(key_id, day)] = Counter({f.decode(): int(v) for f, v in raw.items()})
        _merge(totals, {k: c for k, c in self._pending.items() if k[0] == key_id and k[1] in dates})
        rows: dict[tuple[str, str], dict] = {}
        for (_, day), counter in totals.items():
            for field, n in counter.items():
                route, _, metric = field.rpartition("|")
                if metric in METRICS:
                    row = rows.setdefault((day, route), {"date": day, "route": route, **dict.fromkeys(METRICS, 0)})
                    row[metric] += n
        return [rows[k] for k in sorted(rows)]
