#!/usr/bin/env bash
# Build {{name}}.wasm (needs cargo and `rustup target add wasm32-wasip2`).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --target wasm32-wasip2 --target-dir target
cp target/wasm32-wasip2/release/{{crate}}.wasm {{name}}.wasm
echo "built $(pwd)/{{name}}.wasm"
