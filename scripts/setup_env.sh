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
python - <<'PY'
import numpy, cv2, onnxruntime, tritonclient, pytriton  # noqa: F401 - fail here, not in the middle of a test
assert numpy.__version__.startswith("1."), "numpy 2 breaks the Triton Python-backend stub"
PY
