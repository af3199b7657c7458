#!/usr/bin/env bash
# The storefront in a real browser (part of scripts/test.sh): Debian's Chromium, headless,
# driven by playwright-core (npm, pinned in web/test/package.json), against a live gateway
# serving web/ under /demo/ and a live writer. A sale of 3 units opens 20 s after it is
# created; 6 buyers, each with a token from seckillctl and a browser context of their own,
# watch the countdown and click when it opens (web/test/storefront.test.mjs). Screenshots of
# each state go to ~/.cache/seckill/browser-check/<time>/.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/seckill-target}"
STATE="${SECKILL_STATE:-$HOME/.cache/seckill}"
OUT="$STATE/browser-check/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
BIN="$CARGO_TARGET_DIR/debug"
PORT_REDIS=16392
LISTEN=127.0.0.1:18482
BASE="http://$LISTEN"
STOCK=3
BUYERS=6

need() { command -v "$1" >/dev/null || { echo "[browser-check] installing $2" >&2; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $2 >/dev/null; }; }
if ! command -v chromium >/dev/null || ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt-get update -qq >/dev/null
fi
need chromium chromium
need node nodejs
need npm npm
# Installed again only when the lock file changed (a copy of it marks what is installed).
if ! cmp -s web/test/package-lock.json web/test/node_modules/.seckill-lock 2>/dev/null; then
  echo "[browser-check] npm ci (playwright-core, no browser download: Debian's chromium is used)" >&2
  (cd web/test && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  cp web/test/package-lock.json web/test/node_modules/.seckill-lock
fi

started=""
cleanup() {
  [ -n "$started" ] && kill $started 2>/dev/null
  wait 2>/dev/null || true
  redis-cli -p "$PORT_REDIS" shutdown nosave >/dev/null 2>&1 || true
}
trap cleanup EXIT

# A Redis of its own: nothing else's traffic or flags reach this sale.
redis-cli -p "$PORT_REDIS" shutdown nosave >/dev/null 2>&1 || true
redis-server --port "$PORT_REDIS" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$OUT" >"$OUT/redis.log" 2>&1 &
started="$started $!"
for _ in $(seq 1 100); do redis-cli -p "$PORT_REDIS" ping >/dev/null 2>&1 && break; sleep 0.1; done

export SECKILL_REDIS_URL="redis://127.0.0.1:$PORT_REDIS"
export SECKILL_AUTH_SECRET="demo-secret-change-me-0123456789"
export SECKILL_PAYMENT_SECRET="demo-payment-secret-change-me-0123"
export SECKILL_ALLOW_DEMO_SECRETS=1
export SECKILL_DEMO_UI=1
export SECKILL_LISTEN="$LISTEN"
db="seckill_browser_check"
psql postgres://seckill:seckill@127.0.0.1:5432/seckill -qc "DROP DATABASE IF EXISTS $db" \
  -c "CREATE DATABASE $db"
export SECKILL_DATABASE_URL="postgres://seckill:seckill@127.0.0.1:5432/$db"

sale="shop-$(date +%s)"
SECKILL_WRITER_GROUP="browser_check_$sale" SECKILL_WRITER_ACTIVITIES="$sale" \
  SECKILL_WRITER_START_AT="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  "$BIN/seckill-order-writer" >"$OUT/writer.log" 2>&1 &
started="$started $!"
"$BIN/seckill-gateway" >"$OUT/gateway.log" 2>&1 &
started="$started $!"
for _ in $(seq 1 100); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$BASE/readyz" >/dev/null || { echo "[browser-check] gateway not ready (log: $OUT/gateway.log)" >&2; exit 1; }

"$BIN/seckillctl" activity create --id "$sale" --name "Browser-check headphones" --stock "$STOCK" \
  --price-cents 7900 --per-user-limit 1 \
  --starts-at "$(date -u -d '+20 sec' +%Y-%m-%dT%H:%M:%SZ)" --duration 10m >/dev/null
tokens=""
for i in $(seq 1 "$BUYERS"); do
  tokens="$tokens,$("$BIN/seckillctl" token mint --user "$sale-buyer$i" --ttl 1h)"
done

echo "== the storefront in Chromium: $BUYERS buyers, $STOCK units (screenshots: $OUT)"
STOREFRONT_BASE="$BASE" STOREFRONT_ACTIVITY="$sale" STOREFRONT_STOCK="$STOCK" \
  STOREFRONT_TOKENS="${tokens#,}" STOREFRONT_OUT="$OUT" SECKILLCTL="$BIN/seckillctl" \
  node --test web/test/storefront.test.mjs
ls "$OUT"/*.png
