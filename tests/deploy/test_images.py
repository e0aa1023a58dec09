"""The container images without a Docker engine: hadolint and shellcheck, the structure that matters (non-root,
health checks, ports, what is copied), that each image's Python dependencies suffice, and the Triton image's
entrypoint run for real, with the embedded tritonserver binary standing in for the NGC image's."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from face_analysis.server import free_port, prepare_backends, pytriton_dir
from tests.images import t1_path

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
ENTRYPOINT = DOCKER / "triton-entrypoint.sh"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    assert path.is_file(), f"{name} is missing from the virtual environment: run scripts/setup_env.sh"
    return str(path)


@pytest.mark.parametrize("dockerfile", sorted(DOCKER.glob("*.Dockerfile")), ids=lambda p: p.name)
def test_hadolint_passes(dockerfile):
    run = subprocess.run([_tool("hadolint"), str(dockerfile)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_shell_scripts_pass_shellcheck():
    scripts = [ENTRYPOINT, *sorted((ROOT / "scripts").glob("*.sh"))]
    run = subprocess.run([_tool("shellcheck"), "-S", "warning", *map(str, scripts)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def _parse(name: str) -> DockerfileParser:
    parser = DockerfileParser(path=str(DOCKER / name))  # reads the file; writes nothing unless its setters are used
    return parser


def _last_stage(parser: DockerfileParser) -> list[dict]:
    stages, current = [], []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            current = []
            stages.append(current)
        current.append(instruction)
    return stages[-1]


def _instructions(stage, kind: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == kind]


@pytest.mark.parametrize("name", ["control-plane.Dockerfile", "triton.Dockerfile"])
def test_images_run_unprivileged_with_a_health_check(name):
    stage = _last_stage(_parse(name))
    users = _instructions(stage, "USER")
    assert users and users[-1].split(":")[0] not in {"0", "root"}, "the image must not run as root"
    assert _instructions(stage, "HEALTHCHECK"), "no HEALTHCHECK"


def test_control_plane_image_is_multi_stage_and_checks_health():
    parser = _parse("control-plane.Dockerfile")
    assert sum(1 for i in parser.structure if i["instruction"] == "FROM") >= 2
    stage = _last_stage(parser)
    assert "/health'" in _instructions(stage, "HEALTHCHECK")[0]
    env = " ".join(_instructions(stage, "ENV"))
    assert "FACE_API_HOST=0.0.0.0" in env and "FACE_API_PORT=8080" in env
    assert _instructions(stage, "EXPOSE") == ["8080"]
    # only the build stage sees the sources; the runtime copies the finished environment
    assert all("--from=build" in c for c in _instructions(stage, "COPY"))
    assert '"face-api", "serve"' in _instructions(stage, "CMD")[0]


def test_triton_image_serves_the_documented_ports_through_the_entrypoint():
    stage = _last_stage(_parse("triton.Dockerfile"))
    assert _instructions(stage, "EXPOSE") == ["8000 8001 8002"]
    assert "triton-entrypoint.sh" in _instructions(stage, "ENTRYPOINT")[0]
    assert "/v2/health/ready" in _instructions(stage, "HEALTHCHECK")[0]
    assert any("/var/cache/face-analysis/trt" in v for v in _instructions(stage, "VOLUME"))


@pytest.mark.parametrize("name", ["control-plane.Dockerfile", "triton.Dockerfile"])
def test_everything_copied_exists_and_no_weights_are(name):
    for instruction in _parse(name).structure:
        if instruction["instruction"] != "COPY" or "--from=" in instruction["value"]:
            continue
        sources = [s for s in instruction["value"].split()[:-1] if not s.startswith("--")]
        for src in sources:
            path = ROOT / src
            assert path.exists(), f"{name} copies {src}, which is not in the repository"
            weights = list(path.rglob("*.onnx")) if path.is_dir() else [path] if path.suffix == ".onnx" else []
            assert not weights, f"{name} would copy model weights into the image: {weights}"


# Modules the images do not install: the control-plane image has `.[api]`, the Triton image the core dependencies.
_TEST_ONLY = ["pytriton", "insightface", "skimage", "scipy", "pytest", "httpx", "requests"]
_API_ONLY = ["fastapi", "starlette", "uvicorn", "redis", "pydantic", "pydantic_settings", "prometheus_client"]


def _import_without(blocked: list[str], code: str) -> subprocess.CompletedProcess:
    guard = textwrap.dedent(
        f"""
        import importlib.abc, sys
        BLOCKED = {blocked!r}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"{{name}} is not installed in this image")
        sys.meta_path.insert(0, Block())
        """
    )
    return subprocess.run([sys.executable, "-c", guard + code], capture_output=True, text=True, cwd=ROOT)


def test_control_plane_image_needs_no_test_or_embedded_packages():
    run = _import_without(_TEST_ONLY, "import control_plane.app, control_plane.cli; control_plane.app.create_app")
    assert run.returncode == 0, run.stderr


def test_triton_image_needs_no_control_plane_packages():
    code = textwrap.dedent(
        """
        import runpy, face_analysis.cli, face_analysis.repository.build
        for step in ("preprocess", "align", "postprocess", "onnx_cpu"):
            runpy.run_path(f"model_repository/{step}/model.py", run_name="step")
        """
    )
    blocked = _TEST_ONLY + _API_ONLY
    # triton_python_backend_utils exists only inside the Python backend: the steps import it lazily or guard it
    stub = "import sys, types; sys.modules['triton_python_backend_utils'] = types.ModuleType('pb')\n"
    run = _import_without(blocked, stub + code)
    assert run.returncode == 0, run.stderr


# --- the Triton entrypoint, run for real ---------------------------------------------------------------------


def _write_exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture()
def fake_bin(tmp_path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    return folder


def _entrypoint_env(tmp_path, fake_bin: Path, shared_models: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACE_ANALYSIS_", "TRITON_", "ENGINE_"))}
    env.update(
        PATH=os.pathsep.join([str(fake_bin), str(BIN), env["PATH"]]),
        FACE_ANALYSIS_PACK="test",
        FACE_ANALYSIS_PACK_DIR=str(shared_models),
        FACE_ANALYSIS_MODELS_DIR=str(tmp_path / "packs"),
        FACE_ANALYSIS_REPOSITORY=str(tmp_path / "repository"),
        ENGINE_CACHE_ROOT=str(tmp_path / "trt"),
    )
    env.update(extra)
    return env


def _recording_tritonserver(fake_bin: Path, record: Path) -> None:
    _write_exe(fake_bin / "tritonserver", f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')


def test_entrypoint_gpu_target_keys_the_engine_cache_by_gpu_and_tensorrt(tmp_path, fake_bin, shared_models):
    record = tmp_path / "args"
    _recording_tritonserver(fake_bin, record)
    _write_exe(fake_bin / "nvidia-smi", '#!/bin/sh\necho "NVIDIA H100 80GB HBM3, 9.0"\n')
    env = _entrypoint_env(tmp_path, fake_bin, shared_models, TRT_VERSION="10.5.0.18")
    run = subprocess.run([str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    args = record.read_text().splitlines()
    assert f"--model-repository={tmp_path / 'repository'}" in args
    assert not [a for a in args if a.startswith("--model-config-name")], "the GPU target uses config.pbtxt"
    cache = tmp_path / "trt" / "NVIDIA_H100_80GB_HBM3-sm9_0-trt10_5_0_18"
    assert cache.is_dir()
    detector = (tmp_path / "repository" / "detector" / "config.pbtxt").read_text()
    assert f'"{cache}/detector"' in detector


def test_entrypoint_cpu_target_selects_the_cpu_configs_and_prebuilt_skips_the_build(tmp_path, fake_bin, shared_models):
    record = tmp_path / "args"
    _recording_tritonserver(fake_bin, record)
    env = _entrypoint_env(tmp_path, fake_bin, shared_models, FACE_ANALYSIS_TARGET="cpu", FACE_ANALYSIS_PREBUILT="1")
    run = subprocess.run([str(ENTRYPOINT), "serve", "--log-verbose=1"], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    args = record.read_text().splitlines()
    assert "--model-config-name=cpu" in args and args[-1] == "--log-verbose=1"
    assert not (tmp_path / "repository").exists(), "FACE_ANALYSIS_PREBUILT=1 must not lay out a repository"


def test_entrypoint_refuses_an_unknown_target(tmp_path, fake_bin, shared_models):
    env = _entrypoint_env(tmp_path, fake_bin, shared_models, FACE_ANALYSIS_TARGET="tpu")
    run = subprocess.run([str(ENTRYPOINT)], env=env, capture_output=True, text=True)
    assert run.returncode == 2 and "gpu or cpu" in run.stderr


@pytest.mark.integration
def test_entrypoint_serves_the_ensemble_on_the_cpu_target(tmp_path, fake_bin, shared_models):
    """The image's start path end to end: build from the pack, start tritonserver with the entrypoint's arguments
    (here the pytriton binary, given the backend folder that the NGC image has built in), analyse t1.jpg."""
    from face_analysis.client import FaceAnalysisClient

    backends = prepare_backends(tmp_path / "backends")
    binary = pytriton_dir() / "bin" / "tritonserver"
    _write_exe(fake_bin / "tritonserver", f'#!/bin/sh\nexec {binary} --backend-directory={backends} "$@"\n')
    http, grpc, metrics = free_port(), free_port(), free_port()
    env = _entrypoint_env(
        tmp_path,
        fake_bin,
        shared_models,
        FACE_ANALYSIS_TARGET="cpu",
        FACE_ANALYSIS_CPU_THREADS="1",
        TRITON_HTTP_PORT=str(http),
        TRITON_GRPC_PORT=str(grpc),
        TRITON_METRICS_PORT=str(metrics),
    )
    log = open(tmp_path / "triton.log", "wb")
    proc = subprocess.Popen([str(ENTRYPOINT)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with FaceAnalysisClient(f"127.0.0.1:{grpc}") as client:
            deadline = time.monotonic() + 180
            while True:
                assert proc.poll() is None, (tmp_path / "triton.log").read_text()[-3000:]
                try:
                    if client.ready():
                        break
                except Exception:  # noqa: BLE001 - not listening yet
                    pass
                assert time.monotonic() < deadline, "not ready in 180 s"
                time.sleep(0.5)
            result = client.analyze(t1_path().read_bytes())
            assert len(result.faces) == 6
            assert client.pack_info().pack == "test"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    shutil.rmtree(tmp_path / "repository", ignore_errors=True)
