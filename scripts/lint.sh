#!/usr/bin/env bash
# Lints everything with clippy, warnings as errors: the host crates, and the
# worker for the target it ships on. `sw/src/web` exists only on wasm32, so a
# host clippy never sees it. The toolchain: a rustup toolchain with the wasm32
# target or with rust-src (std built from source), else Debian's rustc-web
# with std built from source (its clippy is the `rust-web-clippy` package).
set -euo pipefail
cd "$(dirname "$0")/.."
WASM=wasm32-unknown-unknown
say() { echo "lint: $*" >&2; }

say "host crates"
cargo clippy --workspace --all-targets --features outpost/test-counters --quiet -- -D warnings

# Its own target directory: a wasm32 check would otherwise invalidate the
# host build's fingerprints on every run.
if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$WASM"; then
  say "worker on $WASM (rustup)"
  cargo clippy --package outpost-sw --target "$WASM" --target-dir target/lint-wasm --quiet -- -D warnings
elif [ -d "$(rustc --print sysroot)/lib/rustlib/src/rust/library/std" ]; then
  say "worker on $WASM (rustup, std built from rust-src)"
  RUSTC_BOOTSTRAP=1 cargo clippy --package outpost-sw --target "$WASM" -Zbuild-std=std,panic_abort \
    --target-dir target/lint-wasm --quiet -- -D warnings
elif [ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library/std ]; then
  if ! /usr/bin/cargo clippy --version >/dev/null 2>&1; then
    say "Debian's cargo has no clippy: run ./scripts/setup.sh (it installs rust-web-clippy)"
    exit 1
  fi
  say "worker on $WASM (Debian rustc-web, std built from source)"
  RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 /usr/bin/cargo clippy --package outpost-sw --target "$WASM" \
    -Zbuild-std=std,panic_abort --target-dir target/lint-wasm --quiet -- -D warnings
else
  say "no wasm32 toolchain to lint the worker with: run ./scripts/setup.sh"
  exit 1
fi
