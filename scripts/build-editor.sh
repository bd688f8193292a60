#!/usr/bin/env bash
# Rebuild the console editor's CodeMirror bundle, hyac_agent/console/static/vendor/codemirror.js,
# from hyac_agent/console/editor-src (package.json + package-lock.json: exact versions), the
# same bytes on every machine with Node 20+.
#
#   scripts/build-editor.sh           # rebuild the committed bundle
#   scripts/build-editor.sh --check   # exit 1 if the committed bundle differs from a rebuild
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
src="$here/hyac_agent/console/editor-src"
bundle="$here/hyac_agent/console/static/vendor/codemirror.js"
command -v npm >/dev/null || { echo "npm is missing: install Node.js 20 (apt-get install nodejs npm)" >&2; exit 3; }
cd "$src"
# esbuild's postinstall only checks its platform binary, which npm installs as a package.
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2
out="$bundle"
if [[ "${1:-}" == "--check" ]]; then
  out="$(mktemp --suffix=.js)"
  trap 'rm -f "$out"' EXIT
fi
./node_modules/.bin/esbuild entry.js --bundle --format=esm --minify --legal-comments=eof \
  --target=es2020 --charset=utf8 --log-level=warning --outfile="$out"
if [[ "${1:-}" == "--check" ]]; then
  if ! cmp -s "$out" "$bundle"; then
    echo "$bundle differs from a rebuild: run scripts/build-editor.sh and commit it" >&2
    exit 1
  fi
  echo "the editor bundle matches a rebuild"
fi
