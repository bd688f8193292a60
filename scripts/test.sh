#!/usr/bin/env bash
# Run Hyac's test suite (after scripts/setup.sh). Extra arguments go to pytest.
# HYAC_STRICT_SKIPS=1 (as .ci/run sets it): a skip not in tests/allowed_skips.txt fails.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest "$@"
