#!/usr/bin/env bash
# The main job on the embedded default: sets up .venv, lays out the Triton repository from the test pack
# (../shared/models), starts the embedded CPU Triton and the REST API on http://127.0.0.1:8080 together, until Ctrl-C.
# Without FACE_API_REDIS_URL, keys, limits, usage and the cache live in memory; the admin token for creating the
# first key is written to build/admin-token. Extra arguments go to `face-api serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
. .venv/bin/activate
exec face-api serve --embedded-triton --pack "${FACE_ANALYSIS_PACK:-test}" "$@"
