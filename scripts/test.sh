#!/usr/bin/env bash
# Set up gpupool with its test tools, then run the whole test suite (no GPU needed).
# Extra arguments go to pytest, e.g. `scripts/test.sh -k store -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
exec .venv/bin/python -m pytest "$@"
