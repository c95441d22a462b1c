#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh machine, then run ruff, mypy and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'

# The console's browser tests drive Debian's Chromium (no browser download at test time).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing: install Debian's chromium package (browser tests need it)" >&2
  fi
fi

# The cluster-marked tests run again on a real 3-primary Redis Cluster: Debian's redis-server.
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is missing: install Debian's redis-server package (cluster tests need it)" >&2
    exit 1
  fi
fi

.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"

# Ports 7101-7103 (cluster bus on port + 10000) unless AGEGATE_TEST_CLUSTER_PORT moves them.
cluster_port=${AGEGATE_TEST_CLUSTER_PORT:-7101}
cluster_dir=$(mktemp -d)
trap 'scripts/redis-cluster.sh stop "$cluster_dir"; rm -rf "$cluster_dir"' EXIT
scripts/redis-cluster.sh start "$cluster_dir" "$cluster_port"
# (Exit status 5 means the arguments selected no cluster test: nothing to run again.)
REDIS_URL="redis://127.0.0.1:${cluster_port}/0" AGEGATE_REDIS_CLUSTER=true \
  .venv/bin/python -m pytest -m cluster "$@" || [ $? -eq 5 ]
