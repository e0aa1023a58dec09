"""Images are never written to disk: uploads above Starlette's 1 MB spooling threshold stay in memory.

An audit hook sees every file the process opens for writing while the requests run (a temporary file made with
O_TMPFILE has no name in any folder, so looking at folders afterwards would prove nothing)."""

from __future__ import annotations

import base64
import os
import sys

import cv2
import pytest

from tests.images import encode, t1_path

pytestmark = pytest.mark.integration

_WRITES: list | None = None  # set while a test listens; audit hooks cannot be removed once added


def _hook(event: str, args: tuple) -> None:
    if _WRITES is None:
        return
    if event == "open":
        path, mode, flags = args
        writing = (mode is not None and any(c in mode for c in "wax+")) or (
            flags is not None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        )
        if writing:
            _WRITES.append(path)
    elif event == "tempfile.mkstemp" or event == "tempfile.mkdtemp":
        _WRITES.append(args[0])


sys.addaudithook(_hook)


async def test_large_uploads_open_no_file_for_writing(api):
    global _WRITES
    key = await api.new_key()
    big = encode(cv2.resize(cv2.imread(str(t1_path())), None, fx=2.5, fy=2.5), ".png")  # a real photo, MBs
    assert len(big) > 3 * 1024 * 1024
    _WRITES = []
    try:
        r = await api.client.post("/v1/faces/detect", files={"image": ("big.png", big)}, headers={"X-API-Key": key})
        assert r.status_code == 200 and r.json()["face_count"] == 6, r.text
        r = await api.client.post(
            "/v1/faces/batch",
            json={"images": [base64.b64encode(big).decode(), base64.b64encode(big[:1000]).decode()]},
            headers={"X-API-Key": key},
        )
        assert r.status_code == 200 and [x["ok"] for x in r.json()["results"]] == [True, False]
        writes = list(_WRITES)
    finally:
        _WRITES = None
    assert writes == []


def test_the_hook_sees_a_spooled_upload():
    """The check above would catch Starlette's spooling: a rolled-over SpooledTemporaryFile is seen."""
    global _WRITES
    import tempfile

    _WRITES = []
    try:
        with tempfile.SpooledTemporaryFile(max_size=1024) as f:
            f.write(b"x" * 4096)
        writes = list(_WRITES)
    finally:
        _WRITES = None
    assert writes
