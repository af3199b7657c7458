#!/usr/bin/env bash
# Installs (when missing) and starts (when not running) what seckill needs, on loopback only.
# Reuses anything already answering. Safe to run again and again.
#
#   scripts/services.sh                      # everything: Redis, PostgreSQL, RocketMQ
#   scripts/services.sh redis                # only what is named
#   SECKILL_REDIS_APPENDFSYNC=always scripts/services.sh redis   # a Redis that fsyncs every write
#
# State lives under $SECKILL_STATE (default ~/.cache/seckill): data dirs and logs.
set -euo pipefail

STATE="${SECKILL_STATE:-$HOME/.cache/seckill}"
REDIS_PORT="${SECKILL_REDIS_PORT:-6379}"
PG_VERSION=15
PG_URL_BASE="postgres://seckill:seckill@127.0.0.1:5432"
ROCKETMQ_VERSION=1.0.0
NAMESRV_PORT=9876
BROKER_PORT=10911
mkdir -p "$STATE/logs"

log() { printf '[services] %s\n' "$*" >&2; }

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "need root to apt-get install $*; install them yourself and rerun"
    exit 1
  fi
  if [ ! -f "$STATE/.apt-updated" ]; then
    log "apt-get update"
    apt-get update -qq >"$STATE/logs/apt.log" 2>&1
    touch "$STATE/.apt-updated"
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$STATE/logs/apt.log" 2>&1
}

wait_for() { # wait_for <what> <seconds> <command...>
  local what=$1 seconds=$2
  shift 2
  for _ in $(seq 1 $((seconds * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "$what did not come up within ${seconds}s"
  return 1
}

ensure_redis() {
  if command -v redis-cli >/dev/null && redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
    log "redis: already running on 127.0.0.1:$REDIS_PORT"
    return
  fi
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p "$STATE/redis"
  # AOF, fsync'd every second unless SECKILL_REDIS_APPENDFSYNC=always (then before every reply: a 202
  # then means on disk; see the README): the ledger is the source of truth for stock. The AOF is
  # rewritten (a fork writing the whole dataset) only past 1 GiB: a sale writes tens of MB a
  # minute, and with the default 64 MB a rewrite would take a core in the middle of one.
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
    --dir "$STATE/redis" --appendonly yes --appendfsync "${SECKILL_REDIS_APPENDFSYNC:-everysec}" --save '' \
    --auto-aof-rewrite-min-size 1gb \
    --maxclients 10000 --logfile "$STATE/logs/redis.log"
  wait_for redis 10 redis-cli -p "$REDIS_PORT" ping
  log "redis: started on 127.0.0.1:$REDIS_PORT"
}

ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null || [ ! -x "/usr/lib/postgresql/$PG_VERSION/bin/postgres" ]; then
    apt_install "postgresql-$PG_VERSION" postgresql-client
  fi
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -q "^$PG_VERSION main$"; then
    pg_createcluster "$PG_VERSION" main >/dev/null
  fi
  if pg_lsclusters -h | awk -v v="$PG_VERSION" '$1==v && $2=="main" {print $4}' | grep -q online; then
    log "postgresql: already running"
  else
    pg_ctlcluster "$PG_VERSION" main start
    log "postgresql: started"
  fi
  wait_for postgresql 30 su postgres -c "psql -qAtc 'select 1'"
  # The role the services and tests use; it may create a database per test.
  su postgres -c "psql -qAtc \"DO \\\$\\\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='seckill') THEN CREATE ROLE seckill LOGIN PASSWORD 'seckill' CREATEDB; END IF; END\\\$\\\$\"" >/dev/null
  if ! su postgres -c "psql -qAtc \"SELECT 1 FROM pg_database WHERE datname='seckill'\"" | grep -q 1; then
    su postgres -c "createdb -O seckill seckill"
  fi
  # A sale inserts in bursts: checkpoint every 15 minutes or 4 GB of WAL rather than every 5
  # minutes or 1 GB, so fewer index pages are written whole into the WAL again after each
  # checkpoint mid-sale (full-page writes). Both apply on reload; commits still fsync.
  su postgres -c "psql -qAtc \"ALTER SYSTEM SET max_wal_size = '4GB'\"" >/dev/null
  su postgres -c "psql -qAtc \"ALTER SYSTEM SET checkpoint_timeout = '15min'\"" >/dev/null
  su postgres -c "psql -qAtc 'SELECT pg_reload_conf()'" >/dev/null
  log "postgresql: $PG_URL_BASE/seckill"
}

# Port answering on loopback?
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ensure_rocketmq() {
  export PATH="$HOME/.cargo/bin:$PATH"
  if ! command -v rocketmq-namesrv-rust >/dev/null || ! command -v rocketmq-broker-rust >/dev/null; then
    log "rocketmq: cargo install rocketmq-namesrv rocketmq-broker $ROCKETMQ_VERSION (takes ~20 min on 2 cores)"
    cargo install --locked "rocketmq-namesrv@$ROCKETMQ_VERSION" "rocketmq-broker@$ROCKETMQ_VERSION" \
      >"$STATE/logs/rocketmq-install.log" 2>&1
  fi
  # Both binaries refuse to start without ROCKETMQ_HOME.
  export ROCKETMQ_HOME="$STATE/rocketmq"
  mkdir -p "$ROCKETMQ_HOME/store"
  if port_open "$NAMESRV_PORT"; then
    log "rocketmq: name server already running on 127.0.0.1:$NAMESRV_PORT"
  else
    nohup rocketmq-namesrv-rust --bindAddress 127.0.0.1 >"$STATE/logs/namesrv.log" 2>&1 &
    wait_for "rocketmq name server" 30 port_open "$NAMESRV_PORT"
    log "rocketmq: name server started on 127.0.0.1:$NAMESRV_PORT"
  fi
  if port_open "$BROKER_PORT"; then
    log "rocketmq: broker already running on 127.0.0.1:$BROKER_PORT"
  else
    cat >"$ROCKETMQ_HOME/broker.toml" <<TOML
[broker]
listenPort = $BROKER_PORT
brokerIp1 = "127.0.0.1"
brokerIp2 = "127.0.0.1"
namesrvAddr = "127.0.0.1:$NAMESRV_PORT"
storePathRootDir = "$ROCKETMQ_HOME/store"
autoCreateTopicEnable = true

# Without this the broker listens on 0.0.0.0 (10909, 10911). Only bindAddress goes here: a
# listenPort in this section as well makes the broker refuse to start.
[broker.brokerServerConfig]
bindAddress = "127.0.0.1"

[broker.brokerIdentity]
brokerName = "broker-a"
brokerClusterName = "DefaultCluster"
brokerId = 0

[store]
haListenAddress = "127.0.0.1"
haListenPort = $((BROKER_PORT + 1))
storePathRootDir = "$ROCKETMQ_HOME/store"
# One pull may bring up to 1024 messages (default 32; 8 from disk): the order writer persists
# what one pull brings as one batch, and each batch costs a transaction, a transactional
# message, a mirror call and a timer whatever its size.
maxTransferCountOnMessageInMemory = 1024
maxTransferBytesOnMessageInMemory = 1048576
maxTransferCountOnMessageInDisk = 1024
maxTransferBytesOnMessageInDisk = 1048576
TOML
    nohup rocketmq-broker-rust -c "$ROCKETMQ_HOME/broker.toml" >"$STATE/logs/broker.log" 2>&1 &
    wait_for "rocketmq broker" 60 port_open "$BROKER_PORT"
    log "rocketmq: broker started on 127.0.0.1:$BROKER_PORT"
  fi
}

if [ $# -eq 0 ]; then
  set -- redis postgres rocketmq
fi
for service in "$@"; do
  case "$service" in
    redis) ensure_redis ;;
    postgres) ensure_postgres ;;
    rocketmq) ensure_rocketmq ;;
    *) log "unknown service $service (redis, postgres, rocketmq)"; exit 2 ;;
  esac
done
