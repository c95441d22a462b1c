"""Webhook delivery throughput of one `agegate worker` job, against a bare POST loop.

    python benchmarks/bench_webhooks.py [--events 2000]

Starts an embedded Redis and a loopback HTTP receiver (always 200), registers one webhook,
emits N events through the service's own EventStream, then runs the worker's webhook job
in-process until every event has arrived, signed. The baseline, measured in the same run, is the
same number of POSTs of the same bodies by urllib in one thread with no Redis at all: the ratio
says what fan-out, claiming, signing and the delivery log cost on top of HTTP itself. Prints
figures; exits 0 (2 only if the harness failed).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agegate.clock import Clock  # noqa: E402
from agegate.config import Config  # noqa: E402
from agegate.extensions import Agegate  # noqa: E402
from agegate.storage.unit import transact  # noqa: E402
from benchmarks.harness import embedded_redis  # noqa: E402

SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self.bad = 0
        self.lock = threading.Lock()
        self.secret: str | None = None


def receiver(counter: Counter) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ok = True
            if counter.secret:
                try:
                    Webhook(counter.secret).verify(body, dict(self.headers.items()))
                except WebhookVerificationError:
                    ok = False
            with counter.lock:
                counter.n += 1
                counter.bad += not ok
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def commands(client) -> int:
    return sum(int(v["calls"]) for k, v in client.info("commandstats").items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    n = args.events
    counter = Counter()
    server = receiver(counter)
    url = f"http://127.0.0.1:{server.server_port}/hook"
    body = (b'{"account_id":"acc-000000","at":"2026-11-30T10:00:00Z","deletion_id":"del_x",'
            b'"id":"1764496800000-0","type":"account.terminated"}')

    start = time.perf_counter()
    for _ in range(n):
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
    baseline = time.perf_counter() - start
    counter.n = 0

    with embedded_redis() as redis_url:
        config = Config(env="production", secret_key=SECRET, redis_url=redis_url,
                        load_model=False, webhook_allow_http=True,
                        webhook_allowed_networks=("127.0.0.0/8",)).validate()
        state = Agegate(config, Clock())
        try:
            created = state.webhooks.create(url, ["account.terminated"], service_host=None,
                                            actor="bench")
            counter.secret = created["secret"]
            now = state.clock.now()
            for first in range(0, n, 500):
                def build(pipe, first=first):  # events go through a unit's outbox
                    pipe.multi()
                    for i in range(first, min(first + 500, n)):
                        state.events.queue_emit(pipe, "account.terminated",
                                                account_id=f"acc-{i:06d}", at=now,
                                                deletion_id=f"del_{i}")

                transact(state.redis, build, shard=0)
            while state.outbox.drain_all():
                pass
            [job] = [j for j in state.worker_jobs if j.name == "webhooks"]
            before = commands(state.redis)
            start = time.perf_counter()
            deadline = time.monotonic() + 600
            while counter.n < n and time.monotonic() < deadline:
                job.run_once("bench")
            elapsed = time.perf_counter() - start
            used = commands(state.redis) - before
        finally:
            state.close()
            server.shutdown()
    if counter.n < n:
        print(f"HARNESS: only {counter.n} of {n} deliveries arrived", file=sys.stderr)
        sys.exit(2)
    print(f"events: {n}; all delivered, {counter.bad} failed verification")
    print(f"baseline (bare urllib POSTs, no Redis): {n / baseline:8.0f} POST/s")
    print(f"worker job (fan-out, claim, sign, log): {n / elapsed:8.0f} deliveries/s "
          f"({baseline / elapsed:.2f}x baseline)")
    print(f"redis commands per delivery: {used / n:.1f}")


if __name__ == "__main__":
    main()
