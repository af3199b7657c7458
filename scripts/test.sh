#!/usr/bin/env bash
# The test command (README): starts what the tests need on loopback (installing it when
# missing), then checks formatting, lints, and runs every test against the real services.
set -euo pipefail
cd "$(dirname "$0")/.."
# A build cache outside the clone: a fresh clone reuses earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/seckill-target}"

scripts/services.sh redis postgres rocketmq

echo "== clearing what earlier test runs left behind (t_* databases, t-* activities)"
for db in $(psql postgres://seckill:seckill@127.0.0.1:5432/seckill -Atc "SELECT datname FROM pg_database WHERE datname LIKE 't\\_%'"); do
  psql postgres://seckill:seckill@127.0.0.1:5432/seckill -qc "DROP DATABASE IF EXISTS $db" || true
done
redis-cli --scan --pattern 'sk:{t-*' | xargs -r -n 500 redis-cli del >/dev/null
redis-cli smembers sk:activities | grep '^t-' | xargs -r -n 500 redis-cli srem sk:activities >/dev/null || true

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build (binaries the tests run: seckill-gateway, seckill-order-writer, seckillctl, seckill-bench)"
cargo build --workspace --bins --locked
echo "== crate layout: no server crate depends on another; the ledger links neither RocketMQ nor PostgreSQL"
for pair in "seckill-gateway seckill-order-writer" "seckill-order-writer seckill-gateway"; do
  set -- $pair
  if cargo tree --locked -p "$1" -e normal,dev --prefix none | grep -q "^$2 "; then
    echo "$1 depends on $2" >&2; exit 1
  fi
done
if cargo tree --locked -p seckill-ledger -e normal --prefix none | grep -Eq "^(rocketmq-[a-z-]+|tokio-postgres|deadpool-postgres) v"; then
  echo "seckill-ledger links RocketMQ or PostgreSQL" >&2; exit 1
fi
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
echo "== the HTTP contract: docs/openapi.yaml validated, schemathesis against a live gateway"
scripts/api-check.sh
echo "== the storefront in a real browser (Chromium, playwright-core)"
scripts/browser-check.sh
