"""Signal ingest throughput: the signal stream with one and two `agegate worker` processes against
the scoring library alone, and HTTP signal posts against a bare Flask echo under the same
gunicorn. Prints figures and PASS/FAIL lines against baselines measured in the same run.

    python benchmarks/bench_ingest.py [--messages 4000] [--seconds 8] [--accounts 500]

- library: `model.update(state, [message])` + `model.score(state)` per message in one process,
  each account's state carried in memory (what a worker does per entry, minus Redis).
- stream: entries `XADD`ed one message each; `agegate worker` processes (real subprocesses,
  production settings, the embedded Redis) apply them; the rate is taken between 10% and 90%
  of the entries applied, so process start-up is not counted. Goals: one worker >= 0.8x the
  library; two >= 1.6x one.
- HTTP: `POST /v1/accounts/{id}/signals` with one message a request against `POST /bench/echo`
  (benchmarks/bench_app.py: same hooks, auth and JSON parsing, no logic) with the same body, and
  with 50 messages a request against the library in messages/s; gunicorn 2 sync workers, wrk
  (or the Python generator without it). Goals: >= 0.35x the echo; 50 a request reported.

Texts are chat-length posts of held-out corpus authors (the model never trained on them).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402
from benchmarks.bench_signals import load_model, model_dir, texts  # noqa: E402

STREAM = "bench:signals"


def signal(text: str, i: int) -> dict:
    at = datetime(2026, 11, 2, 18, tzinfo=UTC) + timedelta(minutes=7 * i)
    return {"type": "message", "at": at.isoformat().replace("+00:00", "Z"), "text": text}


def library_rate(model, bodies: list[str], accounts: int) -> tuple[float, float]:
    """(messages/s, CPU us per message) of the scoring library alone, one message per
    update, states in memory."""
    states: dict[int, dict] = {}
    cpu = time.process_time()
    started = time.perf_counter()
    for i, body in enumerate(bodies):
        account = i % accounts
        state = model.update(states.get(account), [{**signal(body, i), "at": datetime(
            2026, 11, 2, 18, tzinfo=UTC) + timedelta(minutes=7 * i)}])
        model.score(state)
        states[account] = state
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return len(bodies) / elapsed, cpu / len(bodies) * 1e6


def service_env(url: str, tmp: Path, token: str) -> dict[str, str]:
    return {"REDIS_URL": url, "AGEGATE_SECRET_KEY": "s" * 48, "AGEGATE_ENV": "production",
            "AGEGATE_API_KEYS": f"bench:signals:{token},bench-echo:registration:{token}x",
            "AGEGATE_LOG_LEVEL": "WARNING", "AGEGATE_MODEL_DIR": str(model_dir()),
            "AGEGATE_DATA_DIR": str(tmp), "AGEGATE_SIGNALS_STREAM": STREAM,
            "PYTHONPATH": str(ROOT)}


def stream_rate(url: str, env: dict[str, str], bodies: list[str], accounts: int,
                workers: int) -> tuple[float, dict[str, float], int]:
    """(messages/s, CPU us per message of the workers and of redis-server, entries left
    unapplied) for `workers` worker processes."""
    import redis

    r = redis.Redis.from_url(url, decode_responses=True)
    r.flushall()
    procs = [subprocess.Popen([sys.executable, "-m", "agegate.cli", "worker", "--consumer",
                               f"bench-{n}"], env={**os.environ, **env}, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for n in range(workers)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if "agegate worker" not in line:
                raise harness.HarnessError(f"worker did not start: {line}{proc.stdout.read()}")
        time.sleep(1.0)  # every worker is in its first blocking read
        pipe = r.pipeline(transaction=False)
        for i, body in enumerate(bodies):
            pipe.xadd(STREAM, {"account_id": f"acc-{i % accounts}",
                               "signals": json.dumps([signal(body, i)])})
        total = len(bodies)
        low, high = int(total * 0.1), int(total * 0.9)
        pipe.execute()
        marks: dict[str, float] = {}
        meter = harness.CpuMeter({"worker": [p.pid for p in procs],
                                  "redis": [harness.redis_pid(url)]})
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done = total - int(r.xlen(STREAM))
            now = time.perf_counter()
            if done >= low and "low" not in marks:
                marks["low"], marks["low_done"] = now, done
                meter.start()
            if done >= high:
                marks["high"], marks["high_done"] = now, done
                meter.stop()
                break
            time.sleep(0.01)
        if "high" not in marks:
            raise harness.HarnessError("the stream was not applied within 10 minutes")
        applied = marks["high_done"] - marks["low_done"]
        rate = applied / (marks["high"] - marks["low"])
        cpu = {name: seconds / applied * 1e6 for name, seconds in meter.used.items()}
        while r.xlen(STREAM) and time.monotonic() < deadline:
            time.sleep(0.05)
        return rate, cpu, int(r.xlen(STREAM))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        r.close()


def http_requests(bodies: list[str], per_request: int, accounts: int,
                  path: str) -> list[tuple[str, bytes]]:
    """(path, body) pairs: `per_request` messages a body, accounts in turn."""
    out = []
    for n, start in enumerate(range(0, len(bodies), per_request)):
        chunk = bodies[start:start + per_request]
        body = json.dumps({"signals": [signal(b, start + j) for j, b in enumerate(chunk)]})
        out.append((path.format(account=f"acc-{n % accounts}"), body.encode()))
    return out


def measured_loop(server: harness.Gunicorn, name: str, requests: list[tuple[str, bytes]],
                  token: str, seconds: float, rounds: list[harness.ThroughputResult]) -> None:
    """One closed loop, appended to `rounds`."""
    rounds.append(closed_loop(name, server.port, requests, token, seconds))


def combined(rounds: list[harness.ThroughputResult]) -> harness.ThroughputResult:
    """Several rounds of one endpoint as one result."""
    return harness.ThroughputResult(rounds[0].name, rounds[0].tool,
                                    sum(r.requests for r in rounds),
                                    sum(r.non_2xx for r in rounds),
                                    sum(r.errors for r in rounds),
                                    sum(r.seconds for r in rounds))


def closed_loop(name: str, port: int, requests: list[tuple[str, bytes]], token: str,
                seconds: float, connections: int = 8) -> harness.ThroughputResult:
    """Max-rate run with wrk, one (path, body) per request in turn (paths spread over accounts,
    as a platform's requests do: one path would make every request race for one account)."""
    if shutil.which("wrk") is None:
        raise SystemExit("this benchmark needs wrk (apt-get install -y wrk)")
    return harness.closed_loop_wrk(name, port, requests, {"Authorization": f"Bearer {token}"},
                                   seconds=seconds, connections=connections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--accounts", type=int, default=500)
    args = parser.parse_args()

    bodies = texts(args.messages)
    model, description = load_model()
    library_rate(model, bodies[:200], args.accounts)  # warm up
    library_before, library_cpu = library_rate(model, bodies, args.accounts)
    print(f"model: {description}; {len(bodies)} chat-length held-out posts over "
          f"{args.accounts} accounts")

    token = secrets.token_urlsafe(24)
    with harness.embedded_redis() as url, tempfile.TemporaryDirectory() as tmp:
        env = service_env(url, Path(tmp), token)
        one, one_cpu, left1 = stream_rate(url, env, bodies, args.accounts, 1)
        two, two_cpu, left2 = stream_rate(url, env, bodies, args.accounts, 2)
        library_after, _ = library_rate(model, bodies, args.accounts)
        library = (library_before + library_after) / 2

        one_each = http_requests(bodies, 1, args.accounts, "/v1/accounts/{account}/signals")
        echo_each = [("/bench/echo", body) for _, body in one_each]
        fifty = http_requests(bodies, 50, args.accounts, "/v1/accounts/{account}/signals")
        runs: dict[str, list[harness.ThroughputResult]] = {"echo": [], "one": [], "fifty": []}
        # --no-control-socket: gunicorn 27 otherwise shares /root/.gunicorn/gunicorn.ctl with
        # every other gunicorn on the machine, and a server of this run outlived it (reparented
        # to init) when another one used that socket.
        with harness.Gunicorn("benchmarks.bench_app:build_app()", env,
                              extra_args=["--access-logfile", "/dev/null",
                                          "--no-control-socket"],
                              start_timeout=90) as server:
            closed_loop("warm-up", server.port, echo_each[:50], token + "x", 2)
            closed_loop("warm-up", server.port, one_each[:50], token, 2)
            # Alternated, so a change in the machine's load hits both sides of each ratio.
            for _ in range(2):
                measured_loop(server, "echo (1 message)", echo_each, token + "x",
                              args.seconds / 2, runs["echo"])
                measured_loop(server, "signals (1 message)", one_each, token,
                              args.seconds / 2, runs["one"])
                measured_loop(server, "signals (50 messages)", fifty, token,
                              args.seconds / 2, runs["fifty"])
    echo, single, batch = (combined(runs[k]) for k in ("echo", "one", "fifty"))

    print(f"library alone (update + score, one process): {library_before:,.0f} messages/s "
          f"before the stream runs, {library_after:,.0f} after; CPU {library_cpu:,.0f} "
          f"us/message")
    for label, rate, used, left in (("1 worker", one, one_cpu, left1),
                                    ("2 workers", two, two_cpu, left2)):
        print(f"stream, {label}: {rate:,.0f} messages/s ({rate / library:.2f}x the library); "
              f"CPU per message: worker {used['worker']:,.0f} us + redis-server "
              f"{used['redis']:,.0f} us{f'; {left} left unapplied' if left else ''}")
    print("HTTP, gunicorn 2 sync workers, access log off (two alternated rounds each):")
    harness.print_throughput([echo, single, batch])
    batch_rate = batch.rate * 50
    print(f"signals with 1 message a request: {single.rate / echo.rate:.2f}x the echo")
    print(f"signals with 50 messages a request: {batch_rate:,.0f} messages/s "
          f"({batch_rate / library:.2f}x the library)")
    print(f"CPU ratio library/stream worker+redis per message: "
          f"{library_cpu / (one_cpu['worker'] + one_cpu['redis']):.2f}")
    print(harness.verdict("stream, one worker vs library", one >= 0.8 * library,
                          f"{one / library:.2f}x (goal >= 0.8x)"))
    print(harness.verdict("stream, two workers vs one", two >= 1.6 * one,
                          f"{two / one:.2f}x (goal >= 1.6x)"))
    print(harness.verdict("HTTP, 1 message a request vs echo", single.rate >= 0.35 * echo.rate,
                          f"{single.rate / echo.rate:.2f}x (goal >= 0.35x)"))
    print(harness.verdict("HTTP, 50 messages a request vs library", batch_rate >= library,
                          f"{batch_rate / library:.2f}x (goal >= 1.0x)"))
    stream_cpu = one_cpu["worker"] + one_cpu["redis"]
    print(harness.verdict("stream, one worker: worker+Redis CPU per message vs library",
                          stream_cpu <= 1.25 * library_cpu,
                          f"{stream_cpu / library_cpu:.2f}x (goal <= 1.25x; or the 0.8x rate)"))
    print(f"note: {os.cpu_count()} CPUs, shared with whatever else runs; figures are noisy.")

if __name__ == "__main__":
    main()
