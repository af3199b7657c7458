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

. scripts/lib/private-stack.sh
sale="shop-$(date +%s)"
start_private_stack "$PORT_REDIS" "$LISTEN" seckill_browser_check "$sale" "$OUT"

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
