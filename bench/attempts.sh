#!/usr/bin/env bash
# Attempts per second and latency of the gateway under wrk, beside GET /healthz measured on the
# same gateway in the same run (the gateway's own ceiling without Redis).
#
#   bench/attempts.sh                 # defaults: -t1 -c64, 10 s each, 200k users, limit 1
#   USERS=500000 LIMIT=1000 bench/attempts.sh   # every attempt a win (no repeats)
#
# Only 127.0.0.1 is touched; each wrk run is bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/seckill-target}"

DURATION="${DURATION:-10s}"
THREADS="${THREADS:-1}"
CONNECTIONS="${CONNECTIONS:-64}"
USERS="${USERS:-200000}"
LIMIT="${LIMIT:-1}"
STOCK="${STOCK:-100000000}"
PORT="${PORT:-18181}"
OUT="${OUT:-bench/out}"

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
scripts/services.sh redis
cargo build --release --locked -p seckill-gateway
BIN="$CARGO_TARGET_DIR/release"
mkdir -p "$OUT"

export SECKILL_AUTH_SECRET="bench-secret-$(date +%s)-0123456789"
export SECKILL_LISTEN="127.0.0.1:$PORT"
# The limits are not what is measured here: open them wide.
export SECKILL_RATE_GLOBAL=100000000 SECKILL_RATE_PER_USER=100000
run_id="bench-$(date +%s)"

"$BIN/seckillctl" activity create --id "$run_id" --name "bench item" --stock "$STOCK" \
  --price-cents 100 --per-user-limit "$LIMIT" --starts-at now --duration 1h
"$BIN/seckillctl" token mint --users "1..$USERS" --prefix "u$(date +%s)x" --ttl 2h --out "$OUT/tokens.txt"

RUST_LOG=warn "$BIN/seckill-gateway" >"$OUT/gateway.log" 2>&1 &
gateway=$!
trap 'kill $gateway 2>/dev/null || true; wait $gateway 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

echo "== GET /healthz  (wrk -t$THREADS -c$CONNECTIONS -d$DURATION)"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$PORT/healthz" | tee "$OUT/healthz.txt"
echo "== POST /v1/activities/$run_id/orders  ($USERS users, limit $LIMIT, stock $STOCK)"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/wrk/attempt.lua \
  "http://127.0.0.1:$PORT" -- "$OUT/tokens.txt" "$run_id" | tee "$OUT/attempts.txt"

echo "== ledger after the run"
"$BIN/seckillctl" verify "$run_id"
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^seckill_attempts_total' | grep -v ' 0$' || true
