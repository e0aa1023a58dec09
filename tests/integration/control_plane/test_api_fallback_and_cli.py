"""The fallback Triton taking over from a dead primary, and `face-api keys` managing keys in the real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from face_analysis.server import free_port
from tests.images import t1_path
from tests.redis_helpers import SHARED_URL, delete_prefix, unique_prefix

pytestmark = pytest.mark.integration


async def test_fallback_serves_while_the_primary_is_down(make_api, attr_triton):
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    api = await make_api(triton_url=dead, triton_fallback_url=attr_triton.grpc_url, breaker_failures=1)
    key = await api.new_key()
    t1 = t1_path().read_bytes()
    r = await api.client.post("/v1/faces/detect", files={"image": ("t1.jpg", t1)}, headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    assert r.json()["pack"] == "test_attributes"  # labelled with the pack that answered
    ready = (await api.client.get("/health/ready")).json()
    assert ready["status"] == "degraded"
    assert ready["checks"]["triton"]["primary"]["ready"] is False
    assert ready["checks"]["triton"]["primary"]["breaker"] == "open"
    assert ready["checks"]["triton"]["fallback"] == {
        "ready": True,
        "breaker": "closed",
        "pack": "test_attributes",
        "url": attr_triton.grpc_url,
    }


def test_keys_cli_against_redis():
    prefix = unique_prefix()
    env = {**os.environ, "FACE_API_REDIS_URL": SHARED_URL, "FACE_API_REDIS_PREFIX": prefix}
    cli = [sys.executable, "-m", "control_plane.cli", "keys"]

    def run(*args):
        return subprocess.run(cli + list(args), env=env, capture_output=True, text=True, timeout=60)

    try:
        created = run("create", "--name", "mobile", "--scopes", "detect,compare", "--tier", "free")
        assert created.returncode == 0, created.stderr
        key = json.loads(created.stdout)
        assert key["secret"].startswith("fa_") and key["scopes"] == ["detect", "compare"]
        listed = json.loads(run("list").stdout)
        assert [k["id"] for k in listed] == [key["id"]] and "secret" not in listed[0]
        assert key["secret"] not in run("list").stdout
        assert run("revoke", key["id"]).returncode == 0
        assert json.loads(run("list").stdout)[0]["revoked"] is True
        assert run("revoke", "nope").returncode == 1
    finally:
        delete_prefix(SHARED_URL, prefix)
    no_redis = subprocess.run(
        cli + ["list"], env={**os.environ, "FACE_API_REDIS_URL": ""}, capture_output=True, text=True, timeout=60
    )
    assert no_redis.returncode != 0 and "/v1/admin/keys" in no_redis.stderr
