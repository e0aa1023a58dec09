#!/usr/bin/env bash
# The main job on the embedded default: sets up .venv, lays out the Triton repository from the test pack
# (../shared/models), starts the embedded CPU Triton, answers one request with the example client, then serves
# gRPC on 127.0.0.1:8001 (HTTP 8000, metrics 8002) until Ctrl-C. Extra arguments go to `face-analysis serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
. .venv/bin/activate
SAMPLE=$(python -c 'import insightface, os; print(os.path.join(os.path.dirname(insightface.__file__), "data/images/t1.jpg"))')
exec face-analysis serve --pack "${FACE_ANALYSIS_PACK:-test}" --example "$SAMPLE" "$@"
