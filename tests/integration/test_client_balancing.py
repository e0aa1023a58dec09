"""The client spreads calls over every server its target resolves to (round robin), as the control plane does with
the Helm chart's headless Triton Service. Here two embedded Tritons behind one `ipv4:` target stand in for pods."""

from __future__ import annotations

import pytest
import tritonclient.grpc as grpcclient

from face_analysis.client import FaceAnalysisClient
from face_analysis.repository.configs import ENSEMBLE
from tests.images import t1_path

pytestmark = pytest.mark.integration


def _served(url: str) -> int:
    stats = grpcclient.InferenceServerClient(url).get_inference_statistics(ENSEMBLE, as_json=True)
    return int(stats["model_stats"][0]["inference_stats"]["success"].get("count", 0))


def test_calls_are_spread_over_every_resolved_server(triton, own_triton):
    urls = [triton.grpc_url, own_triton.grpc_url]
    before = [_served(u) for u in urls]
    with FaceAnalysisClient("ipv4:" + ",".join(urls)) as client:
        image = t1_path().read_bytes()
        for _ in range(12):
            assert len(client.analyze(image)) == 6
    served = [_served(u) - b for u, b in zip(urls, before)]
    assert sum(served) == 12
    assert min(served) >= 4, f"calls per server: {served}"  # round robin: 6 and 6; pick_first would give 12 and 0
