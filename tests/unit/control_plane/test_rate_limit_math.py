"""The GCRA arithmetic shared by the in-process limiter and (mirrored) the Lua script."""

from __future__ import annotations

import math

import pytest

from control_plane.security.rate_limit import US, RateDecision, gcra, interval_us

T0 = 1_700_000_000 * US  # an arbitrary "now" in microseconds


def run(steps, burst, per_minute):
    """Apply (now_us, cost) steps to one bucket; return the decisions."""
    tat, out, interval = None, [], interval_us(per_minute)
    for now, cost in steps:
        new_tat, d = gcra(tat, now, burst, interval, cost)
        tat = new_tat if new_tat is not None else tat
        out.append(d)
    return out


def test_interval():
    assert interval_us(60) == US
    assert interval_us(6000) == 10_000
    assert interval_us(7) == 8_571_429  # rounded to whole microseconds


def test_burst_is_exact():
    ds = run([(T0, 1)] * 13, burst=10, per_minute=60)
    assert [d.allowed for d in ds] == [True] * 10 + [False] * 3
    assert [d.remaining for d in ds[:10]] == list(range(9, -1, -1))
    assert all(d.limit == 10 for d in ds)
    assert ds[9].reset_s == 10.0  # ten tokens at one per second
    assert ds[10].retry_after_s == 1.0 and ds[10].remaining == 0


def test_refill_timing():
    steps = [(T0, 1)] * 5 + [(T0 + US - 1, 1), (T0 + US, 1), (T0 + US, 1), (T0 + 3 * US, 1)]
    ds = run(steps, burst=5, per_minute=60)
    assert [d.allowed for d in ds] == [True] * 5 + [False, True, False, True]
    assert ds[5].retry_after_s == pytest.approx(1e-6)  # one microsecond short
    # at T0+3s two tokens had come back; one is used now
    assert ds[8].remaining == 1 and ds[8].reset_s == 4.0


def test_full_after_reset():
    first = run([(T0, 1)] * 3, burst=3, per_minute=30)[-1]
    assert first.remaining == 0 and first.reset_s == 6.0
    later = run([(T0, 1)] * 3 + [(T0 + 6 * US, 3)], burst=3, per_minute=30)[-1]
    assert later.allowed and later.remaining == 0


def test_cost_above_one():
    ds = run([(T0, 4), (T0, 4), (T0, 2), (T0, 3)], burst=10, per_minute=60)
    assert [d.allowed for d in ds] == [True, True, True, False]
    assert [d.remaining for d in ds] == [6, 2, 0, 0]
    assert ds[3].retry_after_s == 3.0  # three tokens at one per second


def test_cost_above_burst_never_fits():
    d = run([(T0, 11)], burst=10, per_minute=60)[0]
    assert not d.allowed and d.retry_after_s == math.inf and d.remaining == 10 and d.reset_s == 0
    assert "Retry-After" not in d.headers()


def test_denied_requests_consume_nothing():
    # hammering a full bucket while denied does not push the refill further away
    steps = [(T0, 2)] * 2 + [(T0 + i * 1000, 2) for i in range(1, 50)] + [(T0 + 2 * US, 2)]
    ds = run(steps, burst=4, per_minute=60)
    assert [d.allowed for d in ds] == [True, True] + [False] * 49 + [True]
    tat, _ = gcra(None, T0, 4, US, 4)
    assert gcra(tat, T0, 4, US, 1)[0] is None  # no new TAT to store on denial


def test_headers():
    ok = RateDecision(True, 10, 7, 2.2, 0.0)
    assert ok.headers() == {"RateLimit-Limit": "10", "RateLimit-Remaining": "7", "RateLimit-Reset": "3"}
    denied = RateDecision(False, 10, 0, 9.5, 0.2)
    assert denied.headers()["Retry-After"] == "1"  # rounded up, never 0
    assert RateDecision(False, 10, 0, 9.5, 2.01).headers()["Retry-After"] == "3"
    assert "Retry-After" not in RateDecision(False, 10, 10, 0, math.inf).headers()
