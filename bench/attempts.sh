#!/usr/bin/env bash
# Attempts per second and latency of the gateway under wrk, beside GET /healthz measured on the
# same gateway in the same run (the gateway's own ceiling without Redis).
#
#   bench/attempts.sh                         # -t1 -c64, 10 s each, 200k users, limit 1, huge stock
#   STOCK=20000 WRITER=1 bench/attempts.sh    # a sale with the order writer running: also
#                                             # win -> row latency and writer orders/s
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
WRITER="${WRITER:-0}"
DATABASE_URL="${SECKILL_DATABASE_URL:-postgres://seckill:seckill@127.0.0.1:5432/seckill}"
PORT="${PORT:-18181}"
OUT="${OUT:-bench/out}"

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
scripts/services.sh redis postgres rocketmq
# SKIP_BUILD=1 reuses the last release build.
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --locked -p seckill-gateway -p seckill-order-writer
BIN="$CARGO_TARGET_DIR/release"
mkdir -p "$OUT"

export SECKILL_AUTH_SECRET="bench-secret-$(date +%s)-0123456789"
export SECKILL_PAYMENT_SECRET="bench-payment-secret-$(date +%s)-0123456789"
export SECKILL_LISTEN="127.0.0.1:$PORT"
# The limits are not what is measured here: open them wide.
export SECKILL_RATE_GLOBAL=100000000 SECKILL_RATE_PER_USER=100000
run_id="bench-$(date +%s)"

"$BIN/seckillctl" activity create --id "$run_id" --name "bench item" --stock "$STOCK" \
  --price-cents 100 --per-user-limit "$LIMIT" --starts-at now --duration 1h
"$BIN/seckillctl" token mint --users "1..$USERS" --prefix "u$(date +%s)x" --ttl 2h --out "$OUT/tokens.txt"

pids=""
trap 'kill $pids 2>/dev/null || true; wait 2>/dev/null || true' EXIT
if [ "$WRITER" = 1 ]; then
  # A writer group of this run's own, dedicated to this activity: the figures are this sale's.
  SECKILL_DATABASE_URL="$DATABASE_URL" SECKILL_WRITER_GROUP="bench_$run_id" \
    SECKILL_WRITER_ACTIVITIES="$run_id" SECKILL_WRITER_START_AT="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    RUST_LOG=warn "$BIN/seckill-order-writer" >"$OUT/writer.log" 2>&1 &
  pids="$pids $!"
  echo "== order writer started; letting its consumer join (20 s)"
  sleep 20
fi
RUST_LOG=warn "$BIN/seckill-gateway" >"$OUT/gateway.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

echo "== GET /healthz  (wrk -t$THREADS -c$CONNECTIONS -d$DURATION)"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$PORT/healthz" | tee "$OUT/healthz.txt"
echo "== POST /v1/activities/$run_id/orders  ($USERS users, limit $LIMIT, stock $STOCK)"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/wrk/attempt.lua \
  "http://127.0.0.1:$PORT" -- "$OUT/tokens.txt" "$run_id" | tee "$OUT/attempts.txt"

curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^seckill_(attempts|publish_unconfirmed)_total' | grep -v ' 0$' || true
if [ "$WRITER" = 1 ]; then
  won=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk -F' ' '/^seckill_attempts_total\{outcome="won"\}/ {print $2}')
  echo "== waiting (at most 300 s) for the writer to persist $won orders"
  for _ in $(seq 1 300); do
    rows=$(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM orders WHERE activity_id = '$run_id'")
    [ "$rows" -ge "$won" ] && break
    sleep 1
  done
  psql "$DATABASE_URL" -c "SELECT count(*) AS rows,
      round(1000 * extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY persisted_at - created_at))) AS win_to_row_p50_ms,
      round(1000 * extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY persisted_at - created_at))) AS win_to_row_p99_ms,
      round(count(*) / greatest(extract(epoch FROM max(persisted_at) - min(persisted_at)), 0.001)) AS writer_orders_per_s
    FROM orders WHERE activity_id = '$run_id'" | tee "$OUT/writer.txt"
  echo "== ledger and database after the run"
  "$BIN/seckillctl" verify "$run_id"
else
  echo "== ledger after the run (no writer ran: database not compared)"
  "$BIN/seckillctl" verify --ledger-only "$run_id"
fi
