#!/usr/bin/env bash
# Builds Outpost and serves the demo on http://127.0.0.1:8080/.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# --demo-switch: the page's "go offline" switch (per user; off in any other
# deployment).
exec cargo run --release -- serve --addr 127.0.0.1:8080 --demo-switch "$@"
