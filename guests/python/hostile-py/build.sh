#!/usr/bin/env bash
# Build the test-only hostile Python adapter: the same steps as the
# chat-template adapter's build script, run on this folder.
# Usage: build.sh [OUT.wasm]   (default: guests/out/hostile-py.wasm)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# Built against contract 0.1 (wit/adapter.wit): it also proves 0.1 adapters keep working.
ADAPTER_DIR="$here" WIT_DIR="$here/../../../wit" exec "$here/../chat-template-py/build.sh" "${1:-$here/../../out/hostile-py.wasm}"
