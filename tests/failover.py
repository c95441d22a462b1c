"""A primary's death under load (issue 24): what was acknowledged is still there afterwards.

A Redis Cluster of three primaries with a replica each (scripts/redis-cluster.sh ... 1), the
app against it, and threads sending under-age checks, each with its own email. Then, as a slow
link or a busy replica does, one primary's replica stops taking the stream for a moment; the
primary is SIGKILLed; the replica comes back and is promoted; the dead node is restarted and
rejoins as its replica. Load goes on until every write is answered again. Then the outboxes
are drained (as `agegate worker` does), and every email whose deny was acknowledged must still
be blocked.

Run by tests/test_failover.py with a small load (CI), and by scripts/failover.sh for longer:
    python -m tests.failover --port 7801 --threads 12 --before 10 --after 10 [--min-replicas 0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis

from agegate import create_app
from tests.conftest import auth, make_config

REPO = Path(__file__).resolve().parent.parent
CLUSTER = REPO / "scripts" / "redis-cluster.sh"


@dataclass
class Figures:
    """One run's outcome (the README's failover table)."""

    min_replicas: int
    threads: int
    acknowledged: int = 0  # 200 deny answers
    acknowledged_while_lagging: int = 0  # of those, between the replica's cut-off and the kill
    lost: int = 0  # of those, emails no longer blocked after the failover
    unavailable: int = 0  # 503 storage_unavailable answers
    errors: int = 0  # any other answer (a 500 among them): must stay 0
    promoted_seconds: float = 0.0  # from the SIGKILL to the replica serving as primary
    recovery_seconds: float = 0.0  # from the SIGKILL to the last refused write
    statuses: dict[str, int] = field(default_factory=dict)


def _node(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=5)


def _pid(port: int) -> int:
    return int(_node(port).info("server")["process_id"])


def _replica_of(primary_port: int, ports: list[int]) -> int:
    for port in ports:
        info = _node(port).info("replication")
        if info.get("role") == "slave" and int(info.get("master_port", 0)) == primary_port:
            return port
    raise RuntimeError(f"no replica of {primary_port}")


def _promoted(replica_port: int) -> bool:
    try:
        node = _node(replica_port)
        return node.info("replication")["role"] == "master" and \
            b"cluster_state:ok" in node.execute_command("CLUSTER", "INFO")
    except redis.RedisError:
        return False


def run(base_port: int, min_replicas: int = 1, threads: int = 6, before: float = 2.0,
        after: float = 3.0, freeze: float = 1.0, node_timeout_ms: int = 2000,
        wait_ms: int = 500, directory: Path | None = None) -> Figures:
    """One failover under load on a fresh cluster at base_port..base_port+5; its figures."""
    # A directory of its own, not pytest's: pytest prunes old basetemp directories of other
    # sessions on the same machine, and with them the pidfiles `stop` needs.
    work = Path(tempfile.mkdtemp(prefix="agegate-failover-", dir=directory))
    env = {**os.environ, "NODE_TIMEOUT": str(node_timeout_ms)}
    pids: set[int] = set()
    try:
        subprocess.run(["bash", str(CLUSTER), "start", str(work / "cluster"), str(base_port),
                        "1"], check=True, env=env)
        return _under_load(base_port, min_replicas, threads, before, after, freeze, wait_ms,
                           node_timeout_ms, work, pids)
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop", str(work / "cluster")], check=False)
        # Every node this run started goes, SIGSTOPped or not, pidfile or not.
        for pidfile in (work / "cluster").glob("*/redis.pid"):
            try:
                pids.add(int(pidfile.read_text()))
            except (OSError, ValueError):
                pass
        for pid in pids:
            for signum in (signal.SIGCONT, signal.SIGTERM):
                try:
                    os.kill(pid, signum)
                except OSError:
                    pass
        _wait_gone(pids)
        shutil.rmtree(work, ignore_errors=True)


def _wait_gone(pids: set[int], seconds: float = 10.0) -> None:
    """Until every node has exited (the next run needs their ports), SIGKILL after `seconds`."""
    deadline = time.monotonic() + seconds
    for pid in pids:
        while _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _under_load(base_port: int, min_replicas: int, threads: int, before: float, after: float,
                freeze: float, wait_ms: int, node_timeout_ms: int, work: Path,
                pids: set[int]) -> Figures:
    url = f"redis://127.0.0.1:{base_port}/0"
    ports = [base_port + i for i in range(6)]
    pids.update(_pid(port) for port in ports)
    config = make_config(url, work, redis_cluster=True, load_model=False,
                         redis_min_replicas=min_replicas, redis_wait_ms=wait_ms)
    app = create_app(config)
    figures = Figures(min_replicas=min_replicas, threads=threads)
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    lagging = threading.Event()
    killed_at: list[float] = []
    last_refused = [0.0]

    def load(worker: int) -> None:
        client = app.test_client()
        n = 0
        while not stop.is_set():
            n += 1
            email = f"kid-{worker}-{n}@example.com"
            response = client.post("/v1/age-checks", headers=auth("registration"), json={
                "date_of_birth": "2014-05-01", "country": "US", "email": email})
            status = response.status_code
            with lock:
                figures.statuses[str(status)] = figures.statuses.get(str(status), 0) + 1
                if status == 200 and response.json["decision"] == "deny":
                    acknowledged.append(email)
                    if lagging.is_set():
                        figures.acknowledged_while_lagging += 1
                elif status == 503 and response.json["error"]["code"] == "storage_unavailable":
                    figures.unavailable += 1
                    last_refused[0] = time.monotonic()
                else:
                    figures.errors += 1
                    last_refused[0] = time.monotonic()

    workers = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(before)
        victim = base_port  # a primary when the cluster was created
        replica = _replica_of(victim, ports)
        replica_pid = _pid(replica)
        # The replica falls behind, as over a slow link: frozen (SIGSTOP), and cut off by its
        # primary, so what the primary takes from now on reaches no replica (a frozen
        # process's kernel would still buffer what was sent); then the primary dies.
        os.kill(replica_pid, signal.SIGSTOP)
        _node(victim).client_kill_filter(_type="slave")
        lagging.set()
        time.sleep(freeze)
        os.kill(_pid(victim), signal.SIGKILL)
        lagging.clear()
        killed_at.append(time.monotonic())
        os.kill(replica_pid, signal.SIGCONT)
        deadline = time.monotonic() + 60
        while not _promoted(replica):
            if time.monotonic() > deadline:
                raise RuntimeError("the replica was not promoted within 60 s")
            time.sleep(0.1)
        figures.promoted_seconds = round(time.monotonic() - killed_at[0], 1)
        # The dead node comes back (as a process manager restarts it) and rejoins as the new
        # primary's replica: until then that primary has none, and with min_replicas its
        # writes are refused (docs/operations.md: two replicas per primary avoid that).
        subprocess.run(["bash", str(CLUSTER), "restart-node", str(work / "cluster"),
                        str(victim)], check=True, env={**os.environ,
                                                       "NODE_TIMEOUT": str(node_timeout_ms)})
        pids.add(_pid(victim))
        # Load goes on until writes have been answered for `after` seconds without a refusal.
        while time.monotonic() - max(last_refused[0], killed_at[0]) < after:
            if time.monotonic() > deadline:
                raise RuntimeError("writes were still refused 60 s after the failover")
            time.sleep(0.1)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    figures.recovery_seconds = round(max(0.0, last_refused[0] - killed_at[0]), 1) \
        if killed_at else 0.0
    figures.acknowledged = len(acknowledged)

    # What `agegate worker` does after a crash: apply what the units left in their outboxes.
    state = app.extensions["agegate"]
    for _ in range(1000):
        if not state.outbox.drain_all():
            break
    for email in acknowledged:
        lookups = state.age_checks.lookups({"email": email})
        _, retry_blocked = state.identities.blocks(lookups)
        if not retry_blocked:
            figures.lost += 1
    state.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=7111, help="first of six ports")
    parser.add_argument("--min-replicas", type=int, default=1)
    parser.add_argument("--threads", type=int, default=12)
    parser.add_argument("--before", type=float, default=10.0, help="seconds of load first")
    parser.add_argument("--after", type=float, default=10.0,
                        help="seconds without a refusal that end the run")
    parser.add_argument("--freeze", type=float, default=1.0,
                        help="seconds the replica lags before its primary is killed")
    args = parser.parse_args()
    figures = run(args.port, args.min_replicas, args.threads, args.before, args.after,
                  args.freeze)
    print(json.dumps(asdict(figures), indent=2))


if __name__ == "__main__":
    main()
