"""Time spent per request waiting on the inference plane, reported in a `Server-Timing` response header so a client
(or a browser's network panel) can tell the API's own cost from Triton's.

The middleware installs one mutable `RequestTiming` per request in a context variable; the gateway adds to it.
A mutable holder, not a value: whatever context copies happen between them, both see the same object.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass
class RequestTiming:
    inference_s: float = 0.0
    inference_calls: int = 0

    def header(self, total_s: float) -> bytes:
        parts = [f"app;dur={total_s * 1000:.2f}"]
        if self.inference_calls:
            parts.append(f"inference;dur={self.inference_s * 1000:.2f}")
        return ", ".join(parts).encode()


timing_var: contextvars.ContextVar[RequestTiming | None] = contextvars.ContextVar("request_timing", default=None)


def add_inference_time(seconds: float) -> None:
    timing = timing_var.get()
    if timing is not None:
        timing.inference_s += seconds
        timing.inference_calls += 1
