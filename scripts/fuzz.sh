#!/usr/bin/env bash
# Fuzz every route from /openapi.json with schemathesis, once per role and once without a token,
# against a real `agegate serve` (embedded redis-server in a temporary data directory). Fails on
# any 5xx (check not_a_server_error). Not part of the test suite: it needs minutes.
#   bash scripts/fuzz.sh            # 25 examples per operation and role
#   EXAMPLES=100 bash scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLES="${EXAMPLES:-25}"
PORT="${PORT:-8765}"
DATA="$(mktemp -d)"
ROLES=(registration signals reviewer admin downstream)
KEYS=""
for role in "${ROLES[@]}"; do
  KEYS+="fuzz-${role}:${role}:fuzz-${role}-token-0123456789,"
done
.venv/bin/python -m pip install --quiet "schemathesis>=4,<5"

AGEGATE_ENV=development AGEGATE_DATA_DIR="$DATA" AGEGATE_API_KEYS="$KEYS" \
  AGEGATE_SECRET_KEY="fuzz-secret-0123456789-abcdefghijklmnopqrstuvwxyz" \
  AGEGATE_PARENT_REQUEST_RATE_LIMIT="100000 per hour" \
  AGEGATE_PARENT_REQUEST_EMAIL_RATE_LIMIT="100000 per hour" AGEGATE_LOG_LEVEL=WARNING \
  AGEGATE_CREDENTIAL_ORIGINS="https://signup.example" \
  .venv/bin/agegate serve --port "$PORT" > "$DATA/serve.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 120); do
  curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 1
done

status=0
for role in none "${ROLES[@]}"; do
  echo "== schemathesis as ${role} =="
  header=()
  [ "$role" != none ] && header=(-H "Authorization: Bearer fuzz-${role}-token-0123456789")
  .venv/bin/schemathesis run "http://127.0.0.1:$PORT/openapi.json" "${header[@]}" \
    --checks not_a_server_error --max-examples "$EXAMPLES" --seed 15 --workers 1 \
    --suppress-health-check all --no-color || status=1
done
if grep -q "unhandled error" "$DATA/serve.log"; then
  echo "the service logged unhandled errors:"; grep -A3 "unhandled error" "$DATA/serve.log"
  status=1
fi
exit "$status"
