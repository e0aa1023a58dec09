"""A circuit breaker per Triton target: after `failures` consecutive failures it opens and callers are answered at
once (503 + Retry-After) instead of waiting on a dead server; after `reset_s` one probe call is let through
(half-open) and its outcome closes or re-opens the circuit.

`allow()` hands out a ticket (the breaker's generation, truthy) that the call returns with its verdict. Opening and
half-opening start a new generation, so a late verdict from a call admitted before cannot restart the open period
or decide a half-open breaker in the probe's place."""

from __future__ import annotations

import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    def __init__(
        self,
        failures: int,
        reset_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str], None] | None = None,
    ):
        self.threshold, self.reset_s, self.clock, self.on_change = failures, reset_s, clock, on_change
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self._probing = False
        self.generation = 1

    def _set(self, state: str) -> None:
        if state in (OPEN, HALF_OPEN):
            self.generation += 1
        if state != self.state:
            self.state = state
            if self.on_change:
                self.on_change(state)

    def allow(self) -> int | None:
        """A ticket if a call may go out now, else None. In half-open state only one probe is out at a time."""
        if self.state == CLOSED:
            return self.generation
        if self.state == OPEN and self.clock() - self.opened_at >= self.reset_s:
            self._set(HALF_OPEN)
            self._probing = False
        if self.state == HALF_OPEN and not self._probing:
            self._probing = True
            return self.generation
        return None

    def _current(self, ticket: int | None) -> bool:
        return ticket is None or ticket == self.generation

    def retry_after(self) -> float:
        """Seconds until the next probe may go out (0 when closed)."""
        if self.state == CLOSED:
            return 0.0
        return max(0.0, self.reset_s - (self.clock() - self.opened_at))

    def record_success(self, ticket: int | None = None) -> None:
        if not self._current(ticket):
            return
        self.failures = 0
        self._probing = False
        self._set(CLOSED)

    def release(self, ticket: int | None = None) -> None:
        """The call ended with no verdict on the server (cancelled, or slow while others succeed): free a
        half-open probe slot only."""
        if self._current(ticket):
            self._probing = False

    def record_failure(self, ticket: int | None = None) -> None:
        if not self._current(ticket):
            return
        self._probing = False
        self.failures += 1
        if self.state == HALF_OPEN or self.failures >= self.threshold:
            self.opened_at = self.clock()
            self._set(OPEN)
