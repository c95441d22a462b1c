"""Benchmark: POST /v1/age-checks against a bare echo route of the same app (issue 2).

Run from the repo root: `python benchmarks/bench_age_check.py`. Starts its own embedded Redis
and gunicorn (2 sync workers, production gunicorn.conf.py), sends traffic only to 127.0.0.1,
and stops everything it started. Targets: age-check throughput >= 0.30x echo (the one documented
route: schema, service, one unit of work), and p99 < 10 ms at 1,000 req/s offered (open loop,
latency from the scheduled send time). Exits 0 whatever the verdicts, 2 if the harness failed.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import secrets
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness  # noqa: E402
from benchmarks.bench_app import NO_MODEL_MARKER  # noqa: E402

AGE_CHECK = "/v1/age-checks"
ECHO = "/bench/echo"
APP = "benchmarks.bench_app:build_app()"
# Issue 14: the one documented route must stay at or above 0.30x the echo.
RATIO_TARGET = 0.35
P99_TARGET = 0.010
RATE = 1000.0
TIME_LIMIT = 178  # seconds for the whole run; the brief allows < 3 minutes

COUNTRIES = [("US", ["CA", "NY", "TX", "AL", "FL", None]), ("GB", [None]), ("DE", [None]),
             ("FR", [None]), ("JP", [None]), ("BR", [None]), ("IN", [None]), ("CA", ["ON", None]),
             ("AU", [None]), ("MX", [None])]


def _born(rng: random.Random, today: date, min_years: int, max_years: int) -> str:
    """A birth date between min_years and max_years ago, clear of the 18th-birthday edge."""
    days = rng.randint(min_years * 366, max_years * 365)
    return (today - timedelta(days=days)).isoformat()


def age_check_bodies(count: int, run_tag: str, seed: int) -> list[bytes]:
    """Realistic registration traffic: ~75% adults, ~20% minors, ~5% minors coming back with a
    new date; identifiers are unique per person, so retry-block keys keep growing."""
    rng = random.Random(seed)
    today = datetime.now(UTC).date()
    minors: list[dict[str, str]] = []
    bodies = []
    for i in range(count):
        country, regions = rng.choice(COUNTRIES)
        region = rng.choice(regions)
        roll = rng.random()
        if roll < 0.05 and minors:
            # The same person as an earlier minor (same device/email), now claiming to be older.
            ids = dict(rng.choice(minors))
            dob = _born(rng, today, 19, 40)
        else:
            person = f"{run_tag}-{i}-{rng.getrandbits(32):08x}"
            ids = {}
            if rng.random() < 0.9:
                ids["device_id"] = f"dev-{person}"
            if rng.random() < 0.85:
                ids["email"] = f"User.{person}@Example.com "
            if rng.random() < 0.7:
                ids["session_id"] = f"s-{person}"
            if roll < 0.25:
                dob = _born(rng, today, 13, 17)
                minors.append(ids)
            else:
                dob = _born(rng, today, 19, 80)
        body: dict[str, str] = {"date_of_birth": dob, "country": country, **ids}
        if region:
            body["region"] = region
        if rng.random() < 0.3:
            body["account_id"] = f"acc-{run_tag}-{i}"
        bodies.append(json.dumps(body).encode())
    return bodies


def server_env(redis_url: str, token: str) -> dict[str, str]:
    """The production environment the service would get, pointed at the embedded Redis."""
    return {
        "REDIS_URL": redis_url,
        "AGEGATE_SECRET_KEY": secrets.token_urlsafe(40),
        "AGEGATE_API_KEYS": f"bench:registration:{token}",
        "AGEGATE_ENV": "production",
        "AGEGATE_MODEL_DIR": str(harness.REPO_ROOT / "model"),
        "AGEGATE_LOG_LEVEL": "INFO",
    }


def redis_calls(redis_url: str) -> tuple[int, int]:
    """(script calls, all commands) executed by Redis so far, from INFO commandstats; commands
    run inside scripts count too, so the second figure is the server-side work."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    scripts = sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0)
                  for name in ("evalsha", "eval"))
    return scripts, sum(entry.get("calls", 0) for entry in stats.values())


def _own_cpu() -> float:
    """CPU seconds of this process and its finished children (wrk runs as one)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def fixed_rate(name: str, port: int, path: str, bodies: list[bytes], headers: dict[str, str],
               rate: float, openloop: Path | None
               ) -> tuple[harness.LatencyResult, harness.Generator]:
    """One open-loop run: the C generator when it was built, else the Python one."""
    if openloop is not None:
        return harness.open_loop_c(openloop, name, port, path, bodies, headers, rate=rate)
    before = _own_cpu()
    result = harness.open_loop(name, port, path, bodies, headers, rate=rate)
    return result, harness.Generator("python-asyncio", _own_cpu() - before)


def measure(label: str, server: harness.Gunicorn, token: str, seconds: float,
            use_wrk: bool, seed: int, redis_url: str, openloop: Path | None = None) -> dict:
    """Throughput of both endpoints, then fixed-rate latency of both, on one running server."""
    headers = {"Authorization": f"Bearer {token}"}
    port = server.port
    tag = f"run{seed}"  # identifiers must be printable ASCII without spaces
    pool = age_check_bodies(int(seconds * 6000), f"{tag}-t", seed)
    warm = age_check_bodies(300, f"{tag}-w", seed + 1)

    for path in (ECHO, AGE_CHECK):  # warm the routes (imports, connections, caches)
        fixed_rate("warmup", port, path, warm, headers, RATE, openloop)

    throughput = []
    cpu = []
    groups = {"workers": server.worker_pids(), "master": [server.process.pid],  # type: ignore
              "redis": [harness.redis_pid(redis_url)]}
    for name, path in (("echo", ECHO), ("age-check", AGE_CHECK)):
        before = redis_calls(redis_url)
        meter = harness.CpuMeter(groups).start()
        generator = _own_cpu()
        if use_wrk:
            result = harness.closed_loop_wrk(name, port, [(path, body) for body in pool],
                                          headers, seconds=seconds)
        else:
            result = harness.closed_loop_python(name, port, path, pool, headers, seconds=seconds)
        used = {**meter.stop(), "generator": _own_cpu() - generator}
        throughput.append(result)
        after = redis_calls(redis_url)
        answered = max(result.requests - result.non_2xx - result.errors, 1)
        cpu.append(harness.per_request(name, used, answered))
        if name == "age-check":
            per_check = ((after[0] - before[0]) / answered, (after[1] - before[1]) / answered)

    # Below saturation first: half the age check's measured max rate, to tell "slow" from
    # "overloaded" when 1,000 req/s is more than the server can take.
    low_rate = max(10.0, min(RATE, 0.5 * throughput[1].rate))
    low = []
    for name, path in (("echo", ECHO), ("age-check", AGE_CHECK)):
        bodies = age_check_bodies(int(low_rate * seconds / 2), f"{tag}-s-{name}", seed + 3)
        low.append(fixed_rate(name, port, path, bodies, headers, low_rate, openloop)[0])
        server.drain()

    latency = []
    generators = []
    count = int(RATE * seconds / 2)
    for name, path in (("echo", ECHO), ("age-check", AGE_CHECK)):
        bodies = age_check_bodies(count, f"{tag}-l-{name}", seed + 2)
        result, generator = fixed_rate(name, port, path, bodies, headers, RATE, openloop)
        latency.append(result)
        generators.append(generator)
        # An overloaded run leaves queued connections; the next run must not inherit them.
        server.drain()
    return {"label": label, "throughput": throughput, "latency": latency, "low": low,
            "pool": len(pool), "per_check": per_check, "cpu": cpu, "generators": generators}


def report(run: dict) -> list[str]:
    """Print one configuration's tables; return its verdict lines."""
    echo_t, age_t = run["throughput"]
    echo_l, age_l = run["latency"]
    print(f"\n== {run['label']} ==")
    print("Throughput (closed loop, max rate):")
    harness.print_throughput(run["throughput"])
    if age_t.requests > run["pool"]:
        print(f"  note: {age_t.requests} requests > {run['pool']} distinct bodies; some repeated")
    ratio = age_t.rate / echo_t.rate if echo_t.rate else 0.0
    print(f"  ratio age-check/echo = {ratio:.2f} (target >= {RATIO_TARGET:.2f})")
    echo_c, age_c = run["cpu"]

    def server(cpu: harness.CpuPerRequest) -> float:
        return cpu.total - cpu.micros["generator"]

    server_ratio = server(echo_c) / max(server(age_c), 1e-9)
    whole_ratio = echo_c.total / max(age_c.total, 1e-9)
    print("CPU per answered request during the throughput runs (us, /proc utime+stime; "
          "robust on a busy machine):")
    harness.print_cpu(run["cpu"])
    print(f"  CPU ratio echo/age-check: server (workers + master + redis) {server_ratio:.2f}, "
          f"with the generator {whole_ratio:.2f} (what a CPU-bound closed loop's throughput "
          "ratio approaches)")
    scripts, commands = run["per_check"]
    print(f"  Redis per age check: {scripts:.2f} script calls, {commands:.1f} commands in all "
          f"(redeclarations also score a signal)")
    print(f"Latency (open loop, {RATE:.0f} req/s offered for half a run, ms from scheduled send):")
    harness.print_latency(run["latency"])
    print(f"  age-check decisions: {dict(age_l.reasons.most_common())}")
    print(f"Latency below saturation (open loop, {run['low'][0].offered_rate:.0f} req/s = half "
          "the age check's max rate; informational):")
    harness.print_latency(run["low"])
    lines = [
        harness.verdict(f"[{run['label']}] throughput age-check >= {RATIO_TARGET}x echo",
                        ratio >= RATIO_TARGET and age_t.non_2xx == 0,
                        f"{age_t.rate:.0f} vs {echo_t.rate:.0f} req/s = {ratio:.2f}x"),
        harness.verdict(
            f"[{run['label']}] age-check p99 < {P99_TARGET * 1000:.0f} ms at {RATE:.0f} req/s",
            age_l.pct(99) < P99_TARGET and not age_l.errors
            and age_l.ok == age_l.scheduled and age_l.achieved_rate >= 0.98 * RATE,
            f"p99 {harness.ms(age_l.pct(99))} ms, achieved {age_l.achieved_rate:.0f} req/s, "
            f"{age_l.ok}/{age_l.scheduled} ok",
        ),
    ]
    # Is the generator itself the limit? It is if it sent late; if it sent on time and the echo
    # still fell short of the rate, the server was saturated.
    gen_ok = all(result.lag_pct(99) < 0.002 for result in run["latency"])
    for result, generator in zip(run["latency"], run["generators"], strict=True):
        print(f"  generator ({generator.tool}) CPU for {result.name}: "
              f"{generator.cpu_seconds / max(result.scheduled, 1) * 1e6:.0f} us per request, "
              f"{generator.cpu_seconds / max(result.elapsed, 1e-9) * 100:.0f}% of one core")
    saturated = echo_l.achieved_rate < 0.98 * RATE
    print(f"  generator: send lag p99 echo {harness.ms(echo_l.lag_pct(99))} ms, age-check "
          f"{harness.ms(age_l.lag_pct(99))} ms -> "
          f"{'kept its schedule' if gen_ok else 'DID NOT keep its schedule (< 2 ms)'}; "
          f"echo achieved {echo_l.achieved_rate:.0f}/{RATE:.0f} req/s"
          + (" -> the server, not the generator, saturated" if saturated and gen_ok else ""))
    return lines


def _timeout(signum: int, frame: object) -> None:
    raise harness.HarnessError(f"benchmark exceeded its {TIME_LIMIT}s limit")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each measured run")
    parser.add_argument("--python-only", action="store_true",
                        help="neither wrk nor the C open-loop generator: Python generators only")
    parser.add_argument("--skip-no-access-log", action="store_true",
                        help="only measure the production config (access log on)")
    args = parser.parse_args()

    signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(TIME_LIMIT)
    use_wrk = not args.python_only and shutil.which("wrk") is not None
    token = secrets.token_urlsafe(24)
    configs = [("production config (access log to a file)", [])]
    if not args.skip_no_access_log:
        configs.append(("access log off (--access-logfile /dev/null)",
                        ["--access-logfile", "/dev/null"]))
    print("agegate age-check benchmark: gunicorn -c gunicorn.conf.py -k sync -w 2, "
          f"embedded Redis, {args.seconds:g}s per run")
    build_dir = Path(tempfile.mkdtemp(prefix="agegate-bench-build-"))
    openloop = None if args.python_only else harness.build_openloop(build_dir)
    latency_tool = ("C epoll open-loop generator (benchmarks/openloop.c, built with gcc)"
                    if openloop else "Python asyncio open-loop generator"
                    + ("" if args.python_only else " (gcc missing or the C build failed)"))
    if use_wrk:
        print(f"throughput: wrk (closed loop, 1 thread, 8 connections); latency: {latency_tool}")
    else:
        print("throughput: wrk NOT available (or --python-only) -> Python asyncio closed loop "
              f"(8 concurrent); latency: {latency_tool}")
    started = time.monotonic()
    verdicts: list[str] = []
    try:
        with harness.embedded_redis() as redis_url:
            env = server_env(redis_url, token)
            for i, (label, extra) in enumerate(configs):
                server = harness.Gunicorn(APP, env, workers=2, extra_args=extra, label=label)
                with server:
                    if i == 0 and NO_MODEL_MARKER in server.log():
                        print("note: agegate.model is not on this branch, so create_app() "
                              "raises ModuleNotFoundError; bench_app served with "
                              "load_model=False (the age check does not use the model)")
                    run = measure(label, server, token, args.seconds, use_wrk, seed=100 + i,
                                  redis_url=redis_url, openloop=openloop)
                    statuses = server.access_statuses()
                verdicts += report(run)
                print(f"  access log (path, status): {dict(statuses) or 'none (off)'}")
            import redis

            keys = redis.Redis.from_url(redis_url).dbsize()
    except harness.HarnessError as error:
        print(f"\nHARNESS FAILED: {error}", file=sys.stderr)
        return 2
    finally:
        signal.alarm(0)
        shutil.rmtree(build_dir, ignore_errors=True)
    print(f"\nRedis keys at the end: {keys}; wall time {time.monotonic() - started:.0f}s")
    print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
