#!/usr/bin/env bash
# Set up Hyac from this checkout and run the five-minute tour on the embedded default:
# a local agent (SQLite, bubblewrap sandbox), a new project, a deploy and an invoke.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
    # The newest Python 3.10+, one with tarfile's extraction filters (3.10.12+, 3.11.4+)
    # first: without them the agent refuses .tar.gz sdists.
    for wanted in 'hasattr(tarfile, "data_filter")' True; do
        for candidate in python3.13 python3.12 python3.11 python3.10 python3; do
            if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c \
                "import sys, tarfile; sys.exit(sys.version_info < (3, 10) or not $wanted)" 2>/dev/null; then
                PYTHON="$(command -v "$candidate")"
                break 2
            fi
        done
    done
fi
[ -n "$PYTHON" ] || { echo "Hyac needs Python 3.10 or newer" >&2; exit 1; }
"$PYTHON" -c 'import tarfile; tarfile.data_filter' 2>/dev/null ||
    echo "setup: $("$PYTHON" -V) has no tarfile extraction filters (3.10.12+, 3.11.4+): the agent" \
         "will refuse .tar.gz sdists of direct-URL requirements (wheels and .zip sdists work)" >&2

# pip trusts the host's CAs, as the agent's installers do: SSL_CERT_FILE or
# REQUESTS_CA_BUNDLE where set, else the system's bundle (where a TLS-inspecting proxy's
# CA is added). Older pips would trust only the CAs they bundle. A PIP_CERT set wins.
if [ -z "${PIP_CERT:-}" ]; then
    system_ca="$("$PYTHON" -c 'import ssl; print(ssl.get_default_verify_paths().cafile or "")')"
    for ca in "${SSL_CERT_FILE:-}" "${REQUESTS_CA_BUNDLE:-}" "$system_ca"; do
        if [ -f "$ca" ]; then export PIP_CERT="$ca"; break; fi
    done
fi

if ! command -v bwrap >/dev/null 2>&1 || ! command -v iptables >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing bubblewrap (the sandbox) and iptables (per-tenant networks)"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap iptables iproute2 >/dev/null
    elif ! command -v bwrap >/dev/null 2>&1; then
        echo "Hyac runs functions in bubblewrap: install it (e.g. 'sudo apt-get install bubblewrap')" >&2
        exit 1
    fi
fi

say "installing Hyac into .venv (with $PYTHON)"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[test]"

export PATH="$PWD/.venv/bin:$PATH"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ -z "${HYAC_SETUP_MINIMAL:-}" ]; then
    # As root on Debian/Ubuntu, everything the full test suite talks to, so that
    # scripts/test.sh runs with nothing skipped (HYAC_SETUP_MINIMAL=1 skips this part).
    # The kernel's system call headers: a test checks the seccomp table's numbers against them.
    dpkg -s linux-libc-dev >/dev/null 2>&1 || { apt-get update -qq >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-libc-dev >/dev/null; } ||
        echo "setup: linux-libc-dev is missing; the seccomp numbers test skips" >&2
    say "installing the other runtimes (Node.js, Deno, uv) and the services (PostgreSQL, Redis)"
    bash scripts/setup-runtimes.sh || echo "setup: the node20/deno runtimes are not complete (see above)" >&2
    bash scripts/services.sh
    say "setting up the docker sandbox backend (Docker, the runtime image built offline)"
    bash scripts/setup-docker.sh || echo "setup: the docker backend is not available; its tests skip, naming why" >&2
    say "setting up the gvisor sandbox backend (runsc, registered with Docker)"
    bash scripts/setup-gvisor.sh || echo "setup: the gvisor backend is not available; its tests skip, naming why" >&2
fi
say "starting the local agent (one left running by an earlier install is restarted, so it runs this code)"
hyac agent down >/dev/null 2>&1 || true
hyac agent up
hyac agent status

say "creating a project in ./demo and deploying it"
rm -rf demo
hyac init demo
cd demo
hyac deploy

say "invoking hello"
hyac invoke hello --data '{"name": "Hyac"}'

say "its logs"
hyac logs hello

cat <<'DONE'

Hyac is set up. Try:
  source .venv/bin/activate && cd demo
  hyac invoke hello --data '{"name": "you"}'
  hyac logs hello -f
  hyac agent down          # stop the local agent
DONE
