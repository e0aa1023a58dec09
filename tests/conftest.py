"""Shared fixtures: the real model files in ../shared/models, repositories laid out from them and the embedded
Triton serving them (one server per session and pack)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from face_analysis.packs.manifest import PackManifest, load_manifest
from face_analysis.repository.build import build_repository
from face_analysis.server import EmbeddedTriton, free_port
from tests.genderage_model import build_genderage

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_models() -> Path:
    folder = Path(os.environ.get("FACE_ANALYSIS_SHARED_MODELS", ROOT.parent / "shared" / "models"))
    if not (folder / "det_500m.onnx").is_file():
        pytest.fail(f"the test model files are missing from {folder} (set FACE_ANALYSIS_SHARED_MODELS)")
    return folder


@pytest.fixture(scope="session")
def test_pack() -> PackManifest:
    return load_manifest("test")


@pytest.fixture(scope="session")
def attr_pack_dir(tmp_path_factory, shared_models) -> Path:
    """The test pack plus a genderage-signature model with seeded weights (see tests/genderage_model.py)."""
    folder = tmp_path_factory.mktemp("attr_pack")
    for name in ("det_500m.onnx", "mobilefacenet.onnx"):
        shutil.copyfile(shared_models / name, folder / name)
    build_genderage(folder / "genderage.onnx")
    return folder


@pytest.fixture(scope="session")
def attr_pack(test_pack) -> PackManifest:
    d = json.loads((ROOT / "face_analysis/packs/builtin/test.json").read_text())
    d["name"] = "test_attributes"
    d["source"] = {}
    d["attributes"] = {
        "file": "genderage.onnx",
        "input_size": [96, 96],
        "colour": "RGB",
        "mean": [127.5] * 3,
        "std": [128.0] * 3,
    }
    return PackManifest.from_dict(d)


def _serving(repo: Path, tmp_path_factory, name: str):
    server = EmbeddedTriton(repo, free_port(), free_port(), free_port(), work_dir=tmp_path_factory.mktemp(name))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def test_repository(tmp_path_factory, test_pack, shared_models) -> Path:
    return build_repository(test_pack, shared_models, tmp_path_factory.mktemp("repo") / "model_repository")


@pytest.fixture
def own_triton(test_repository, tmp_path):
    """A Triton of its own for one test (to stop, restart, or stand beside the shared one)."""
    server = EmbeddedTriton(test_repository, free_port(), free_port(), free_port(), work_dir=tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def triton(test_repository, tmp_path_factory):
    """The embedded Triton serving the test pack."""
    yield from _serving(test_repository, tmp_path_factory, "triton")


@pytest.fixture(scope="session")
def attr_repository(tmp_path_factory, attr_pack, attr_pack_dir) -> Path:
    return build_repository(attr_pack, attr_pack_dir, tmp_path_factory.mktemp("attr_repo") / "model_repository")


@pytest.fixture(scope="session")
def attr_triton(attr_repository, tmp_path_factory):
    """A second embedded Triton serving the test pack plus the seeded genderage model."""
    yield from _serving(attr_repository, tmp_path_factory, "attr_triton")


@pytest.fixture(scope="session")
def client(triton):
    from face_analysis.client import FaceAnalysisClient

    with FaceAnalysisClient(triton.grpc_url) as c:
        yield c
