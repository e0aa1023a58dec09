"""InferenceGateway against a scripted fake of AsyncFaceAnalysisClient: deadlines, retries, breaker, fallback,
in-flight cap, cancellation and readiness."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import pytest

from control_plane.core.errors import ApiError
from control_plane.core.metrics import Metrics
from control_plane.core.settings import Settings
from control_plane.inference.breaker import CLOSED, HALF_OPEN, OPEN
from control_plane.inference.gateway import InferenceGateway
from face_analysis.client import AnalysisResult, EnsembleError, PackInfo

PRIMARY, FALLBACK = "primary:8001", "fallback:8001"
PACKS = {
    PRIMARY: PackInfo("gpu_pack", 512, 0.3, True, 50, "1"),
    FALLBACK: PackInfo("cpu_pack", 128, 0.4, False, 10, "1"),
}
RESET_S = 5.0


def result() -> AnalysisResult:
    return AnalysisResult(
        boxes=np.zeros((1, 4), np.float32),
        scores=np.ones(1, np.float32),
        landmarks=np.zeros((1, 5, 2), np.float32),
        embeddings=np.ones((1, 4), np.float32) / 2,
    )


# the gRPC status Triton gives each code: the Python steps refuse bad requests with INVALID_ARGUMENT
_STATUS = {
    "inference_unavailable": "StatusCode.UNAVAILABLE",
    "inference_timeout": "StatusCode.DEADLINE_EXCEEDED",
    "inference_overloaded": "StatusCode.RESOURCE_EXHAUSTED",
    "model_not_found": "StatusCode.NOT_FOUND",
}


def err(code: str) -> EnsembleError:
    return EnsembleError(code, f"scripted {code}", _STATUS.get(code, "StatusCode.INVALID_ARGUMENT"))


@dataclass
class Delay:
    """Sleep `s` seconds (bounded by the call's timeout, as gRPC would) and then produce `then`."""

    s: float
    then: object = None


@dataclass
class Call:
    url: str
    at: float
    timeout_s: float | None
    threshold: float | None = None
    max_faces: int | None = None


class Backend:
    """What every fake client of a test answers: a queue of outcomes per URL (a result when it runs dry)."""

    def __init__(self):
        self.outcomes: dict[str, deque] = {}
        self.pack_outcomes: dict[str, deque] = {}
        self.ready: dict[str, bool] = {}
        self.calls: list[Call] = []
        self.pack_calls: list[tuple[str, float | None]] = []
        self.clients: list[FakeClient] = []

    def script(self, url: str, *outcomes) -> None:
        self.outcomes.setdefault(url, deque()).extend(outcomes)

    def calls_to(self, url: str) -> list[Call]:
        return [c for c in self.calls if c.url == url]

    def factory(self, url: str) -> FakeClient:
        client = FakeClient(url, self)
        self.clients.append(client)
        return client


class FakeClient:
    def __init__(self, url: str, backend: Backend):
        self.url, self.backend, self.closed = url, backend, False

    async def _play(self, outcome, timeout_s):
        if isinstance(outcome, Delay):
            if timeout_s is not None and outcome.s > timeout_s:
                await asyncio.sleep(timeout_s)
                raise EnsembleError("inference_timeout", "Deadline Exceeded", "StatusCode.DEADLINE_EXCEEDED")
            await asyncio.sleep(outcome.s)
            outcome = outcome.then
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def analyze(self, image, threshold=None, max_faces=None, timeout_s=None):
        assert not self.closed
        self.backend.calls.append(Call(self.url, time.monotonic(), timeout_s, threshold, max_faces))
        queue = self.backend.outcomes.get(self.url)
        outcome = await self._play(queue.popleft() if queue else None, timeout_s)
        return result() if outcome is None else outcome

    async def pack_info(self, timeout_s=None):
        self.backend.pack_calls.append((self.url, timeout_s))
        queue = self.backend.pack_outcomes.get(self.url)
        outcome = await self._play(queue.popleft() if queue else None, timeout_s)
        return PACKS[self.url] if outcome is None else outcome

    async def ready(self, timeout_s=None):
        return self.backend.ready.get(self.url, True)

    async def close(self):
        self.closed = True


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, s: float) -> None:
        self.now += s


def settings(**kw) -> Settings:
    base = dict(
        triton_url=PRIMARY,
        triton_fallback_url=None,
        triton_timeout_s=0.4,
        triton_retries=2,
        triton_retry_backoff_s=0.02,
        breaker_failures=3,
        breaker_reset_s=RESET_S,
        max_in_flight=4,
    )
    base.update(kw)
    return Settings(**base)


@pytest.fixture
def backend() -> Backend:
    return Backend()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make(backend, clock):
    """Build and start a gateway over the fake clients; its breakers run on the fake clock."""
    gateways = []

    async def _make(**kw) -> InferenceGateway:
        gw = InferenceGateway(settings(**kw), Metrics(), client_factory=backend.factory)
        for target in gw.targets:
            target.breaker.clock = clock
        await gw.start()
        gateways.append(gw)
        return gw

    yield _make
    for gw in gateways:
        assert gw.in_flight == 0
        assert gw.metrics.in_flight._value.get() == 0


async def trip(gw: InferenceGateway, backend: Backend, url: str = PRIMARY) -> None:
    """Open the breaker of `url` with non-retried server faults."""
    target = next(t for t in gw.targets if t.url == url)
    for _ in range(gw.settings.breaker_failures):
        backend.script(url, err("inference_overloaded"))
        try:
            await gw.analyze(b"img")
        except ApiError:
            pass
    assert target.breaker.state == OPEN


def gauge(gw: InferenceGateway, name: str) -> float:
    return gw.metrics.breaker.labels(name)._value.get()


async def wait_for(predicate, timeout: float = 1.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition never held"
        await asyncio.sleep(0.001)


# ---------------------------------------------------------------------------------------------------------- success


async def test_start_learns_packs(make, backend):
    gw = await make(triton_fallback_url=FALLBACK)
    assert [t.pack for t in gw.targets] == [PACKS[PRIMARY], PACKS[FALLBACK]]
    assert gw.known_packs() == [PACKS[PRIMARY], PACKS[FALLBACK]]
    assert all(timeout == pytest.approx(0.4) for _, timeout in backend.pack_calls)
    await gw.close()
    assert all(c.closed for c in backend.clients)
    assert all(t.client is None for t in gw.targets)


async def test_success_returns_result_and_pack(make, backend):
    gw = await make()
    expected = result()
    backend.script(PRIMARY, expected)
    got, pack = await gw.analyze(b"img", 0.6, 3)
    assert got is expected
    assert pack == PACKS[PRIMARY]
    [call] = backend.calls
    assert (call.threshold, call.max_faces) == (0.6, 3)
    assert 0.3 < call.timeout_s <= 0.4
    assert gw.primary.breaker.state == CLOSED
    assert gw.primary.last_error is None


async def test_pack_unknown_at_start_is_fetched_on_first_call(make, backend):
    backend.pack_outcomes[PRIMARY] = deque([err("inference_unavailable")])
    gw = await make()
    assert gw.primary.pack is None
    assert gw.primary.last_error == "scripted inference_unavailable"
    assert gw.expected_pack() is None
    _, pack = await gw.analyze(b"img")
    assert pack == PACKS[PRIMARY]
    assert gw.expected_pack() == PACKS[PRIMARY]
    assert len(backend.pack_calls) == 2


# ---------------------------------------------------------------------------------------------------------- retries


async def test_unavailable_is_retried_with_backoff(make, backend):
    gw = await make()
    backend.script(PRIMARY, err("inference_unavailable"), err("inference_unavailable"))
    got, pack = await gw.analyze(b"img")
    assert isinstance(got, AnalysisResult) and pack == PACKS[PRIMARY]
    calls = backend.calls_to(PRIMARY)
    assert len(calls) == 3
    gaps = [b.at - a.at for a, b in zip(calls, calls[1:])]
    assert gaps[0] >= 0.02 * 0.95  # backoff * 2**0
    assert gaps[1] >= 0.04 * 0.95  # backoff * 2**1
    assert gw.primary.breaker.state == CLOSED and gw.primary.breaker.failures == 0


async def test_retries_stop_at_triton_retries(make, backend):
    gw = await make()
    backend.script(PRIMARY, *[err("inference_unavailable")] * 10)
    with pytest.raises(ApiError) as info:
        await gw.analyze(b"img")
    assert info.value.code == "inference_unavailable" and info.value.status == 503
    assert "Retry-After" in info.value.headers
    assert len(backend.calls) == 3  # the first try and triton_retries=2 retries
    assert gw.primary.breaker.failures == 1  # one gateway call, one failure
    assert gw.primary.last_error == "scripted inference_unavailable"


async def test_no_retries_when_disabled(make, backend):
    gw = await make(triton_retries=0)
    backend.script(PRIMARY, *[err("inference_unavailable")] * 3)
    with pytest.raises(ApiError):
        await gw.analyze(b"img")
    assert len(backend.calls) == 1


@pytest.mark.parametrize("code", ["inference_overloaded", "model_not_found", "inference_timeout"])
async def test_other_server_faults_are_not_retried(make, backend, code):
    gw = await make()
    backend.script(PRIMARY, err(code), result())
    with pytest.raises(ApiError) as info:
        await gw.analyze(b"img")
    assert info.value.status in (503, 504)
    assert len(backend.calls) == 1
    assert gw.primary.breaker.failures == 1


# --------------------------------------------------------------------------------------------------------- deadline


async def test_timeout_shrinks_as_the_deadline_is_consumed(make, backend):
    gw = await make()
    backend.script(
        PRIMARY, Delay(0.08, err("inference_unavailable")), Delay(0.08, err("inference_unavailable")), result()
    )
    await gw.analyze(b"img")
    timeouts = [c.timeout_s for c in backend.calls]
    assert len(timeouts) == 3
    assert timeouts[0] <= 0.4 and timeouts[0] > 0.38
    assert timeouts[0] > timeouts[1] > timeouts[2] > 0
    assert timeouts[1] == pytest.approx(0.4 - 0.08 - 0.02, abs=0.03)
    assert timeouts[2] == pytest.approx(0.4 - 0.16 - 0.06, abs=0.04)


async def test_slow_client_times_out_within_the_deadline(make, backend):
    gw = await make()
    backend.script(PRIMARY, Delay(5.0, result()))
    start = time.monotonic()
    with pytest.raises(ApiError) as info:
        await gw.analyze(b"img")
    elapsed = time.monotonic() - start
    assert info.value.code == "inference_timeout" and info.value.status == 504
    assert info.value.headers["Retry-After"] == "1"
    assert 0.35 <= elapsed < 0.6
    assert len(backend.calls) == 1
    assert gw.primary.breaker.failures == 1


async def test_no_retry_when_the_backoff_would_pass_the_deadline(make, backend):
    gw = await make(triton_retry_backoff_s=0.3)
    backend.script(PRIMARY, Delay(0.15, err("inference_unavailable")), result())
    start = time.monotonic()
    with pytest.raises(ApiError) as info:
        await gw.analyze(b"img")
    assert info.value.code == "inference_unavailable"
    assert time.monotonic() - start < 0.3
    assert len(backend.calls) == 1


# ---------------------------------------------------------------------------------------------------------- breaker


async def test_failures_open_the_breaker_and_calls_fail_fast(make, backend, clock):
    gw = await make()
    await trip(gw, backend)
    assert gauge(gw, "primary") == 2
    n = len(backend.calls)
    start = time.monotonic()
    with pytest.raises(ApiError) as info:
        await gw.analyze(b"img")
    assert time.monotonic() - start < 0.05
    assert info.value.code == "inference_unavailable" and info.value.status == 503
    assert "circuit open" in info.value.message
    assert info.value.headers["Retry-After"] == "5"
    assert len(backend.calls) == n  # the client was not called
    clock.advance(3.0)
    with pytest.raises(ApiError) as info:
        await gw.analyze(b"img")
    assert info.value.headers["Retry-After"] == "2"
    assert len(backend.calls) == n


async def test_probe_after_reset_closes_on_success(make, backend, clock):
    gw = await make()
    await trip(gw, backend)
    n = len(backend.calls)
    clock.advance(RESET_S)
    _, pack = await gw.analyze(b"img")
    assert pack == PACKS[PRIMARY]
    assert len(backend.calls) == n + 1
    assert gw.primary.breaker.state == CLOSED
    assert gauge(gw, "primary") == 0
    await gw.analyze(b"img")


async def test_probe_failure_reopens(make, backend, clock):
    gw = await make()
    await trip(gw, backend)
    clock.advance(RESET_S)
    backend.script(PRIMARY, err("inference_overloaded"))
    with pytest.raises(ApiError):
        await gw.analyze(b"img")
    assert gw.primary.breaker.state == OPEN
    n = len(backend.calls)
    with pytest.raises(ApiError) as info:
        await gw.analyze(b"img")
    assert info.value.headers["Retry-After"] == "5"
    assert len(backend.calls) == n


async def test_only_one_probe_while_half_open(make, backend, clock):
    gw = await make()
    await trip(gw, backend)
    clock.advance(RESET_S)
    backend.script(PRIMARY, Delay(0.1, result()))
    probe = asyncio.create_task(gw.analyze(b"img"))
    await wait_for(lambda: gw.primary.breaker.state == HALF_OPEN)
    assert gauge(gw, "primary") == 1
    with pytest.raises(ApiError) as info:
        await gw.analyze(b"img")
    assert info.value.code == "inference_unavailable"
    await probe
    assert gw.primary.breaker.state == CLOSED


# ----------------------------------------------------------------------------------------------------------- fallback


async def test_fallback_serves_while_the_primary_is_open(make, backend, clock):
    gw = await make(triton_fallback_url=FALLBACK)
    assert gw.expected_pack() == PACKS[PRIMARY]
    await trip(gw, backend)
    assert gw.expected_pack() == PACKS[FALLBACK]
    n_primary = len(backend.calls_to(PRIMARY))
    expected = result()
    backend.script(FALLBACK, expected)
    got, pack = await gw.analyze(b"img")
    assert got is expected and pack == PACKS[FALLBACK]
    assert len(backend.calls_to(PRIMARY)) == n_primary  # the open primary was skipped
    # recovery: the probe goes to the primary and later calls stay there
    clock.advance(RESET_S)
    n_fallback = len(backend.calls_to(FALLBACK))
    _, pack = await gw.analyze(b"img")
    assert pack == PACKS[PRIMARY]
    assert gw.primary.breaker.state == CLOSED
    assert gw.expected_pack() == PACKS[PRIMARY]
    assert len(backend.calls_to(FALLBACK)) == n_fallback


async def test_both_open_fails_fast(make, backend, clock):
    gw = await make(triton_fallback_url=FALLBACK)
    for _ in range(3):
        backend.script(PRIMARY, err("inference_overloaded"))
        backend.script(FALLBACK, err("inference_overloaded"))
        with pytest.raises(ApiError):
            await gw.analyze(b"img")
    assert [t.breaker.state for t in gw.targets] == [OPEN, OPEN]
    assert gw.expected_pack() == PACKS[PRIMARY]
    n = len(backend.calls)
    with pytest.raises(ApiError) as info:
        await gw.analyze(b"img")
    assert info.value.code == "inference_unavailable" and "Retry-After" in info.value.headers
    assert len(backend.calls) == n


# ------------------------------------------------------------------------------------------------- request errors


@pytest.mark.parametrize(
    "code,status",
    [("invalid_image", 400), ("invalid_argument", 400), ("unsupported_media_type", 415), ("image_too_large", 413)],
)
async def test_request_errors_are_4xx_and_do_not_open_the_breaker(make, backend, code, status):
    gw = await make(triton_fallback_url=FALLBACK)
    backend.script(PRIMARY, err("inference_overloaded"), err("inference_overloaded"))
    for _ in range(2):
        backend.script(FALLBACK, result())
        await gw.analyze(b"img")  # primary failed twice, the fallback answered
    assert gw.primary.breaker.failures == 2
    for _ in range(5):
        backend.script(PRIMARY, err(code))
        with pytest.raises(ApiError) as info:
            await gw.analyze(b"img")
        assert info.value.code == code and info.value.status == status
    assert gw.primary.breaker.state == CLOSED and gw.primary.breaker.failures == 0
    assert len(backend.calls_to(PRIMARY)) == 7  # not retried
    assert len(backend.calls_to(FALLBACK)) == 2  # a bad request is not sent to the fallback


# -------------------------------------------------------------------------------------------------------- in flight


async def test_in_flight_cap_answers_overloaded_at_once(make, backend):
    gw = await make(max_in_flight=2)
    backend.script(PRIMARY, Delay(0.2, result()), Delay(0.2, result()))
    tasks = [asyncio.create_task(gw.analyze(b"img")) for _ in range(2)]
    await wait_for(lambda: len(backend.calls) == 2)
    assert gw.in_flight == 2 and gw.metrics.in_flight._value.get() == 2
    start = time.monotonic()
    with pytest.raises(ApiError) as info:
        await gw.analyze(b"img")
    assert time.monotonic() - start < 0.05
    assert info.value.code == "overloaded" and info.value.status == 503
    assert info.value.headers["Retry-After"] == "1"
    assert len(backend.calls) == 2
    await asyncio.gather(*tasks)
    assert gw.in_flight == 0
    await gw.analyze(b"img")
    assert gw.primary.breaker.failures == 0  # overload is not a server fault


async def test_in_flight_is_released_after_errors(make, backend):
    gw = await make(max_in_flight=1)
    backend.script(PRIMARY, err("invalid_image"), err("inference_overloaded"))
    for _ in range(2):
        with pytest.raises(ApiError):
            await gw.analyze(b"img")
    assert gw.in_flight == 0
    await gw.analyze(b"img")


# ------------------------------------------------------------------------------------------------------ cancellation


async def cancel_mid_call(gw: InferenceGateway, backend: Backend) -> None:
    n = len(backend.calls)
    backend.script(PRIMARY, Delay(0.3, result()))
    task = asyncio.create_task(gw.analyze(b"img"))
    await wait_for(lambda: len(backend.calls) == n + 1)
    assert gw.in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gw.in_flight == 0
    assert gw.metrics.in_flight._value.get() == 0


async def test_cancelled_probe_does_not_leave_the_breaker_stuck(make, backend, clock):
    gw = await make()
    await trip(gw, backend)
    clock.advance(RESET_S)
    await cancel_mid_call(gw, backend)
    assert gw.primary.breaker.state != CLOSED
    clock.advance(RESET_S)  # however the abandoned probe was booked, a probe may go out by now
    _, pack = await gw.analyze(b"img")
    assert pack == PACKS[PRIMARY]
    assert gw.primary.breaker.state == CLOSED


async def test_cancelled_calls_do_not_count_against_the_breaker(make, backend):
    """Clients that go away mid-call say nothing about the server: they must not open the breaker for everyone."""
    gw = await make()
    for _ in range(gw.settings.breaker_failures + 1):
        await cancel_mid_call(gw, backend)
    assert gw.primary.breaker.state == CLOSED
    await gw.analyze(b"img")


# --------------------------------------------------------------------------------------------------------- readiness


async def test_readiness_reports_per_target(make, backend):
    backend.pack_outcomes[FALLBACK] = deque([err("inference_unavailable")])
    backend.ready[FALLBACK] = False
    gw = await make(triton_fallback_url=FALLBACK)
    for _ in range(gw.settings.breaker_failures):
        gw.primary.breaker.record_failure()
    checks = await gw.readiness()
    assert checks["primary"] == {"ready": True, "breaker": OPEN, "pack": "gpu_pack", "url": PRIMARY}
    assert checks["fallback"] == {
        "ready": False,
        "breaker": CLOSED,
        "pack": None,
        "url": FALLBACK,
        "error": "scripted inference_unavailable",
    }
    # the fallback comes up: readiness learns its pack
    backend.ready[FALLBACK] = True
    checks = await gw.readiness()
    assert checks["fallback"] == {"ready": True, "breaker": CLOSED, "pack": "cpu_pack", "url": FALLBACK}
    assert gw.known_packs() == [PACKS[PRIMARY], PACKS[FALLBACK]]


# ------------------------------------------------------------------------------------------------- overload


async def test_timeouts_while_other_calls_are_answered_do_not_open_the_breaker(make, backend):
    """Overload, not an outage: every slow call times out, but answers keep coming in meanwhile."""
    gw = await make(max_in_flight=64, breaker_failures=2, triton_retries=0, shed_latency_fraction=0)
    backend.script(PRIMARY, *[Delay(1.0, result())] * 4)  # four calls stuck past the 0.4 s deadline...
    slow = [asyncio.create_task(gw.analyze(b"img")) for _ in range(4)]
    await wait_for(lambda: len(backend.calls) == 4)
    await asyncio.sleep(0.05)
    await gw.analyze(b"img")  # ...while another one is answered
    outcomes = await asyncio.gather(*slow, return_exceptions=True)
    assert all(isinstance(o, ApiError) and o.code == "inference_timeout" for o in outcomes)
    assert gw.primary.breaker.state == CLOSED and gw.primary.breaker.failures == 0


async def test_timeouts_with_no_answer_at_all_still_open_the_breaker(make, backend):
    gw = await make(breaker_failures=2, triton_retries=0, shed_latency_fraction=0)
    backend.script(PRIMARY, Delay(1.0, result()), Delay(1.0, result()))
    for _ in range(2):
        with pytest.raises(ApiError):
            await gw.analyze(b"img")
    assert gw.primary.breaker.state == OPEN


async def test_slow_answers_shed_new_work_before_it_would_time_out(make, backend):
    gw = await make(max_in_flight=64, triton_timeout_s=1.0, shed_latency_fraction=0.5)
    backend.script(PRIMARY, *[Delay(0.6, result())] * 10)  # answers take 60 % of the deadline
    first = [asyncio.create_task(gw.analyze(b"img")) for _ in range(5)]
    await asyncio.gather(*first)
    assert gw.latency_ewma_s > 0.5 * gw.settings.triton_timeout_s
    busy = [asyncio.create_task(gw.analyze(b"img")) for _ in range(4)]  # four in flight: saturated
    await wait_for(lambda: len(backend.calls) == 9)
    start = time.monotonic()
    with pytest.raises(ApiError) as info:
        await gw.analyze(b"img")
    assert info.value.code == "overloaded" and time.monotonic() - start < 0.05
    await asyncio.gather(*busy)
    await gw.analyze(b"img")  # with nothing else in flight a slow answer is not overload


def test_late_verdicts_from_before_the_breaker_opened_are_ignored(clock):
    from control_plane.inference.breaker import CircuitBreaker

    breaker = CircuitBreaker(2, 2.0, clock=clock)
    old = [breaker.allow() for _ in range(4)]  # four calls out while closed
    breaker.record_failure(old[0])
    breaker.record_failure(old[1])
    assert breaker.state == OPEN and breaker.retry_after() == 2.0
    clock.advance(1.5)
    breaker.record_failure(old[2])  # a late failure does not restart the open period
    assert breaker.retry_after() == 0.5
    clock.advance(0.5)
    probe = breaker.allow()
    assert probe and breaker.state == HALF_OPEN
    breaker.record_failure(old[3])  # nor decide the half-open breaker in the probe's place
    assert breaker.state == HALF_OPEN
    breaker.record_success(probe)
    assert breaker.state == CLOSED
