#!/usr/bin/env bash
# The main command (README): brings the whole stack up on loopback (Redis, PostgreSQL,
# RocketMQ; installing what is missing), builds the release binaries, starts the order writer
# and the gateway, and runs a small flash sale end to end: 10 units, 200 buyers all at once;
# then waits for the 10 orders to reach PostgreSQL and verifies ledger and database.
#
#   scripts/demo.sh            # stops the gateway and writer it started when the demo is over
#   KEEP=1 scripts/demo.sh     # leaves them running
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/seckill-target}"
STATE="${SECKILL_STATE:-$HOME/.cache/seckill}"
mkdir -p "$STATE/logs"

scripts/services.sh redis postgres rocketmq
command -v curl >/dev/null || { echo "[demo] installing curl" >&2; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }
echo "[demo] building release binaries" >&2
cargo build --release --locked -p seckill-gateway -p seckill-order-writer -p seckill-ctl
BIN="$CARGO_TARGET_DIR/release"

export SECKILL_AUTH_SECRET="${SECKILL_AUTH_SECRET:-demo-secret-change-me-0123456789}"
export SECKILL_PAYMENT_SECRET="${SECKILL_PAYMENT_SECRET:-demo-payment-secret-change-me-0123}"
# These secrets are published (here); a gateway refuses them unless told it is a demo.
export SECKILL_ALLOW_DEMO_SECRETS=1
export SECKILL_LISTEN="${SECKILL_LISTEN:-127.0.0.1:8080}"
# The storefront page of web/ under /demo/ (production gateways leave it off).
export SECKILL_DEMO_UI=1
BASE="http://$SECKILL_LISTEN"

export SECKILL_DATABASE_URL="${SECKILL_DATABASE_URL:-postgres://seckill:seckill@127.0.0.1:5432/seckill}"
started=""
cleanup() { [ -n "$started" ] && kill $started 2>/dev/null; wait 2>/dev/null || true; }
[ -z "${KEEP:-}" ] && trap cleanup EXIT
sale="demo-$(date +%s)"
# A writer group of this demo's own, dedicated to the demo sale and starting now: on a machine
# whose broker holds older orders, a group starting at the topic's first message would read
# through all of those first.
if true; then
  SECKILL_WRITER_GROUP="demo_$sale" SECKILL_WRITER_ACTIVITIES="$sale" \
    SECKILL_WRITER_START_AT="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "$BIN/seckill-order-writer" >"$STATE/logs/writer.log" 2>&1 &
  started="$started $!"
  echo "[demo] order writer started (log: $STATE/logs/writer.log)" >&2
fi
if ! curl -fs "$BASE/healthz" >/dev/null 2>&1; then
  "$BIN/seckill-gateway" >"$STATE/logs/gateway.log" 2>&1 &
  started="$started $!"
  for _ in $(seq 1 100); do
    curl -fs "$BASE/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  echo "[demo] gateway started on $BASE (log: $STATE/logs/gateway.log)" >&2
else
  echo "[demo] gateway already answering on $BASE" >&2
fi
curl -fs "$BASE/readyz" >/dev/null || { echo "[demo] gateway not ready" >&2; exit 1; }

"$BIN/seckillctl" activity create --id "$sale" --name "Demo phone" --stock 10 \
  --price-cents 19900 --per-user-limit 1 --starts-at now --duration 10m
tokens="$STATE/demo-tokens.txt"
"$BIN/seckillctl" token mint --users 1..200 --prefix "demo${sale#demo-}u" --ttl 1h --out "$tokens"

echo "[demo] 200 buyers hit POST /v1/activities/$sale/orders at once" >&2
results="$STATE/demo-results.txt"
xargs -P 200 -I{} curl -s -o /dev/null -w '%{http_code}\n' -X POST \
  -H "Authorization: Bearer {}" "$BASE/v1/activities/$sale/orders" <"$tokens" >"$results"
echo "[demo] answers by HTTP status (202 = won, 409 = sold out):"
sort "$results" | uniq -c

first=$(head -1 "$tokens")
echo "[demo] the activity as buyers see it:"
curl -s "$BASE/v1/activities/$sale"; echo
echo "[demo] the activity as operators see it:"
"$BIN/seckillctl" activity show "$sale"
"$BIN/seckillctl" verify --ledger-only "$sale"
won=$(grep -c '^202$' "$results" || true)
if [ "$won" != 10 ]; then
  echo "[demo] expected exactly 10 winners, got $won" >&2
  exit 1
fi
echo "[demo] waiting for the order writer to persist the 10 orders (a new consumer needs ~20 s to join)" >&2
rows=0
for _ in $(seq 1 120); do
  # verify --json reports the activity's rows in PostgreSQL as "database_rows" (it exits 1 while
  # some are still missing, 2 when the database is unreachable: then there is no count yet).
  rows=$("$BIN/seckillctl" verify --json "$sale" 2>/dev/null \
    | sed -n 's/^ *"database_rows": *\([0-9][0-9]*\).*/\1/p' || true)
  [ "$rows" = 10 ] && break
  sleep 1
done
"$BIN/seckillctl" order list "$sale"
"$BIN/seckillctl" verify "$sale"
echo "[demo] exactly 10 winners for 10 units, 10 rows in PostgreSQL; ledger and database verified."
if [ -n "${KEEP:-}" ]; then
  echo "[demo] gateway and writer left running on $BASE (try: curl -H 'Authorization: Bearer $first' -X POST $BASE/v1/activities/$sale/orders)"
  # A second sale for the storefront page, opening in two minutes: time to open it in a browser.
  page="$sale-page"
  "$BIN/seckillctl" activity create --id "$page" --name "Demo headphones" --stock 3 \
    --price-cents 7900 --per-user-limit 1 --starts-at "$(date -u -d '+2 min' +%Y-%m-%dT%H:%M:%SZ)" --duration 30m >/dev/null
  buyer=$("$BIN/seckillctl" token mint --user "demo${sale#demo-}page" --ttl 1h)
  echo "[demo] storefront: $BASE/demo/?activity=$page#token=$buyer (opens in 2 minutes; another buyer: seckillctl token mint --user NAME)"
fi
exit 0
