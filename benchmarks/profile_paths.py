"""Where the time goes on the volume paths: cProfile of the age check, a one-message signal
post and a worker batch, in-process (the app's WSGI stack through Flask's test client, an
embedded Redis), with the round trips to Redis and the CPU per request.

    python benchmarks/profile_paths.py [--requests 1500] [--batch 100] [--top 14]

Prints, per path: the top functions by own time (tottime) and by cumulative time, the
process's CPU per request and redis-server's, and Redis round trips per request (counted at
redis-py's connection: one `send_packed_command` is one round trip, a pipeline included).
No gunicorn and no load generator here: bench_age_check.py and bench_ingest.py measure those.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402
from benchmarks.bench_age_check import age_check_bodies  # noqa: E402
from benchmarks.bench_ingest import STREAM, signal  # noqa: E402
from benchmarks.bench_signals import model_dir, texts  # noqa: E402


class RoundTrips:
    """Counts redis-py's sends on every connection (a pipeline is one send, one round trip)."""

    def __init__(self) -> None:
        import redis.connection

        self.count = 0
        self._cls = redis.connection.AbstractConnection
        self._orig = self._cls.send_packed_command

        def counted(conn, command, check_health=True):  # noqa: ANN001, ANN202
            self.count += 1
            return self._orig(conn, command, check_health)

        self._cls.send_packed_command = counted  # type: ignore[method-assign]


def profiled(name: str, run, n: int, redis_pid: int, trips: RoundTrips, top: int) -> None:
    """Run `run()` under cProfile; print its tops and the per-request figures."""
    profile = cProfile.Profile()
    redis_before = harness.cpu_seconds(redis_pid)
    cpu_before, trips_before = time.process_time(), trips.count
    started = time.perf_counter()
    profile.enable()
    run()
    profile.disable()
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    redis_cpu = harness.cpu_seconds(redis_pid) - redis_before
    print(f"\n=== {name}: {n} requests, {n / wall:,.0f}/s under the profiler; CPU per request: "
          f"app {cpu / n * 1e6:,.0f} us (profiler included), redis-server "
          f"{redis_cpu / n * 1e6:,.0f} us; Redis round trips per request "
          f"{(trips.count - trips_before) / n:.2f}")
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats(order).print_stats(top)
        lines = [line for line in out.getvalue().splitlines() if line.strip()]
        start = next(i for i, line in enumerate(lines) if "ncalls" in line)
        print(f"-- by {order}")
        for line in lines[start:start + top + 1]:
            print(line.replace(str(ROOT) + "/", "").replace(sys.prefix, "<venv>")[:150])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--top", type=int, default=14)
    args = parser.parse_args()

    token = secrets.token_urlsafe(24)
    bodies = texts(args.requests + args.batch * 5)
    with harness.embedded_redis() as url, tempfile.TemporaryDirectory() as tmp:
        os.environ.update({
            "REDIS_URL": url, "AGEGATE_SECRET_KEY": "s" * 48, "AGEGATE_ENV": "production",
            "AGEGATE_API_KEYS": f"bench:signals:{token},reg:registration:{token}r",
            "AGEGATE_LOG_LEVEL": "WARNING", "AGEGATE_MODEL_DIR": str(model_dir()),
            "AGEGATE_DATA_DIR": tmp, "AGEGATE_SIGNALS_STREAM": STREAM})
        from agegate import create_app
        from agegate.ingest import SignalStreamJob

        app = create_app()
        state = app.extensions["agegate"]
        client = app.test_client()
        trips = RoundTrips()
        pid = harness.redis_pid(url)

        checks = age_check_bodies(args.requests, secrets.token_hex(4), 7)
        reg = {"Authorization": f"Bearer {token}r", "Content-Type": "application/json"}
        sig = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

        def age_checks() -> None:
            for body in checks:
                response = client.post("/v1/age-checks", data=body, headers=reg)
                assert response.status_code == 200, response.get_data(as_text=True)

        posts = [json.dumps({"signals": [signal(b, i)]}).encode()
                 for i, b in enumerate(bodies[:args.requests])]

        def signal_posts() -> None:
            for i, body in enumerate(posts):
                response = client.post(f"/v1/accounts/acc-{i % 500}/signals", data=body,
                                       headers=sig)
                assert response.status_code == 200, response.get_data(as_text=True)

        job = next(j for j in state.worker_jobs if isinstance(j, SignalStreamJob))
        rounds = 5
        r = state.redis
        stream_bodies = bodies[args.requests:]
        pipe = r.pipeline(transaction=False)
        for i, body in enumerate(stream_bodies):
            pipe.xadd(STREAM, {"account_id": f"acc-{i % 500}",
                               "signals": json.dumps([signal(body, i)])})
        pipe.execute()

        def worker_batches() -> None:
            for _ in range(rounds):
                job.run_once("profile")

        for body in checks[:50]:  # warm up
            client.post("/v1/age-checks", data=body, headers=reg)
        profiled("POST /v1/age-checks", age_checks, len(checks), pid, trips, args.top)
        profiled("POST /v1/accounts/{id}/signals, one message", signal_posts, len(posts), pid,
                 trips, args.top)
        profiled(f"agegate worker: {rounds} batches of {job.ingest.batch} entries "
                 "(per entry)", worker_batches, rounds * job.ingest.batch, pid, trips, args.top)


if __name__ == "__main__":
    main()
