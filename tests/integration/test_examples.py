"""The documented entry points run as written: the example client and the `face-analysis analyze` command."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.images import skimage_image, t1_path

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("concurrency", ["1", "4"])
def test_example_client(triton, concurrency, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 cut short")
    out = _run(
        "examples/analyze_images.py",
        "--url",
        triton.grpc_url,
        "--concurrency",
        concurrency,
        str(t1_path()),
        str(skimage_image("coffee.png")),
        str(broken),
    )
    assert f"{t1_path()}: 6 face(s)" in out
    assert "coffee.png: 0 face(s)" in out
    assert "broken.jpg: invalid_image" in out


def test_cli_analyze_json(triton):
    out = _run("-m", "face_analysis.cli", "analyze", "--url", triton.grpc_url, "--json", str(t1_path()))
    doc = json.loads(out)
    assert doc["pack"] == "test" and len(doc["faces"]) == 6
    assert all(len(f["landmarks"]) == 5 and f["gender"] is None for f in doc["faces"])
