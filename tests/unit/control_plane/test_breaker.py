"""The circuit breaker's state machine, driven by an injected clock."""

from __future__ import annotations

import pytest

from control_plane.inference.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, s: float) -> None:
        self.now += s


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def changes() -> list[str]:
    return []


@pytest.fixture
def breaker(clock, changes) -> CircuitBreaker:
    return CircuitBreaker(3, 10.0, clock=clock, on_change=changes.append)


def trip(b: CircuitBreaker) -> None:
    for _ in range(b.threshold):
        assert b.allow()
        b.record_failure()


def test_starts_closed(breaker, changes):
    assert breaker.state == CLOSED
    assert breaker.allow() and breaker.allow()
    assert breaker.retry_after() == 0.0
    assert changes == []


def test_opens_after_n_consecutive_failures(breaker, changes):
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == CLOSED and breaker.allow()
    assert changes == []
    breaker.record_failure()
    assert breaker.state == OPEN
    assert changes == [OPEN]
    assert not breaker.allow()
    assert not breaker.allow()


def test_success_resets_the_count(breaker, changes):
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    assert breaker.failures == 0
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == CLOSED
    assert changes == []  # success while closed is no transition
    breaker.record_failure()
    assert breaker.state == OPEN


def test_retry_after_counts_down(breaker, clock):
    trip(breaker)
    assert breaker.retry_after() == pytest.approx(10.0)
    clock.advance(3.5)
    assert breaker.retry_after() == pytest.approx(6.5)
    assert not breaker.allow()
    clock.advance(6.0)
    assert breaker.retry_after() == pytest.approx(0.5)
    assert not breaker.allow()
    clock.advance(1.0)
    assert breaker.retry_after() == 0.0


def test_half_open_lets_exactly_one_probe_through(breaker, clock, changes):
    trip(breaker)
    clock.advance(10.0)
    assert breaker.allow()
    assert breaker.state == HALF_OPEN
    assert changes == [OPEN, HALF_OPEN]
    assert not breaker.allow()
    assert not breaker.allow()
    clock.advance(100.0)  # however long the probe takes, only one is out
    assert not breaker.allow()


def test_probe_success_closes(breaker, clock, changes):
    trip(breaker)
    clock.advance(10.0)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == CLOSED
    assert breaker.failures == 0
    assert breaker.retry_after() == 0.0
    assert breaker.allow() and breaker.allow()
    assert changes == [OPEN, HALF_OPEN, CLOSED]
    # a fresh run of failures is needed to open again
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == CLOSED


def test_probe_failure_reopens_for_a_full_period(breaker, clock, changes):
    trip(breaker)
    clock.advance(10.0)
    assert breaker.allow()
    clock.advance(2.0)
    breaker.record_failure()  # a single failure in half-open re-opens
    assert breaker.state == OPEN
    assert breaker.retry_after() == pytest.approx(10.0)
    assert not breaker.allow()
    clock.advance(9.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.allow()  # the next probe
    assert not breaker.allow()
    breaker.record_success()
    assert changes == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]


def test_release_frees_the_probe_slot_without_a_verdict(breaker, clock, changes):
    trip(breaker)
    clock.advance(10.0)
    assert breaker.allow()
    breaker.release()  # the probe was abandoned: nothing learned about the server
    assert breaker.state == HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()
    assert changes == [OPEN, HALF_OPEN]


def test_release_while_closed_changes_nothing(breaker, changes):
    breaker.record_failure()
    breaker.release()
    assert breaker.state == CLOSED and breaker.failures == 1
    assert changes == []


def test_without_on_change():
    clock = Clock()
    b = CircuitBreaker(1, 1.0, clock=clock)
    b.record_failure()
    assert b.state == OPEN
    clock.advance(1.0)
    assert b.allow()
    b.record_success()
    assert b.state == CLOSED
