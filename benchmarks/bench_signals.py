"""Signal posts through gunicorn (2 sync workers, real Redis) against the raw model on the same
texts: prints throughput, latency and the overhead ratio.

    python benchmarks/bench_signals.py [--requests 2000] [--concurrency 4] [--accounts 200]

Uses the trained model from AGEGATE_MODEL_DIR (default: model/) on both sides and stops with a
clear message when the artifact cannot be loaded. The messages are real posts from the corpus's
held-out test authors (the model never trained on them), cut to chat length. Only talks to
127.0.0.1; the server plumbing is benchmarks/harness.py's.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402

CHAT_LENGTH = 280


def texts(n: int) -> list[str]:
    """n chat-length messages: posts of held-out test authors, cycled if there are too few."""
    from training.data import iter_authors, split_of

    posts: list[str] = []
    for author in iter_authors():
        if split_of(author["author_id"]) != "test":
            continue
        posts.extend(p["text"][:CHAT_LENGTH] for p in author["posts"] if p["text"].strip())
        if len(posts) >= n:
            break
    if not posts:
        raise SystemExit("no corpus posts found: set AGEGATE_TRAINING_DATA")
    return [posts[i % len(posts)] for i in range(n)]


def model_dir() -> Path:
    return Path(os.environ.get("AGEGATE_MODEL_DIR") or ROOT / "model")


def bench_app():
    """gunicorn factory: the app from the environment, with the trained model (required)."""
    from agegate import create_app
    from agegate.config import from_env

    app = create_app(from_env().with_overrides(load_model=True, model_dir=model_dir()))
    if app.extensions["agegate"].model is None:
        raise SystemExit(f"the trained model did not load from {model_dir()}")
    return app


def load_model():
    """(model, description) for the raw side; exits when the artifact is missing or bad."""
    from agegate.model import ModelLoadError
    from agegate.model import load_model as real_load

    try:
        return real_load(model_dir()), f"trained model from {model_dir()}"
    except ModelLoadError as error:
        raise SystemExit(f"benchmark needs the trained model: {error}") from error


def run_http(port: int, token: str, bodies: list[str], accounts: int,
             concurrency: int) -> tuple[float, list[float], int]:
    """Post every body once, `concurrency` at a time; (seconds, latencies, errors)."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    cursor = iter(range(len(bodies)))

    def worker() -> None:
        nonlocal errors
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            signal = {"type": "message", "at": datetime.now(UTC).isoformat(), "text": bodies[i]}
            payload = json.dumps({"signals": [signal]})
            started = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", f"/v1/accounts/bench-{i % accounts}/signals", payload,
                         {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            response.read()
            conn.close()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if response.status != 200:
                    errors += 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies, errors


def run_raw(model, bodies: list[str]) -> float:
    """Seconds for the bare model on the same texts, one signal per call."""
    at = datetime.now(UTC)
    started = time.perf_counter()
    for body in bodies:
        model.score(model.update(model.new_state(), [{"type": "message", "at": at,
                                                       "text": body}]))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--accounts", type=int, default=200)
    args = parser.parse_args()
    if not 1 <= args.requests <= 100_000 or not 1 <= args.concurrency <= 64:
        parser.error("keep --requests within 1..100000 and --concurrency within 1..64")

    bodies = texts(args.requests)
    model, description = load_model()
    run_raw(model, bodies[:50])  # warm up
    raw_seconds = run_raw(model, bodies)

    token = secrets.token_urlsafe(24)
    with harness.embedded_redis() as url:
        env = {"REDIS_URL": url, "AGEGATE_SECRET_KEY": secrets.token_urlsafe(48),
               "AGEGATE_API_KEYS": f"bench:signals:{token}", "AGEGATE_ENV": "production",
               "AGEGATE_LOG_LEVEL": "WARNING", "AGEGATE_MODEL_DIR": str(model_dir()),
               "PYTHONPATH": str(ROOT)}
        with harness.Gunicorn("benchmarks.bench_signals:bench_app()", env,
                              extra_args=["--access-logfile", "/dev/null"],
                              start_timeout=60) as server:
            run_http(server.port, token, bodies[:50], args.accounts, args.concurrency)  # warm
            seconds, latencies, errors = run_http(server.port, token, bodies, args.accounts,
                                                  args.concurrency)

    n = len(bodies)
    latencies.sort()
    raw_per_call = raw_seconds / n
    http_per_req = seconds / n
    print(f"model: {description}")
    print(f"requests: {n} (one message each) over {args.accounts} accounts, "
          f"concurrency {args.concurrency}, gunicorn 2 sync workers, errors {errors}")
    print(f"raw model (update+score, 1 thread): {n / raw_seconds:,.0f} signals/s, "
          f"{raw_per_call * 1e3:.3f} ms each")
    print(f"HTTP signal posts: {n / seconds:,.0f} req/s; latency p50 "
          f"{statistics.median(latencies) * 1e3:.2f} ms, p95 "
          f"{harness.percentile(latencies, 95) * 1e3:.2f} ms, p99 "
          f"{harness.percentile(latencies, 99) * 1e3:.2f} ms")
    print(f"overhead ratio (HTTP wall time per request / raw model time per call): "
          f"{http_per_req / raw_per_call:.1f}x; mean latency / raw call: "
          f"{statistics.mean(latencies) / raw_per_call:.1f}x")


if __name__ == "__main__":
    main()
