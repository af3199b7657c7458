#!/usr/bin/env bash
# Installs (when missing) and starts (when not running) what seckill needs, on loopback only.
# Reuses anything already answering. Safe to run again and again.
#
#   scripts/services.sh            # Redis
#
# State lives under $SECKILL_STATE (default ~/.cache/seckill): data dirs and logs.
set -euo pipefail

STATE="${SECKILL_STATE:-$HOME/.cache/seckill}"
REDIS_PORT="${SECKILL_REDIS_PORT:-6379}"
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
  # AOF with fsync every second: the ledger is the source of truth for stock.
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
    --dir "$STATE/redis" --appendonly yes --appendfsync everysec --save '' \
    --maxclients 10000 --logfile "$STATE/logs/redis.log"
  wait_for redis 10 redis-cli -p "$REDIS_PORT" ping
  log "redis: started on 127.0.0.1:$REDIS_PORT"
}

ensure_redis
