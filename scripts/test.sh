#!/usr/bin/env bash
# Sets up .venv, lints, and runs the whole test suite (unit + integration against the real embedded Triton and the
# model files in ../shared/models). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
. .venv/bin/activate
ruff check --quiet .
ruff format --check --quiet .
exec python -m pytest -p no:cacheprovider "$@"
