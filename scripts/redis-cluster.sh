#!/usr/bin/env bash
# Start a 3-primary Redis Cluster on loopback (ports BASE..BASE+2, cluster bus on port + 10000)
# in a temp dir with Debian's redis-server, and wait for cluster_state:ok.
# Usage: scripts/redis-cluster.sh start DIR [BASE]   |   scripts/redis-cluster.sh stop DIR
set -euo pipefail
action=$1
dir=$2
base=${3:-7101}
ports=("$base" "$((base + 1))" "$((base + 2))")

case "$action" in
  start)
    mkdir -p "$dir"
    for port in "${ports[@]}"; do
      mkdir -p "$dir/$port"
      redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
        --cluster-config-file "$dir/$port/nodes.conf" --cluster-node-timeout 5000 \
        --dir "$dir/$port" --save '' --appendonly no --daemonize yes \
        --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log"
    done
    for port in "${ports[@]}"; do
      for _ in $(seq 1 50); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.1
      done
    done
    redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes \
      >"$dir/create.log"
    for _ in $(seq 1 100); do
      ok=1
      for port in "${ports[@]}"; do
        redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok' || ok=0
      done
      [ "$ok" = 1 ] && exit 0
      sleep 0.1
    done
    echo "the Redis Cluster did not reach cluster_state:ok; see $dir" >&2
    exit 1
    ;;
  stop)
    for pidfile in "$dir"/*/redis.pid; do
      [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    ;;
  *)
    echo "usage: $0 start|stop DIR [BASE]" >&2
    exit 2
    ;;
esac
