"""The Helm binary and a renderer for the chart in helm/face-analysis (no cluster: `helm template`)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "face-analysis"
CI_VALUES = CHART / "ci"
HELM_CANDIDATES = (ROOT / ".venv" / "bin" / "helm", Path("/tmp/helmpkg/t/layer/helm/helm"))
RELEASE = "fa"
NAMESPACE = "face"
# the Kubernetes version manifests are validated against (Helm 4.1's client version)
KUBE_VERSION = "1.35.0"

# value sets: the default (values.yaml alone) and each file in ci/
VALUE_SETS = {
    "default": [],
    "cpu": [CI_VALUES / "cpu-values.yaml"],
    "external-redis": [CI_VALUES / "external-redis-values.yaml"],
    "direct-grpc": [CI_VALUES / "direct-grpc-values.yaml"],
}


@dataclass
class Rendered:
    docs: list[dict]

    def of_kind(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> dict:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}: {[d['kind'] for d in self.docs]}"
        return found[0]

    def maybe(self, kind: str, name: str) -> dict | None:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        return found[0] if found else None


def find_helm() -> Path:
    for path in HELM_CANDIDATES:
        if path.is_file():
            return path
    pytest.fail(
        "no helm binary: expected one of " + ", ".join(map(str, HELM_CANDIDATES)) + " (scripts/setup_env.sh installs "
        ".venv/bin/helm)",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def helm() -> Path:
    return find_helm()


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def template_args(value_files=(), sets=(), set_strings=(), set_jsons=()) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for f in value_files:
        args += ["-f", str(f)]
    for s in sets:
        args += ["--set", s]
    for s in set_strings:
        args += ["--set-string", s]
    for s in set_jsons:
        args += ["--set-json", s]
    return args


@pytest.fixture(scope="session")
def render(helm):
    """render(value_files=..., sets=..., set_strings=..., set_jsons=...) -> Rendered; fails the test on a helm error."""

    def _render(value_files=(), sets=(), set_strings=(), set_jsons=()) -> Rendered:
        proc = run_helm(helm, *template_args(value_files, sets, set_strings, set_jsons))
        assert proc.returncode == 0, f"helm template failed:\n{proc.stderr}"
        docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
        assert docs, "helm template rendered nothing"
        return Rendered(docs)

    return _render


@pytest.fixture(scope="session")
def render_fails(helm):
    """render_fails(...) -> helm's stderr; fails the test when helm template succeeds."""

    def _render_fails(value_files=(), sets=(), set_strings=(), set_jsons=()) -> str:
        proc = run_helm(helm, *template_args(value_files, sets, set_strings, set_jsons))
        assert proc.returncode != 0, "helm template accepted values it should refuse"
        return proc.stderr

    return _render_fails


@pytest.fixture(scope="session")
def rendered_sets(render) -> dict[str, Rendered]:
    """Each value set rendered once per session."""
    return {name: render(files) for name, files in VALUE_SETS.items()}
