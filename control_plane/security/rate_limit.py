"""Token-bucket rate limits shared by every replica through Redis, with an in-process twin.

The bucket is kept as GCRA (generic cell rate algorithm): one number per bucket, its "theoretical arrival time"
(TAT), the moment at which the bucket would be full again. A request of `cost` tokens is allowed when pushing the TAT
by `cost` emission intervals keeps it within `burst` intervals of now. Time is counted in whole microseconds so that
the Lua script (doubles) and Python (ints) do exact, identical arithmetic and agree at the boundary.

In Redis one Lua script reads and writes the TAT atomically using Redis's own clock, so replicas with skewed clocks
agree. Nothing here is specific to API keys: buckets are free-form names (`key:<id>`, `authfail:<ip>`...).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from control_plane.core.redis import REDIS_ERRORS, SharedRedis

US = 1_000_000  # microseconds per second

# Mirrors `gcra()` below; ARGV: burst, interval_us, cost, now_us (empty: Redis's clock; set only by tests).
# Returns {allowed, remaining, reset_us, retry_us} with retry_us -1 when cost > burst (never possible).
# Numbers are written with %.0f: they are whole microseconds, and Lua's tostring would round them to 14 digits.
_GCRA_LUA = """
local burst = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tau = burst * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or '')
if not tat or tat < now then tat = now end
local new_tat = tat + cost * interval
if cost > burst then
  return {0, math.floor((tau - (tat - now)) / interval), tat - now, -1}
end
if new_tat - now > tau then
  return {0, math.floor((tau - (tat - now)) / interval), tat - now, new_tat - tau - now}
end
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', ttl_ms))
return {1, math.floor((tau - (new_tat - now)) / interval), new_tat - now, 0}
"""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int  # the burst
    remaining: int  # whole tokens left after this request
    reset_s: float  # until the bucket is full again
    retry_after_s: float  # 0 when allowed; math.inf when cost > burst

    def headers(self) -> dict[str, str]:
        """IETF draft `RateLimit-*` headers, plus `Retry-After` on a denial that can succeed later."""
        h = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset_s)),
        }
        if not self.allowed and math.isfinite(self.retry_after_s):
            h["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        return h


def interval_us(per_minute: float) -> int:
    """The emission interval: microseconds per token (whole, so that the arithmetic stays exact)."""
    return max(1, round(60 * US / per_minute))


def gcra(tat_us: int | None, now_us: int, burst: int, interval: int, cost: int) -> tuple[int | None, RateDecision]:
    """One request against a bucket whose stored TAT is `tat_us` (None: never used or expired).

    Returns the TAT to store (None when denied: a denied request consumes nothing) and the decision.
    """
    tau = burst * interval  # how far ahead of now the TAT may run: a full bucket's worth of intervals
    tat = now_us if tat_us is None or tat_us < now_us else tat_us
    new_tat = tat + cost * interval
    if cost > burst or new_tat - now_us > tau:
        retry = math.inf if cost > burst else (new_tat - tau - now_us) / US
        return None, RateDecision(False, burst, (tau - (tat - now_us)) // interval, (tat - now_us) / US, retry)
    return new_tat, RateDecision(True, burst, (tau - (new_tat - now_us)) // interval, (new_tat - now_us) / US, 0.0)


def _check(burst: int, per_minute: float, cost: int) -> None:
    if burst < 1 or per_minute <= 0 or cost < 1:
        raise ValueError("burst and cost must be >= 1 and per_minute > 0")


class RateLimiter:
    # The in-process twin drops full buckets once it holds this many, so per-address buckets cannot grow unbounded.
    _PRUNE_AT = 10_000

    def __init__(self, redis: SharedRedis, prefix: str = "fa:"):
        self.redis = redis
        self.prefix = prefix
        self._script = redis.client.register_script(_GCRA_LUA) if redis.client is not None else None
        self._local: dict[str, int] = {}

    async def hit(self, bucket: str, burst: int, per_minute: float, cost: int = 1) -> RateDecision:
        _check(burst, per_minute, cost)
        interval = interval_us(per_minute)
        if self.redis.usable():
            try:
                decision = await self._hit_redis(bucket, burst, interval, cost)
                self.redis.mark_up()
                return decision
            except REDIS_ERRORS as exc:
                self.redis.mark_down(exc)
        return self._hit_local(bucket, burst, interval, cost, time.monotonic_ns() // 1000)

    async def _hit_redis(self, bucket: str, burst: int, interval: int, cost: int, now_us: int | None = None):
        # `now_us` exists for the test that checks the script against `gcra()`; production uses Redis's clock.
        args = [burst, interval, cost, "" if now_us is None else now_us]
        allowed, remaining, reset_us, retry_us = await self._script(keys=[f"{self.prefix}rl:{bucket}"], args=args)
        retry = math.inf if retry_us < 0 else retry_us / US
        return RateDecision(bool(allowed), burst, int(remaining), reset_us / US, retry)

    def _hit_local(self, bucket: str, burst: int, interval: int, cost: int, now_us: int) -> RateDecision:
        new_tat, decision = gcra(self._local.get(bucket), now_us, burst, interval, cost)
        if new_tat is not None:
            self._local[bucket] = new_tat
            if len(self._local) > self._PRUNE_AT:
                self._local = {b: t for b, t in self._local.items() if t > now_us}
        return decision
