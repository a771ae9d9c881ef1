#!/usr/bin/env bash
# Runs every test: clippy on the host crates and on the worker's wasm32
# code, the pure core and the origin on the host, and the service worker in
# Chromium, Firefox and WebKit against the real origin server.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/lint.sh
cargo test --workspace --all-targets --no-fail-fast "$@"
