#!/usr/bin/env bash
# Make the gvisor sandbox usable on this host: install gVisor's runsc (Debian's package)
# if it is missing, pick the fastest platform that runs here (kvm, else systrap, else
# ptrace: each is tried), and register runsc with Docker as two runtimes in
# /etc/docker/daemon.json (`runsc` with gVisor's own --network=none, `runsc-egress` for
# tenants with egress), then reload dockerd (SIGHUP: running containers are untouched).
# Needs Docker (scripts/setup-docker.sh). Idempotent; takes up to ~20 s where /dev/kvm
# exists but cannot run a guest (the kvm trial waits that long).
set -euo pipefail

cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v runsc >/dev/null 2>&1; then
    echo "setup-gvisor: installing runsc"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends runsc
fi
if ! docker info >/dev/null 2>&1; then
    echo "setup-gvisor: Docker is not running; run scripts/setup-docker.sh first" >&2
    exit 1
fi
as_root "$PY" -W ignore::RuntimeWarning -m hyac_agent.sandbox.gvisor setup
