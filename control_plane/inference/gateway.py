"""The only way the control plane reaches Triton: the `face_analysis` ensemble through `AsyncFaceAnalysisClient`,
with a deadline on every call, retries with backoff on UNAVAILABLE, a circuit breaker per target, a cap on calls in
flight and an optional fallback target (a CPU pool, say) used while the primary's breaker is open.

Every result comes back with the `PackInfo` of the target that produced it, so callers label results with their
pack and never compare embeddings of different recognizers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from control_plane.core.errors import ApiError
from control_plane.core.metrics import BREAKER_STATES, Metrics
from control_plane.core.settings import Settings
from control_plane.core.timing import add_inference_time
from control_plane.inference.breaker import CircuitBreaker
from face_analysis.client import AnalysisResult, AsyncFaceAnalysisClient, EnsembleError, PackInfo

SHED_MIN_IN_FLIGHT = 4  # one slow image alone is not overload
LATENCY_EWMA_ALPHA = 0.2

log = logging.getLogger(__name__)

# Errors the API passes on under the ensemble's own code; any other refusal of the request is `invalid_argument`.
_IMAGE_ERRORS = {"invalid_image", "unsupported_media_type", "image_too_large"}


@dataclass
class Target:
    name: str
    url: str
    breaker: CircuitBreaker
    client: AsyncFaceAnalysisClient | None = None  # made in `start()`: gRPC aio channels belong to one event loop
    pack: PackInfo | None = None
    last_error: str | None = field(default=None)
    last_success_at: float = float("-inf")  # time.monotonic() of the last call it answered


class InferenceGateway:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        client_factory: Callable[[str], AsyncFaceAnalysisClient] = AsyncFaceAnalysisClient,
    ):
        self.settings, self.metrics, self.client_factory = settings, metrics, client_factory
        self.targets = [self._target("primary", settings.triton_url)]
        if settings.triton_fallback_url:
            self.targets.append(self._target("fallback", settings.triton_fallback_url))
        self.in_flight = 0
        self.latency_ewma_s: float | None = None  # of answered calls: queueing in Triton shows here first

    def _target(self, name: str, url: str) -> Target:
        gauge = self.metrics.breaker.labels(name)
        gauge.set(0)
        breaker = CircuitBreaker(
            self.settings.breaker_failures,
            self.settings.breaker_reset_s,
            on_change=lambda state: (
                gauge.set(BREAKER_STATES[state]),
                log.warning(
                    "circuit breaker %s is %s", name, state, extra={"event": "breaker", "target": name, "state": state}
                ),
            ),
        )
        return Target(name, url, breaker)

    @property
    def primary(self) -> Target:
        return self.targets[0]

    async def start(self) -> None:
        """Open the channels (inside the serving event loop) and learn what each target serves; a target that does
        not answer yet is asked again on its first call."""
        for target in self.targets:
            target.client = self.client_factory(target.url)
            try:
                target.pack = await target.client.pack_info(timeout_s=min(2.0, self.settings.triton_timeout_s))
            except EnsembleError as exc:
                target.last_error = exc.message

    def expected_pack(self) -> PackInfo | None:
        """The pack a request will most likely be answered with (for cache lookups before the call)."""
        for target in self.targets:
            if target.breaker.state != "open" and target.pack is not None:
                return target.pack
        return self.primary.pack

    def known_packs(self) -> list[PackInfo]:
        return [t.pack for t in self.targets if t.pack is not None]

    async def analyze(
        self, image: bytes, threshold: float | None = None, max_faces: int | None = None
    ) -> tuple[AnalysisResult, PackInfo]:
        if self.in_flight >= self.settings.max_in_flight or self._shedding():
            raise ApiError(
                "overloaded",
                "too many requests are being analysed; retry shortly",
                headers={"Retry-After": "1"},
            )
        self.in_flight += 1
        self.metrics.in_flight.set(self.in_flight)
        try:
            return await self._analyze(image, threshold, max_faces)
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.set(self.in_flight)

    def _shedding(self) -> bool:
        """Refuse new work while answers take more than `shed_latency_fraction` of the deadline: past that, queued
        requests would start timing out, so a quick 503 beats a late 504 (and keeps the queue short)."""
        fraction = self.settings.shed_latency_fraction
        return (
            fraction > 0
            and self.in_flight >= SHED_MIN_IN_FLIGHT
            and self.latency_ewma_s is not None
            and self.latency_ewma_s > fraction * self.settings.triton_timeout_s
        )

    def _observe(self, seconds: float) -> None:
        previous = seconds if self.latency_ewma_s is None else self.latency_ewma_s
        self.latency_ewma_s = previous + LATENCY_EWMA_ALPHA * (seconds - previous)

    async def _analyze(self, image, threshold, max_faces) -> tuple[AnalysisResult, PackInfo]:
        # one deadline for the whole request: a fallback gets what the primary left, never a fresh budget
        deadline = time.monotonic() + self.settings.triton_timeout_s
        last: EnsembleError | None = None
        for target in self.targets:
            if time.monotonic() >= deadline:
                break  # spent on an earlier target: no verdict on this one
            ticket = target.breaker.allow()
            if ticket is None:
                continue
            started = time.monotonic()
            try:
                result, pack = await self._call(target, image, threshold, max_faces, deadline)
            except EnsembleError as exc:
                if exc.is_client_error:
                    target.breaker.record_success(ticket)  # the server answered: the request was at fault
                    raise _client_error(exc) from None
                if exc.code == "inference_timeout" and target.last_success_at > started:
                    # other calls were answered while this one waited: the server is overloaded, not down
                    target.breaker.release(ticket)
                    self._observe(time.monotonic() - started)  # and the shedding must see how slow it got
                else:
                    target.breaker.record_failure(ticket)
                target.last_error = exc.message
                last = exc
                continue
            except asyncio.CancelledError:  # the client went away: no verdict on the server, free a probe slot
                target.breaker.release(ticket)
                raise
            except BaseException:
                target.breaker.record_failure(ticket)
                raise
            target.breaker.record_success(ticket)
            target.last_success_at = time.monotonic()
            self._observe(target.last_success_at - started)
            target.last_error = None
            return result, pack
        retry_after = max(1, round(min(t.breaker.retry_after() for t in self.targets)))
        if last is not None and last.code == "inference_timeout":
            raise ApiError(
                "inference_timeout",
                f"the inference server did not answer within {self.settings.triton_timeout_s:g} s",
                headers={"Retry-After": str(retry_after)},
            )
        raise ApiError(
            "inference_unavailable",
            "the inference server is unavailable; retry later"
            + (f" ({last.message})" if last is not None else " (circuit open)"),
            headers={"Retry-After": str(retry_after)},
        )

    async def _call(
        self, target: Target, image, threshold, max_faces, deadline: float
    ) -> tuple[AnalysisResult, PackInfo]:
        """One target before `deadline`, retrying UNAVAILABLE with exponential backoff while time remains."""
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EnsembleError("inference_timeout", "deadline exceeded")
            start = time.perf_counter()
            outcome = "ok"
            try:
                if target.pack is None:
                    target.pack = await target.client.pack_info(timeout_s=remaining)
                    remaining = deadline - time.monotonic()
                result = await target.client.analyze(image, threshold, max_faces, timeout_s=max(remaining, 0.001))
                return result, target.pack
            except EnsembleError as exc:
                outcome = exc.code
                backoff = self.settings.triton_retry_backoff_s * (2**attempt)
                if exc.code != "inference_unavailable" or attempt >= self.settings.triton_retries:
                    raise
                if deadline - time.monotonic() <= backoff:
                    raise
                attempt += 1
                await asyncio.sleep(backoff)
            finally:
                took = time.perf_counter() - start
                self.metrics.triton.labels(target.name, outcome).observe(took)
                add_inference_time(took)

    async def readiness(self) -> dict:
        """Per target: model ready, breaker state, pack served."""
        checks = {}
        for target in self.targets:
            ready = await target.client.ready(timeout_s=1.0)
            if ready and target.pack is None:
                try:
                    target.pack = await target.client.pack_info(timeout_s=1.0)
                except EnsembleError as exc:
                    target.last_error = exc.message
            checks[target.name] = {
                "ready": ready,
                "breaker": target.breaker.state,
                "pack": target.pack.pack if target.pack else None,
                "url": target.url,
                **({"error": target.last_error} if target.last_error and not ready else {}),
            }
        return checks

    async def close(self) -> None:
        for target in self.targets:
            if target.client is not None:
                await target.client.close()
                target.client = None


def _client_error(exc: EnsembleError) -> ApiError:
    """An ensemble refusal caused by the request (bad image, bad argument) as the API's 4xx."""
    return ApiError(exc.code if exc.code in _IMAGE_ERRORS else "invalid_argument", exc.message)
