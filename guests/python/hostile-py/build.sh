#!/usr/bin/env bash
# Build the test-only hostile Python adapter: the same steps as the
# chat-template adapter's build script, run on this folder.
# Usage: build.sh [OUT.wasm]   (default: guests/out/hostile-py.wasm)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ADAPTER_DIR="$here" exec "$here/../chat-template-py/build.sh" "${1:-$here/../../out/hostile-py.wasm}"
