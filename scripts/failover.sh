#!/usr/bin/env bash
# A longer failover run than the suite's (tests/test_failover.py): a 3-primary Redis Cluster with
# a replica each on ports BASE..BASE+5 (default 7111; cluster bus on port + 10000), 12 threads of
# under-age checks, a replica made to lag for a second, its primary SIGKILLed, the replica
# promoted, the dead node restarted; then every acknowledged deny's email is checked. Once with
# AGEGATE_REDIS_MIN_REPLICAS=1 and once with 0 (the window it closes). Prints both runs' figures.
# Usage: scripts/failover.sh [BASE] [THREADS] [SECONDS_BEFORE] [SECONDS_AFTER]
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-7111}
threads=${2:-12}
before=${3:-10}
after=${4:-10}
for min in 1 0; do
  .venv/bin/python -m tests.failover --port "$base" --threads "$threads" --before "$before" \
    --after "$after" --min-replicas "$min" 2>/dev/null
done
