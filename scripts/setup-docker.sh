#!/usr/bin/env bash
# Make the docker sandbox usable on this host: install Docker (Debian/Ubuntu, as root) if
# it is missing, start dockerd if it is not running, and build the runtime images without
# a registry: Python's (`hyac-agent images build`: debootstrap + docker import) and
# java17's (`--runtime java17`: Debian's JDK from its mirror on that base, ~1 min once).
# Idempotent: when everything is in place it only checks and exits within seconds.
set -euo pipefail

cd "$(dirname "$0")/.."
HYAC_AGENT="${HYAC_AGENT:-.venv/bin/hyac-agent}"
[ -x "$HYAC_AGENT" ] || HYAC_AGENT="$(command -v hyac-agent || true)"
if [ -z "$HYAC_AGENT" ]; then
    echo "setup-docker: hyac-agent is not installed (run scripts/setup.sh first)" >&2
    exit 1
fi

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup-docker: installing ${missing[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! docker info >/dev/null 2>&1; then
    echo "setup-docker: starting dockerd (log: /var/log/dockerd.log)"
    if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
        as_root systemctl start docker
    else
        as_root sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
    fi
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 0.5
    done
    docker info >/dev/null 2>&1 || { echo "setup-docker: dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
fi

as_root "$HYAC_AGENT" images build
as_root "$HYAC_AGENT" images build --runtime java17
echo "setup-docker: ready ($("$HYAC_AGENT" doctor --json | python3 -c 'import json,sys; d=json.load(sys.stdin)["sandbox"]; print(d["selected"], "-", d["why"])'))"
