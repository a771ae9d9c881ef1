#!/usr/bin/env bash
# Outpost against Workbox and no worker, in the same headless Chromium:
# builds the Workbox reference worker from npm (bench/workbox), then runs the
# side-by-side benchmark and writes BENCH.md. Not part of the test command.
#
#   ./scripts/bench.sh                 # 3 interleaved rounds
#   OUTPOST_BENCH_ROUNDS=5 OUTPOST_BENCH_JSON=bench.json ./scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
command -v npm >/dev/null || { echo "bench: npm is needed to build the Workbox worker (apt-get install nodejs npm)" >&2; exit 1; }
(
  cd bench/workbox
  # npm ci: exactly the versions in package-lock.json.
  npm ci --no-audit --no-fund --loglevel=error
  npm run -s build
)
# The benchmark alone: the file's other ignored test (the wasm code-cache
# trace, on demand) would otherwise run beside it and share its 2 cores.
cargo test --release --test bench_workbox -- --ignored --nocapture --exact outpost_against_workbox
