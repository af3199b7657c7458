#!/usr/bin/env bash
# The contract check (part of scripts/test.sh): validates docs/openapi.yaml with
# openapi-spec-validator, then runs schemathesis, an independent API tester, against a live
# gateway and writer. schemathesis generates requests from the spec (examples, boundary values,
# fuzzed bodies, headers and paths) and fails on any 5xx, any undocumented status, content type
# or header, and any body that does not match its schema.
#
# The gateway runs on a Redis of its own (a fresh ledger each run, so `phone-2026` from the
# spec's examples is a real, open activity) and the stack's RocketMQ and PostgreSQL.
#
#   scripts/api-check.sh                  # bounded: API_CHECK_EXAMPLES per operation (default 60)
#   API_CHECK_EXAMPLES=500 API_CHECK_SEED=7 scripts/api-check.sh   # more, and other, cases
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/seckill-target}"
STATE="${SECKILL_STATE:-$HOME/.cache/seckill}"
OUT="$STATE/api-check/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
BIN="$CARGO_TARGET_DIR/debug"
PORT_REDIS=16391
LISTEN=127.0.0.1:18481
BASE="http://$LISTEN"
EXAMPLES="${API_CHECK_EXAMPLES:-60}"

# The API tools, pinned, in a virtualenv of their own.
VENV="$STATE/venv-api"
PINS="openapi-spec-validator==0.9.0 schemathesis==4.32.5"
if ! "$VENV/bin/python" -c 'import schemathesis, openapi_spec_validator' 2>/dev/null \
  || [ "$(cat "$VENV/pins" 2>/dev/null)" != "$PINS" ]; then
  if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip' 2>/dev/null; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  echo "[api-check] installing $PINS" >&2
  "$VENV/bin/pip" install -q $PINS
  echo "$PINS" >"$VENV/pins"
fi

echo "== openapi-spec-validator docs/openapi.yaml"
"$VENV/bin/openapi-spec-validator" docs/openapi.yaml

. scripts/lib/private-stack.sh
export SECKILL_CORS_ORIGINS="http://127.0.0.1:5173"
# The tester is one user sending thousands of requests: a per-user bucket sized for humans
# would answer most of them 429 (documented, so not a failure, but it would test little else).
export SECKILL_RATE_PER_USER=100000
start_private_stack "$PORT_REDIS" "$LISTEN" seckill_api_check phone-2026 "$OUT"

# The spec's example activity, open for the whole run, with stock for every attempt the tester
# can make (it buys through `attempt` many times: per-user limit large too).
"$BIN/seckillctl" activity create --id phone-2026 --name "Phone, 1 unit per buyer" \
  --stock 1000000 --price-cents 99900 --per-user-limit 1000000 --starts-at now --duration 1h >/dev/null
token=$("$BIN/seckillctl" token mint --user api-check --ttl 1h)

# Every check schemathesis has, but one: use_after_free expects a resource answered `DELETE` to
# be gone (404). `DELETE /v1/orders/{id}` cancels an order; the order stays readable, with
# status `cancelling` then `cancelled`, as the contract says (an order is a record, not a
# resource that disappears).
echo "== schemathesis against $BASE ($EXAMPLES examples per operation; report: $OUT)"
set +e
SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$PWD/scripts/api-check" "$VENV/bin/st" run docs/openapi.yaml --url "$BASE" \
  --header "Authorization: Bearer $token" \
  --checks all \
  --exclude-checks use_after_free \
  --max-examples "$EXAMPLES" \
  --phases examples,coverage,fuzzing,stateful \
  --workers 2 \
  --request-timeout 10 \
  --seed "${API_CHECK_SEED:-20261203}" --generation-database none \
  --no-color \
  --report junit,ndjson --report-dir "$OUT" \
  >"$OUT/schemathesis.txt" 2>&1
rc=$?
set -e
cat "$OUT/schemathesis.txt"
python3 scripts/api-check/summary.py "$OUT"/ndjson-*.ndjson | tee "$OUT/requests.txt"
echo "[api-check] schemathesis exit $rc; report in $OUT"
exit "$rc"
