# Sourced by scripts/api-check.sh and scripts/browser-check.sh: a gateway and an order writer
# of the caller's own, on a Redis of its own (a fresh ledger each run, nothing else's traffic or
# flags) and a database of its own, with the stack's RocketMQ. Everything started is stopped
# when the calling script exits.
#
#   start_private_stack REDIS_PORT LISTEN DATABASE WRITER_ACTIVITIES OUT
#
# Needs BIN (the binaries' folder); exports the SECKILL_* settings, so seckillctl run afterwards
# talks to the same ledger. Extra gateway settings: export them before the call.

command -v curl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null

_private_started=""
_private_redis_port=""
_stop_private_stack() {
  # Each step may find its process gone already; the script's own exit status stands.
  if [ -n "$_private_started" ]; then kill $_private_started 2>/dev/null || true; fi
  wait 2>/dev/null || true
  if [ -n "$_private_redis_port" ]; then
    redis-cli -p "$_private_redis_port" shutdown nosave >/dev/null 2>&1 || true
  fi
}
trap _stop_private_stack EXIT

start_private_stack() {
  local port=$1 listen=$2 db=$3 activities=$4 out=$5
  _private_redis_port=$port
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$out" >"$out/redis.log" 2>&1 &
  _private_started="$_private_started $!"
  for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

  export SECKILL_REDIS_URL="redis://127.0.0.1:$port"
  # The demo's published secrets: refused unless the gateway is told it is a demo.
  export SECKILL_AUTH_SECRET="demo-secret-change-me-0123456789"
  export SECKILL_PAYMENT_SECRET="demo-payment-secret-change-me-0123"
  export SECKILL_ALLOW_DEMO_SECRETS=1
  export SECKILL_DEMO_UI=1
  export SECKILL_LISTEN="$listen"
  psql postgres://seckill:seckill@127.0.0.1:5432/seckill -qc "DROP DATABASE IF EXISTS $db" \
    -c "CREATE DATABASE $db" 2>&1 | grep -v '^NOTICE' || true
  export SECKILL_DATABASE_URL="postgres://seckill:seckill@127.0.0.1:5432/$db"

  # A consumer group of this run's own, starting now: older orders in the topic are not ours.
  SECKILL_WRITER_GROUP="${db}_$(date +%s)" SECKILL_WRITER_ACTIVITIES="$activities" \
    SECKILL_WRITER_START_AT="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "$BIN/seckill-order-writer" >"$out/writer.log" 2>&1 &
  _private_started="$_private_started $!"
  "$BIN/seckill-gateway" >"$out/gateway.log" 2>&1 &
  _private_started="$_private_started $!"
  for _ in $(seq 1 100); do curl -fs "http://$listen/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs "http://$listen/readyz" >/dev/null || {
    echo "gateway on $listen not ready (log: $out/gateway.log)" >&2
    return 1
  }
}
