#!/usr/bin/env bash
# Build {{name}}.wasm with componentize-js (`npm install` here first; set
# COMPONENTIZE_JS to use another one). The adapter gets no network: `-d http fetch-event`.
set -euo pipefail
cd "$(dirname "$0")"
cjs="${COMPONENTIZE_JS:-./node_modules/.bin/componentize-js}"
"$cjs" --wit wit --world-name adapter -d http fetch-event -o {{name}}.wasm adapter.js
echo "built $(pwd)/{{name}}.wasm"
