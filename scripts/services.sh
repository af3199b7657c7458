#!/usr/bin/env bash
# Installs (when missing) and starts (when not running) what seckill needs, on loopback only.
# Reuses anything already answering. Safe to run again and again.
#
#   scripts/services.sh                      # everything: Redis, PostgreSQL, RocketMQ
#   scripts/services.sh redis                # only what is named
#   scripts/services.sh redis-cluster        # three Redis Cluster masters on 127.0.0.1:7001-7003
#   scripts/services.sh rocketmq-2           # the stack's broker plus broker-b on 127.0.0.1:10921
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
BROKER_B_PORT=10921
REDIS_CLUSTER_PORTS="7001 7002 7003"
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

# realtime_redis <port>: the Redis main thread on that port gets a real-time priority
# (SCHED_FIFO 10), so it runs the moment a command arrives instead of waiting for a core. Every
# attempt of a sale queues behind Redis's one thread: in `bench/run.sh --scenario sale` on this
# 2-core machine it spent 0.4-0.7 s of each second it ran waiting for a core (schedstat; at nice
# -10 still 0.44-0.5 s), and with this 0.002 s: the deduct call's p99 went from 10-12 ms to 3-4 ms.
# Redis blocks in epoll when idle and the kernel caps real-time threads at 95 % of a core, so
# nothing starves (its forks, AOF rewrites, do not inherit the priority).
# SECKILL_REDIS_REALTIME=0 leaves Redis at the normal priority; without the right to set it
# (not root, no CAP_SYS_NICE) it says so and goes on.
realtime_redis() {
  local port=$1 pid
  [ "${SECKILL_REDIS_REALTIME:-1}" = 0 ] && return
  pid=$(redis-cli -p "$port" info server | sed -n 's/^process_id:\([0-9]*\).*/\1/p') || pid=
  # --reset-on-fork: an AOF rewrite's child (a fork) runs at the normal priority.
  if [ -n "$pid" ] && chrt -f -R -p 10 "$pid" 2>/dev/null; then
    log "redis $port: main thread at real-time priority (SCHED_FIFO 10)"
  else
    log "redis $port: could not set a real-time priority; it runs at the normal one"
  fi
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
  realtime_redis "$REDIS_PORT"
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
  start_broker broker-a "$BROKER_PORT" "$ROCKETMQ_HOME/store" "$ROCKETMQ_HOME/broker.toml" broker
}

# start_broker <name> <port> <store dir> <config file> <log name>: one broker under the name
# server, its own ports (port, port+1 for HA) and store; reused when its port answers.
start_broker() {
  local name=$1 port=$2 store=$3 config=$4 logname=$5
  if port_open "$port"; then
    log "rocketmq: $name already running on 127.0.0.1:$port"
    return
  fi
  mkdir -p "$store"
  cat >"$config" <<TOML
[broker]
listenPort = $port
brokerIp1 = "127.0.0.1"
brokerIp2 = "127.0.0.1"
namesrvAddr = "127.0.0.1:$NAMESRV_PORT"
storePathRootDir = "$store"
autoCreateTopicEnable = true

# Without this the broker listens on 0.0.0.0 (10909, 10911). Only bindAddress goes here: a
# listenPort in this section as well makes the broker refuse to start.
[broker.brokerServerConfig]
bindAddress = "127.0.0.1"

[broker.brokerIdentity]
brokerName = "$name"
brokerClusterName = "DefaultCluster"
brokerId = 0

[store]
haListenAddress = "127.0.0.1"
haListenPort = $((port + 1))
storePathRootDir = "$store"
# One pull may bring up to 1024 messages (default 32; 8 from disk): the order writer persists
# what one pull brings as one batch, and each batch costs a transaction, a transactional
# message, a mirror call and a timer whatever its size.
maxTransferCountOnMessageInMemory = 1024
maxTransferBytesOnMessageInMemory = 1048576
maxTransferCountOnMessageInDisk = 1024
maxTransferBytesOnMessageInDisk = 1048576
TOML
  nohup rocketmq-broker-rust -c "$config" >"$STATE/logs/$logname.log" 2>&1 &
  wait_for "rocketmq $name" 60 port_open "$port"
  log "rocketmq: $name started on 127.0.0.1:$port"
}

# A second broker (broker-b) under the same name server: topics created from now on get queues
# on both (issue 13's cluster topology).
ensure_rocketmq_2() {
  ensure_rocketmq
  start_broker broker-b "$BROKER_B_PORT" "$ROCKETMQ_HOME/store-b" "$ROCKETMQ_HOME/broker-b.toml" broker-b
}

# Three Redis Cluster masters on 127.0.0.1:7001-7003 (AOF, no replicas), created once with
# redis-cli --cluster create and reused while they answer.
ensure_redis_cluster() {
  command -v redis-server >/dev/null || apt_install redis-server
  local nodes=""
  for port in $REDIS_CLUSTER_PORTS; do
    nodes="$nodes 127.0.0.1:$port"
    if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
      continue
    fi
    mkdir -p "$STATE/redis-cluster/$port"
    redis-server --bind 127.0.0.1 --port "$port" --daemonize yes \
      --dir "$STATE/redis-cluster/$port" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 5000 --appendonly yes --appendfsync "${SECKILL_REDIS_APPENDFSYNC:-everysec}" \
      --save '' --auto-aof-rewrite-min-size 1gb --maxclients 10000 \
      --logfile "$STATE/logs/redis-$port.log"
    wait_for "redis $port" 10 redis-cli -p "$port" ping
    realtime_redis "$port"
  done
  local first=${REDIS_CLUSTER_PORTS%% *}
  if ! redis-cli -p "$first" cluster info | grep -q '^cluster_state:ok'; then
    if [ "$(redis-cli -p "$first" cluster info | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')" = 1 ]; then
      # shellcheck disable=SC2086
      redis-cli --cluster create $nodes --cluster-replicas 0 --cluster-yes >"$STATE/logs/redis-cluster-create.log" 2>&1
    fi
    wait_for "redis cluster" 30 sh -c "redis-cli -p $first cluster info | grep -q '^cluster_state:ok'"
  fi
  log "redis-cluster: 3 masters on$nodes (SECKILL_REDIS_URL=$(for p in $REDIS_CLUSTER_PORTS; do printf 'redis://127.0.0.1:%s,' "$p"; done | sed 's/,$//'))"
}

if [ $# -eq 0 ]; then
  set -- redis postgres rocketmq
fi
for service in "$@"; do
  case "$service" in
    redis) ensure_redis ;;
    postgres) ensure_postgres ;;
    rocketmq) ensure_rocketmq ;;
    redis-cluster) ensure_redis_cluster ;;
    rocketmq-2) ensure_rocketmq_2 ;;
    *) log "unknown service $service (redis, postgres, rocketmq, redis-cluster, rocketmq-2)"; exit 2 ;;
  esac
done
