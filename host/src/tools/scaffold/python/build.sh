#!/usr/bin/env bash
# Build {{name}}.wasm with componentize-py (pip install -r requirements.txt;
# set COMPONENTIZE_PY to use another one).
set -euo pipefail
cd "$(dirname "$0")"
"${COMPONENTIZE_PY:-componentize-py}" -d wit -w adapter componentize -p . app -o {{name}}.wasm
echo "built $(pwd)/{{name}}.wasm"
