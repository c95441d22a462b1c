"""Benchmark: one flow on a single Redis and on a 3-primary Redis Cluster, side by side.

Run from the repo root: `python benchmarks/bench_cluster.py`. Starts an embedded Redis and a
3-primary cluster on 127.0.0.1 (ports 7201-7203 unless --port moves them; Debian's redis-server,
scripts/redis-cluster.sh) and drives the same flow through the app in this process (Flask's test
client, the model off), one request at a time:

- age checks (realistic bodies from bench_age_check: retry blocks go through the outbox);
- content removals, each opening a review case on its own account (so cases spread over shards);
- reviewers claiming the next case until the queue is empty (the fan-out over 64 shards);
- `audit verify` over everything written (walks every shard).

The two backends take turns (--rounds, default 3, alternating so a busy moment on the shared
machine hits both) and the median round is printed: operations per second for each backend and
cluster/single. Exits 0 whatever the figures,
2 if the harness itself failed. Single-threaded and in-process: it measures what one request
costs against each backend (round trips and fan-out), not what a cluster can absorb in total.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness  # noqa: E402
from benchmarks.bench_age_check import age_check_bodies  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def build(redis_url: str, cluster: bool, data_dir: Path, token: str, secret: str):
    """The product app against one backend, the model switched off (not in this flow)."""
    from agegate import create_app
    from agegate.config import ApiKey, Config

    keys = tuple(ApiKey(name=f"bench-{role}", role=role, token=f"{token}-{role}")
                 for role in ("registration", "signals", "reviewer", "admin"))
    config = Config(env="production", secret_key=secret, api_keys=keys,
                    redis_url=redis_url, redis_cluster=cluster, data_dir=data_dir,
                    load_model=False, log_level="WARNING")
    return create_app(config)


def timed(count: int, step: Callable[[int], int]) -> tuple[float, int]:
    """(operations per second, non-2xx answers) for `count` calls of step(i) -> status."""
    bad = 0
    started = time.perf_counter()
    for i in range(count):
        status = step(i)
        if status >= 300 and status != 204:
            bad += 1
    return count / (time.perf_counter() - started), bad


def flow(app, token: str, checks: int, cases: int) -> dict[str, tuple[float, int]]:
    """The measured flow on one app; returns {step: (ops/s, failures)}."""
    client = app.test_client()

    def auth(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}-{role}", "Content-Type": "application/json"}

    bodies = age_check_bodies(checks, f"c{secrets.token_hex(4)}", seed=7)
    run = secrets.token_hex(4)
    results = {
        "age check": timed(checks, lambda i: client.post(
            "/v1/age-checks", data=bodies[i], headers=auth("registration")).status_code),
        "content removal (opens a case)": timed(cases, lambda i: client.post(
            "/v1/content-removals", headers=auth("signals"), json={
                "account_id": f"acc-{run}-{i}", "region": "US-CA",
                "items": [{"content_id": f"post-{i}", "author_account_id": f"acc-{run}-{i}",
                           "visibility": "public"}]}).status_code),
        "claim next case": timed(cases, lambda i: client.post(
            "/v1/review/claims", headers=auth("reviewer")).status_code),
    }
    log = app.extensions["agegate"].audit.log
    started = time.perf_counter()
    checked, problems = log.verify()
    results["audit verify (entries/s)"] = (checked / (time.perf_counter() - started),
                                          len(problems))
    left = client.get("/v1/review/cases?status=open&limit=10", headers=auth("reviewer"))
    if left.json["cases"]:
        raise harness.HarnessError("claims left open cases behind")
    return results


def median(runs: list[dict[str, tuple[float, int]]]) -> dict[str, tuple[float, int]]:
    """Per step: the median rate over the rounds, and every round's failures."""
    return {step: (statistics.median(run[step][0] for run in runs),
                   sum(run[step][1] for run in runs)) for step in runs[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=1000)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=7201, help="first of the cluster's 3 ports")
    args = parser.parse_args()
    token = secrets.token_urlsafe(16)
    secret = secrets.token_urlsafe(40)  # one for every round: the chains must verify
    cluster_dir = Path(tempfile.mkdtemp(prefix="agegate-bench-cluster-"))
    script = REPO / "scripts" / "redis-cluster.sh"
    rounds: dict[str, list[dict[str, tuple[float, int]]]] = {}
    try:
        subprocess.run(["bash", str(script), "start", str(cluster_dir), str(args.port)],
                       check=True)
        with harness.embedded_redis() as single_url:
            for _ in range(args.rounds):
                for label, url, cluster in (
                    ("single Redis", single_url, False),
                    ("3-primary cluster", f"redis://127.0.0.1:{args.port}/0", True),
                ):
                    app = build(url, cluster, cluster_dir / label.replace(" ", "-"), token,
                                secret)
                    try:
                        rounds.setdefault(label, []).append(
                            flow(app, token, args.checks, args.cases))
                    finally:
                        app.extensions["agegate"].close()
    except (harness.HarnessError, subprocess.CalledProcessError) as error:
        print(f"HARNESS FAILED: {error}", file=sys.stderr)
        return 2
    finally:
        subprocess.run(["bash", str(script), "stop", str(cluster_dir)], check=False)
    single, cluster = (median(rounds["single Redis"]), median(rounds["3-primary cluster"]))
    print(f"agegate on one Redis vs a 3-primary Redis Cluster (in-process, one request at a "
          f"time; {args.checks} age checks, {args.cases} cases; median of {args.rounds} "
          "alternating rounds)")
    print(f"  {'step':<34}{'single ops/s':>14}{'cluster ops/s':>15}{'cluster/single':>16}"
          f"{'failures':>10}")
    for step, (rate, bad) in single.items():
        other, other_bad = cluster[step]
        print(f"  {step:<34}{rate:>14.0f}{other:>15.0f}{other / rate:>15.2f}x"
              f"{bad + other_bad:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
