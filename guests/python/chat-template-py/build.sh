#!/usr/bin/env bash
# Build the Python chat-template adapter with componentize-py (pinned in
# ../requirements.txt; `make adapters` installs it into .venv-adapters/).
# Usage: build.sh [OUT.wasm]   (default: guests/out/chat-template-py.wasm)
# ADAPTER_DIR=DIR builds the Python adapter in DIR instead (same steps);
# WIT_DIR=DIR builds against another contract (default wit/0.2, lmhost:adapter@0.2.0).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${1:-$root/guests/out/chat-template-py.wasm}"
cpy="${COMPONENTIZE_PY:-$root/.venv-adapters/bin/componentize-py}"
if ! command -v "$cpy" >/dev/null 2>&1; then
    echo "componentize-py not found at $cpy: run \`make adapters\` (or pip install componentize-py==0.25.1 and set COMPONENTIZE_PY)" >&2
    exit 1
fi
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
cd "${ADAPTER_DIR:-$here}"
"$cpy" -d "${WIT_DIR:-$root/wit/0.2}" -w adapter componentize -p . app -o "$out.part"
mv "$out.part" "$out"
echo "built $out"
