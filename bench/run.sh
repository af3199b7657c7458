#!/usr/bin/env bash
# One command, one whole flash sale on this machine, every invariant proven:
#
#   bench/run.sh                          # all four scenarios: soldout, repeat, sale, hot
#   bench/run.sh --scenario sale          # one of them (comma-separated for several)
#   bench/run.sh --duration 5s --users 20000   # shorter and smaller
#   bench/run.sh --scenario cluster       # the sale on Redis Cluster (7001-7003), two brokers,
#                                         # two gateways and two writers (runs alone)
#
# Installs what is missing (wrk, redis-benchmark, oha), starts Redis, PostgreSQL and RocketMQ
# (scripts/services.sh), builds the release binaries, then runs `seckill-bench run`, which starts
# the gateway and the order writer, measures the ceilings (GET /healthz, redis-benchmark EVALSHA
# of the deduct script), drives each scenario with wrk and oha, waits for the writer, checks,
# and writes bench/results/<date>-<scenarios>.{json,md,svg}. Exit 1 when a check failed.
# Only 127.0.0.1 is touched; every load is bounded by --duration.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/seckill-target}"
export PATH="$HOME/.cargo/bin:$PATH"

apt_install() {
  [ -n "${APT_UPDATED:-}" ] || { apt-get update -qq; APT_UPDATED=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v wrk >/dev/null || apt_install wrk
command -v redis-benchmark >/dev/null || apt_install redis-tools
if ! command -v oha >/dev/null; then
  echo "[bench] installing oha (a few minutes, once)"
  command -v pkg-config >/dev/null && dpkg -s libssl-dev >/dev/null 2>&1 || apt_install pkg-config libssl-dev
  cargo install --locked oha@1.16.0 --no-default-features --features native-tls
fi

scripts/services.sh redis postgres rocketmq
case " $* " in
  *" --scenario cluster "* | *" --scenario=cluster "*)
    # The cluster topology: three masters and a second broker; every binary of the run is
    # pointed at the cluster's nodes.
    scripts/services.sh redis-cluster rocketmq-2
    export SECKILL_REDIS_URL="redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003"
    ;;
esac
# The crowd scenario opens thousands of connections: as many descriptors as allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# SKIP_BUILD=1 reuses the last release build.
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --locked \
  -p seckill-gateway -p seckill-order-writer -p seckill-ctl -p seckill-bench
exec "$CARGO_TARGET_DIR/release/seckill-bench" run "$@"
