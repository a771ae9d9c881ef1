#!/usr/bin/env bash
# Load numbers for the reference origin, on loopback, with wrk:
# - POST /api/chat/messages/batch with 50 messages per request;
# - GET /api/sync/init for a user with 100 sessions and 500 assets.
# Runs against SQLite (one instance, embedded store), then on a throwaway
# PostgreSQL through PgBouncer with Garage, against one and two instances.
# Usage: scripts/bench-origin.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
command -v wrk >/dev/null || { echo "bench: installing wrk"; apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q
BIN=$PWD/target/release/outpost
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${PGCTL:-}" ] && $RUNAS "$PGCTL" -D "$WORK/pg/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_origin() { # $1: label, rest: extra flags
  local port; port=$(free_port)
  "$BIN" serve --addr "127.0.0.1:$port" --data "$WORK/data-$1" "${@:2}" >"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && break; sleep 0.1; done
  echo "http://127.0.0.1:$port"
}

seed_and_measure() { # $1: label, $2: base URL
  local base=$2
  python3 - "$base" "$WORK/$1" <<'PY'
import json, sys, urllib.request
base, out = sys.argv[1], sys.argv[2]
def call(path, body=None, cookie=None):
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **({"Cookie": cookie} if cookie else {})})
    with urllib.request.urlopen(req) as r:
        return r.headers.get("Set-Cookie"), json.loads(r.read() or b"null")
set_cookie, _ = call("/api/auth/login", {"user": "bench"})
cookie = set_cookie.split(";")[0]
sessions = [call("/api/chat/sessions", {"title": f"session {i}"}, cookie)[1]["id"] for i in range(100)]
for i in range(500):
    call("/api/assets/presign", {"op": "put", "filename": f"a{i}.png", "contentType": "image/png", "size": 1000 + i}, cookie)
msgs = [{"tempId": f"t{i}", "sessionId": sessions[i % 100], "role": "user", "content": "x" * 200, "createdAt": i} for i in range(50)]
open(out + ".cookie", "w").write(cookie)
lua = ('wrk.method = "POST"\nwrk.body = ' + json.dumps(json.dumps({"messages": msgs})) +
       '\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["Cookie"] = ' + json.dumps(cookie) + '\n')
open(out + ".batch.lua", "w").write(lua)
open(out + ".get.lua", "w").write('wrk.headers["Cookie"] = ' + json.dumps(cookie) + '\n')
PY
  echo "== $1: POST /api/chat/messages/batch (50 messages), ${SECS}s, 2 threads, 8 connections"
  wrk -t2 -c8 -d"${SECS}s" --latency -s "$WORK/$1.batch.lua" "$base/api/chat/messages/batch" | grep -E "Requests/sec|50%|99%|Non-2xx"
  echo "== $1: GET /api/sync/init (100 sessions, 500 assets), ${SECS}s, 1 thread, 1 connection"
  wrk -t1 -c1 -d"${SECS}s" --latency -s "$WORK/$1.get.lua" "$base/api/sync/init" | grep -E "Requests/sec|50%|99%|Non-2xx"
}

seed_and_measure sqlite "$(start_origin sqlite)"

# PostgreSQL through PgBouncer and Garage, one and two instances, and the
# login herd with and without shared sync/init reads: tests/bench_origin.rs.
OUTPOST_BENCH_SECS=$SECS cargo test --release -q --test bench_origin -- --ignored --nocapture
