#!/usr/bin/env bash
# Run Hyac's test suite (after scripts/setup.sh). Extra arguments go to pytest.
# HYAC_STRICT_SKIPS=1 (as .ci/run sets it): a skip not in tests/allowed_skips.txt fails.
# Test files run in parallel, each whole on one worker process (pytest-xdist): most tests
# wait on sandboxes, containers and servers rather than on the CPU. HYAC_TEST_WORKERS
# says how many (default 3); HYAC_TEST_WORKERS=0 runs every test in this one process,
# one after another (for --pdb, or to read a test's output as it runs).
set -euo pipefail
cd "$(dirname "$0")/.."
workers="${HYAC_TEST_WORKERS:-3}"
if [[ ! "$workers" =~ ^[0-9]+$ ]]; then
  echo "test.sh: HYAC_TEST_WORKERS must be a number of processes (0: none), not '$workers'" >&2
  exit 2
fi
if [[ "$workers" == 0 ]]; then
  exec .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python -m pytest -n "$workers" --dist loadfile "$@"
