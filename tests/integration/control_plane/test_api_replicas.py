"""Two API processes (uvicorn, as deployed) sharing the real Redis: one key's limit holds exactly across both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from face_analysis.server import free_port
from tests.images import encode
from tests.redis_helpers import SHARED_URL, delete_prefix, unique_prefix

pytestmark = pytest.mark.integration
ADMIN = "replica-admin-token"
BURST = 6


@pytest.fixture
def replicas(triton, tmp_path):
    prefix = unique_prefix()
    env = {
        **os.environ,
        "FACE_API_TRITON_URL": triton.grpc_url,
        "FACE_API_REDIS_URL": SHARED_URL,
        "FACE_API_REDIS_PREFIX": prefix,
        "FACE_API_ADMIN_TOKEN": ADMIN,
        "FACE_API_RATE_TIERS": json.dumps({"tiny": {"burst": BURST, "per_minute": 0.01}}),
        "FACE_API_DEFAULT_TIER": "tiny",
    }
    procs, urls = [], []
    for i in range(2):
        port = free_port()
        log = open(tmp_path / f"api{i}.log", "wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "control_plane.cli", "serve", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        for url, proc in zip(urls, procs):
            while True:
                assert proc.poll() is None, (tmp_path / "api0.log").read_text()[-2000:]
                try:
                    if requests.get(url + "/health/ready", timeout=1).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline, "the API did not become ready"
                time.sleep(0.2)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=20)
        delete_prefix(SHARED_URL, prefix)


def test_limit_exact_across_two_processes(replicas):
    a, b = replicas
    r = requests.post(f"{a}/v1/admin/keys", json={"name": "shared", "tier": "tiny"}, headers={"X-API-Key": ADMIN})
    assert r.status_code == 201, r.text
    key = r.json()["secret"]
    png = encode(np.full((64, 64, 3), 90, np.uint8), ".png")

    def call(i: int) -> int:
        url = (a, b)[i % 2]
        return requests.post(
            f"{url}/v1/faces/detect", files={"image": ("x.png", png)}, headers={"X-API-Key": key}, timeout=30
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(call, range(BURST + 8)))
    assert codes.count(200) == BURST and codes.count(429) == 8, codes
    # the key made on replica a authenticates on replica b, and b's usage report sees both replicas' requests
    usage = requests.get(f"{b}/v1/usage", headers={"X-API-Key": key}, timeout=10).json()
    assert usage["totals"]["requests"] == BURST
