#!/usr/bin/env bash
# The fault suite on its own. The test command runs it at reduced sizes;
# `--full` runs the full sizes (1,000 writes, 10 worker kills) and prints
# each scenario's lost / duplicated / out-of-order counts.
#
#   ./scripts/faults.sh          # reduced sizes, as in ./scripts/test.sh
#   ./scripts/faults.sh --full
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if [[ "${1:-}" == "--full" ]]; then export OUTPOST_FAULTS_FULL=1; fi
log=$(mktemp)
status=0
cargo test --release --test faults -- --nocapture --test-threads 2 >"$log" 2>&1 || status=$?
grep -E '^(fault |test result|thread .* panicked)' "$log" || tail -20 "$log"
rm -f "$log"
exit "$status"
