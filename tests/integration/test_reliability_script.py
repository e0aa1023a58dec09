"""scripts/reliability.py --quick end to end: it starts its own Triton, Redis and API, runs every section and
passes every verdict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

SECTIONS = [
    "## Machine and run",
    "## Verdicts",
    "## 1. Load",
    "## 2. Faults",
    "### (a) Triton crash",
    "### (b) Redis crash",
    "### (c) Nothing acknowledged is lost",
    "## 3. Abuse",
    "### (a) A flood of invalid keys",
    "### (b) Key-check timing",
    "### (c) No image bytes on disk",
    "### (d) Secrets and image data in the logs",
]


def test_reliability_quick(tmp_path):
    out, raw = tmp_path / "reliability.md", tmp_path / "reliability.json"
    cmd = [sys.executable, "scripts/reliability.py", "--quick", "--out", str(out), "--json", str(raw)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-4000:]

    report = out.read_text()
    for heading in SECTIONS:
        assert heading in report, heading
    assert "Command: `python scripts/reliability.py --quick" in report
    assert "**All verdicts pass.**" in report

    doc = json.loads(raw.read_text())
    for key in ("command", "facts", "load", "faults", "keys_and_usage", "flood", "timing", "disk", "logs"):
        assert key in doc, key
    assert doc["facts"]["machine"]["cores"] >= 1
    assert not [v for v in doc["verdicts"] if v["ok"] is False]
    assert doc["load"]["requests"] > 0 and doc["load"]["classes"].get("unexpected_5xx", 0) == 0
    assert doc["faults"]["triton"]["cached_during_outage"] > 0
    assert doc["faults"]["redis"]["answered_200_while_down"] > 0
    usage = doc["keys_and_usage"]["after the Redis restart"]
    assert usage["counted"] >= usage["acknowledged"] > 0
    assert all(v == 0 for v in doc["logs"]["leaks"].values())
