"""Concurrent asyncio callers get exactly what sequential calls get, although Triton batches their faces."""

import asyncio

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from face_analysis.client import AsyncFaceAnalysisClient, EnsembleError
from tests.images import encode, face_mosaic, skimage_image, t1_path
from tests.integration.helpers import read

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def images(client):
    t1 = read(t1_path())
    return {
        "t1": t1_path().read_bytes(),
        "astronaut": skimage_image("astronaut.png").read_bytes(),
        "coffee": skimage_image("coffee.png").read_bytes(),
        "camera": skimage_image("camera.png").read_bytes(),
        "crowd": encode(face_mosaic([(t1, client.analyze(encode(t1)).boxes)], 24)),
        "broken": b"\xff\xd8\xff\xe0 not really a jpeg",
    }


def _outcome(result_or_error):
    if isinstance(result_or_error, EnsembleError):
        return result_or_error.code
    return result_or_error


async def test_sixteen_concurrent_clients_get_the_sequential_answers(triton, client, images):
    names = list(images)
    expected = {}
    for name in names:
        try:
            expected[name] = client.analyze(images[name])
        except EnsembleError as exc:
            expected[name] = exc

    async def worker(k: int):
        out = []
        async with AsyncFaceAnalysisClient(triton.grpc_url) as aclient:
            for r in range(3):
                name = names[(k + r) % len(names)]
                try:
                    out.append((name, await aclient.analyze(images[name])))
                except EnsembleError as exc:
                    out.append((name, exc))
        return out

    def counts(model):
        stats = grpcclient.InferenceServerClient(triton.grpc_url).get_inference_statistics(model, as_json=True)
        s = stats["model_stats"][0]
        return int(s["inference_stats"]["success"]["count"]), int(s["execution_count"])

    models = ("detector", "embedder")
    before = {m: counts(m) for m in models}
    results = await asyncio.gather(*(worker(k) for k in range(16)))
    for model in models:
        requests, executions = (after - b for after, b in zip(counts(model), before[model]))
        print(f"{model}: {requests} requests in {executions} runs")
        # Triton merged requests from different callers into one run at least once
        assert executions < requests, model
    seen = set()
    for name, got in (pair for worker_results in results for pair in worker_results):
        seen.add(name)
        want = expected[name]
        if isinstance(want, EnsembleError):
            assert isinstance(got, EnsembleError) and got.code == want.code
            continue
        assert len(got) == len(want)
        np.testing.assert_array_equal(got.boxes, want.boxes)
        np.testing.assert_array_equal(got.scores, want.scores)
        np.testing.assert_array_equal(got.landmarks, want.landmarks)
        np.testing.assert_allclose(got.embeddings, want.embeddings, atol=1e-5)
    assert seen == set(names)
