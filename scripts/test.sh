#!/usr/bin/env bash
# Runs every test: clippy on the host crates and on the worker's wasm32
# code, the pure core and the origin on the host, and the service worker in
# Chromium, Firefox and WebKit against the real origin server.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/lint.sh
# test-counters: the store instrumentation tests/uploads.rs reads (off in
# builds that ship; without it that test says so and fails).
cargo test --workspace --all-targets --features outpost/test-counters --no-fail-fast "$@"
