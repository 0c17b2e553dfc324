#!/usr/bin/env bash
# Build the JavaScript chat-template adapter with componentize-js (exact pins in
# package.json / package-lock.json; `make adapters` runs `npm ci` here).
# Usage: build.sh [OUT.wasm]   (default: guests/out/chat-template-js.wasm)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${1:-$root/guests/out/chat-template-js.wasm}"
cjs="$here/node_modules/.bin/componentize-js"
if [ ! -x "$cjs" ]; then
    echo "componentize-js not found at $cjs: run \`make adapters\` (or \`npm ci\` in $here)" >&2
    exit 1
fi
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
cd "$here"
# `-d http fetch-event`: the adapter gets no network, so leave out the HTTP feature.
"$cjs" --wit "$root/wit/0.2" --world-name adapter -d http fetch-event -o "$out.part" chat-template.js
mv "$out.part" "$out"
echo "built $out"
