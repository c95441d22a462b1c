#!/usr/bin/env bash
# Start a 3-primary Redis Cluster on loopback (ports BASE..BASE+2, cluster bus on port + 10000)
# in a temp dir with Debian's redis-server, and wait for cluster_state:ok.
# With REPLICAS=1, each primary gets a replica (ports BASE+3..BASE+5), and the script also waits
# until every replica is in sync: what AGEGATE_REDIS_MIN_REPLICAS=1 needs (docs/operations.md).
# NODE_TIMEOUT (ms, default 5000) is how long a silent primary has before its replica takes over.
# `restart-node DIR PORT` starts one node again with its saved cluster state (a killed primary
# comes back as a replica of the one that took over).
# Usage: scripts/redis-cluster.sh start DIR [BASE] [REPLICAS] | stop DIR | restart-node DIR PORT
set -euo pipefail
action=$1
dir=$2
base=${3:-7101}
replicas=${4:-0}
[ "$action" = restart-node ] && replicas=0
node_timeout=${NODE_TIMEOUT:-5000}
ports=("$base" "$((base + 1))" "$((base + 2))")
if [ "$replicas" = 1 ]; then
  ports+=("$((base + 3))" "$((base + 4))" "$((base + 5))")
elif [ "$replicas" != 0 ]; then
  echo "REPLICAS is 0 or 1" >&2
  exit 2
fi

start_node() {
  mkdir -p "$dir/$1"
  redis-server --port "$1" --bind 127.0.0.1 --cluster-enabled yes \
    --cluster-config-file "$dir/$1/nodes.conf" --cluster-node-timeout "$node_timeout" \
    --dir "$dir/$1" --save '' --appendonly no --daemonize yes \
    --pidfile "$dir/$1/redis.pid" --logfile "$dir/$1/redis.log"
}

case "$action" in
  restart-node)
    start_node "$base"
    ;;
  start)
    mkdir -p "$dir"
    for port in "${ports[@]}"; do
      start_node "$port"
    done
    for port in "${ports[@]}"; do
      for _ in $(seq 1 50); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.1
      done
    done
    redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas "$replicas" \
      --cluster-yes >"$dir/create.log"
    for _ in $(seq 1 300); do
      ok=1
      for port in "${ports[@]}"; do
        redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok' || ok=0
      done
      if [ "$replicas" = 1 ]; then
        for port in "${ports[@]}"; do
          # A replica counts once its link is up; a primary once it has a replica online.
          info=$(redis-cli -p "$port" info replication)
          if grep -q 'role:slave' <<<"$info"; then
            grep -q 'master_link_status:up' <<<"$info" || ok=0
          else
            grep -q 'state=online' <<<"$info" || ok=0
          fi
        done
      fi
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
    echo "usage: $0 start|stop DIR [BASE] [REPLICAS]" >&2
    exit 2
    ;;
esac
