"""The README's promises: its curl examples run as written against `face-api serve --embedded-triton` (the main
job), and every setting the API reads is documented there."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from control_plane.core.settings import Settings
from face_analysis.server import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text()


def curl_block() -> str:
    marker = README.index("<!-- curl-examples")
    block = re.search(r"```bash\n(.*?)```", README[marker:], re.S)
    return block.group(1)


@pytest.fixture
def main_job(tmp_path, shared_models):
    port = free_port()
    token = tmp_path / "admin-token"
    cmd = [
        sys.executable, "-m", "control_plane.cli", "serve", "--embedded-triton", "--pack", "test",
        "--out", str(tmp_path / "repo"), "--port", str(port), "--admin-token-file", str(token),
        "--grpc-port", str(free_port()), "--http-port", str(free_port()), "--metrics-port", str(free_port()),
    ]  # fmt: skip
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if requests.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the main job did not become ready"
            time.sleep(0.3)
        yield port, token, tmp_path / "serve.log"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_curl_examples_run_as_written(main_job):
    port, token, log = main_job
    banner = log.read_text()
    assert "in memory" in banner and "/v1/admin/keys" in banner  # says so, and how to create the first key
    script = curl_block().replace("127.0.0.1:8080", f"127.0.0.1:{port}").replace("build/admin-token", str(token))
    script = script.replace("curl -s ", "curl -sS --fail-with-body ")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr + done.stdout[-2000:]
    answers, pos, decoder = [], 0, json.JSONDecoder()
    text = done.stdout
    while pos < len(text):  # curl prints the bodies back to back
        if text[pos].isspace():
            pos += 1
            continue
        value, pos = decoder.raw_decode(text, pos)
        answers.append(value)
    assert len(answers) == 6, text[-2000:]
    detect, analyze, compare, batch, usage, ready = answers
    assert detect["face_count"] == 6
    assert len(analyze["faces"][0]["embedding"]) == 128
    assert compare["match"] is True
    assert len(batch["similarity"]) == 12
    assert usage["totals"]["requests"] == 4
    assert ready["status"] == "ready"


def test_every_setting_is_documented():
    for name in Settings.model_fields:
        assert f"FACE_API_{name.upper()}" in README, f"FACE_API_{name.upper()} is not in the README"
