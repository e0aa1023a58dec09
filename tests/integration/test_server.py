"""The embedded server's lifecycle: clear failures, clean stops, no orphan processes."""

import socket
from pathlib import Path

import pytest

from face_analysis.repository.build import build_repository
from face_analysis.server import EmbeddedTriton, TritonStartError, free_port

pytestmark = pytest.mark.integration


def _process_group(pgid: int) -> list[int]:
    """Live (not zombie) processes in a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":  # pgrp; state
                members.append(int(entry.name))
    return members


def test_stop_leaves_no_process_behind(test_repository, tmp_path):
    server = EmbeddedTriton(test_repository, free_port(), free_port(), free_port(), work_dir=tmp_path)
    server.start()
    pgid = server._proc.pid
    assert len(_process_group(pgid)) >= 2  # the server and its Python-backend stubs
    server.stop()
    assert _process_group(pgid) == []
    assert not server.running()


def test_a_taken_port_is_named(test_repository, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        server = EmbeddedTriton(test_repository, free_port(), taken, free_port(), work_dir=tmp_path)
        with pytest.raises(TritonStartError, match=f"{taken}.*already in use"):
            server.start()


def test_a_model_that_fails_to_load_is_reported(test_pack, shared_models, tmp_path):
    repo = build_repository(test_pack, shared_models, tmp_path / "repo")
    target = repo / "embedder" / "1" / "model.onnx"
    target.unlink()
    target.write_bytes(b"not an onnx file")
    server = EmbeddedTriton(repo, free_port(), free_port(), free_port(), work_dir=tmp_path, startup_timeout=120)
    with pytest.raises(TritonStartError) as err:
        server.start()
    assert "failed to load 'embedder'" in str(err.value)
    assert "model.onnx failed" in str(err.value)  # the cause, not just the symptom
    assert not server.running()


def test_a_client_of_a_server_that_is_down_gets_inference_unavailable():
    from face_analysis.client import EnsembleError, FaceAnalysisClient

    with FaceAnalysisClient(f"127.0.0.1:{free_port()}", timeout_s=5) as client:
        assert not client.ready()
        with pytest.raises(EnsembleError) as err:
            client.analyze(b"\xff\xd8\xff")
    assert err.value.code == "inference_unavailable" and not err.value.is_client_error
