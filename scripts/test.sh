#!/usr/bin/env bash
# Runs every test: the pure core and the origin on the host, and the
# service worker in headless Chromium against the real origin server.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# test-counters: the store instrumentation tests/uploads.rs reads.
cargo test --workspace --all-targets --features outpost/test-counters --no-fail-fast "$@"
