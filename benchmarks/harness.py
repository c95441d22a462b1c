"""Reusable benchmark harness: a real gunicorn, a closed-loop and an open-loop load generator.

Traffic goes only to 127.0.0.1. Everything started here is stopped by its own handle, and every
loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # the only address any benchmark sends to


class HarnessError(RuntimeError):
    """The harness itself failed (a server did not start, a generator broke): not a result."""


# -- servers ---------------------------------------------------------------------------------
def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    """A real redis-server in a temp dir (agegate's EmbeddedRedis); yields its URL."""
    from agegate.storage.embedded import EmbeddedRedis

    with tempfile.TemporaryDirectory(prefix="agegate-bench-redis-") as tmp:
        server = EmbeddedRedis(tmp)
        try:
            yield server.start()
        finally:
            server.stop()


class Gunicorn:
    """`gunicorn -c gunicorn.conf.py APP` from the repo root with N sync workers on a free port."""

    def __init__(
        self,
        app: str,
        env: dict[str, str],
        *,
        workers: int = 2,
        extra_args: Sequence[str] = (),
        label: str = "gunicorn",
        start_timeout: float = 30.0,
    ) -> None:
        self.app = app
        self.start_timeout = start_timeout
        self.workers = workers
        self.extra_args = list(extra_args)
        self.label = label
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="agegate-bench-gunicorn-"))
        self.log_path = self.tmp / "server.log"
        self.env = {
            **os.environ,
            **env,
            "AGEGATE_BIND": f"{HOST}:{self.port}",
            "WEB_CONCURRENCY": str(workers),
            # Our own dir, so the multiprocess metric files are removed with the rest.
            "PROMETHEUS_MULTIPROC_DIR": str(self.tmp / "metrics"),
        }
        (self.tmp / "metrics").mkdir()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> Gunicorn:
        """Start the server and wait (up to start_timeout) until /healthz answers 200 on every
        worker's socket."""
        if self.process is not None and self.process.poll() is None:
            # A second master would replace the first in self.process, and stop() would
            # never reach the first: it would outlive the benchmark.
            raise HarnessError(f"{self.label} is already running")
        timeout = self.start_timeout
        args = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                "-k", "sync", "-w", str(self.workers), *self.extra_args, self.app]
        with open(self.log_path, "wb") as logfile:
            self.process = subprocess.Popen(
                args, cwd=REPO_ROOT, env=self.env, stdin=subprocess.DEVNULL,
                stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HarnessError(f"{self.label} exited at start:\n{self.log_tail()}")
            if self._healthy():
                self._wait_for_workers(deadline)
                return self
            time.sleep(0.1)
        self.stop()
        raise HarnessError(f"{self.label} did not answer /healthz in {timeout}s:\n"
                           f"{self.log_tail()}")

    def _healthy(self) -> bool:
        try:
            conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
            conn.request("GET", "/healthz")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def _wait_for_workers(self, deadline: float) -> None:
        """Every worker has booted (each logs "Booting worker"): no request waits on an import."""
        while time.monotonic() < deadline:
            if self.log().count("Booting worker") >= self.workers:
                time.sleep(0.5)  # the last worker logs before it finishes importing the app
                if self._healthy():
                    return
            time.sleep(0.1)

    def drain(self, timeout: float = 30.0) -> float:
        """Wait until connections queued by an overloaded run are served (a /healthz sent now
        is answered only after them); returns the seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                conn.close()
                return time.monotonic() - started
            except OSError:
                time.sleep(0.1)
        raise HarnessError(f"{self.label} did not drain its backlog in {timeout}s")

    def worker_pids(self) -> list[int]:
        """The master's children (the workers), from /proc."""
        if self.process is None:
            return []
        return children(self.process.pid)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def access_statuses(self) -> Counter[tuple[str, str]]:
        """(path, status) counts from the access log (empty when it goes to /dev/null)."""
        return Counter(re.findall(r'"[A-Z]+ (\S+)" (\d{3}) ', self.log()))

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the master (graceful), then SIGKILL its process group if it hangs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.cleanup()


# -- CPU accounting ----------------------------------------------------------------------
# CPU seconds per request are robust where req/s are not: on a busy machine a request takes
# longer in wall time but costs the server about the same CPU, so this explains the ratio.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process from /proc/<pid>/stat (0.0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of stat(5)


def children(parent: int) -> list[int]:
    """Pids whose parent is `parent`, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent:
            found.append(int(entry))
    return sorted(found)


def redis_pid(redis_url: str) -> int:
    """The redis-server's pid, from INFO server."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


@dataclass
class CpuMeter:
    """CPU seconds used by named groups of processes between start() and stop()."""

    groups: dict[str, list[int]]
    used: dict[str, float] = field(default_factory=dict)
    _before: dict[str, float] = field(default_factory=dict)

    def _read(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in self.groups.items()}

    def start(self) -> CpuMeter:
        self._before = self._read()
        return self

    def stop(self) -> dict[str, float]:
        after = self._read()
        self.used = {name: after[name] - self._before[name] for name in self.groups}
        return self.used


@dataclass
class CpuPerRequest:
    """CPU microseconds per answered request, by process group."""

    name: str
    requests: int
    micros: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.micros.values())


def per_request(name: str, used: dict[str, float], requests: int) -> CpuPerRequest:
    """Turn a CpuMeter's seconds into microseconds per request."""
    n = max(requests, 1)
    return CpuPerRequest(name, requests, {k: v / n * 1e6 for k, v in used.items()})


def print_cpu(results: Sequence[CpuPerRequest]) -> None:
    """A table of CPU per request (us), one column per process group, plus the total."""
    groups = list(results[0].micros) if results else []
    print(f"  {'endpoint':<28} {'requests':>9} " + " ".join(f"{g:>12}" for g in groups)
          + f" {'total us':>9}")
    for r in results:
        print(f"  {r.name:<28} {r.requests:>9} "
              + " ".join(f"{r.micros[g]:>12.0f}" for g in groups) + f" {r.total:>9.0f}")


# -- statistics ------------------------------------------------------------------------------
def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (pct in 0..100); NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class LatencyResult:
    """One open-loop run. Latencies are from the *scheduled* send time, in seconds."""

    name: str
    offered_rate: float
    scheduled: int
    latencies: list[float] = field(default_factory=list)
    send_lags: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def achieved_rate(self) -> float:
        """2xx responses per second, over the time from the first scheduled send to the last
        response: a server that falls behind shows up as a lower rate."""
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def pct(self, p: float) -> float:
        return percentile(sorted(self.latencies), p)

    def lag_pct(self, p: float) -> float:
        return percentile(sorted(self.send_lags), p)


@dataclass
class ThroughputResult:
    """One closed-loop run at maximum rate."""

    name: str
    tool: str
    requests: int
    non_2xx: int
    errors: int
    seconds: float

    @property
    def rate(self) -> float:
        return (self.requests - self.non_2xx - self.errors) / self.seconds if self.seconds else 0.0


# -- requests --------------------------------------------------------------------------------
def http_request(path: str, body: bytes, headers: dict[str, str], port: int) -> bytes:
    """One raw HTTP/1.1 POST with `Connection: close` (gunicorn sync workers close anyway)."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close",
             "Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3})")
_REASON = re.compile(rb'"reason":\s*"([a-z_]+)"')


class _OneShot(asyncio.Protocol):
    """Send one request, collect the reply until the server closes (Connection: close).

    A bare Protocol rather than asyncio streams: about half the CPU per request, which is what
    lets one Python process offer 1,000 new connections a second on a 2-core machine.
    """

    def __init__(self, payload: bytes, done: asyncio.Future[bytes]) -> None:
        self.payload = payload
        self.done = done
        self.chunks: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.payload)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if exc is not None:
                self.done.set_exception(exc)
            else:
                self.done.set_result(b"".join(self.chunks))


async def _exchange(port: int, payload: bytes, timeout: float) -> tuple[int, bytes]:
    """Send one request and read until the server closes; returns (status, raw reply)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    transport, _ = await asyncio.wait_for(
        loop.create_connection(lambda: _OneShot(payload, done), HOST, port), timeout
    )
    try:
        data = await asyncio.wait_for(done, timeout)
    finally:
        transport.close()
    match = _STATUS.match(data)
    if not match:
        raise ConnectionError("no HTTP status line")
    return int(match.group(1)), data


# -- open loop -------------------------------------------------------------------------------
async def _open_loop(
    name: str, port: int, payloads: Sequence[bytes], rate: float, timeout: float
) -> LatencyResult:
    loop = asyncio.get_running_loop()
    result = LatencyResult(name=name, offered_rate=rate, scheduled=len(payloads))
    start = loop.time() + 0.05
    last_done = start

    async def one(payload: bytes, scheduled: float) -> None:
        nonlocal last_done
        result.send_lags.append(loop.time() - scheduled)
        try:
            status, data = await _exchange(port, payload, timeout)
        except (TimeoutError, OSError, ConnectionError) as error:
            result.errors[type(error).__name__] += 1
            return
        done = loop.time()
        last_done = max(last_done, done)
        # Measured from the schedule, not from when we got round to sending: a stall counts.
        result.latencies.append(done - scheduled)
        result.statuses[status] += 1
        reason = _REASON.search(data)
        if reason:
            result.reasons[reason.group(1).decode()] += 1

    tasks: list[asyncio.Task[None]] = []
    interval = 1.0 / rate
    for i, payload in enumerate(payloads):
        scheduled = start + i * interval
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        # If we are late, send at once (several in one turn): the lag is charged to latency.
        tasks.append(loop.create_task(one(payload, scheduled)))
    await asyncio.wait(tasks, timeout=timeout + 1)
    for task in tasks:
        task.cancel()
    result.elapsed = last_done - start
    return result


def open_loop(
    name: str,
    port: int,
    path: str,
    bodies: Sequence[bytes],
    headers: dict[str, str],
    *,
    rate: float,
    timeout: float = 5.0,
) -> LatencyResult:
    """Fixed-rate (open-loop) run: len(bodies) requests sent on a schedule of `rate` per second."""
    payloads = [http_request(path, body, headers, port) for body in bodies]
    return asyncio.run(_open_loop(name, port, payloads, rate, timeout))


# The same open loop in C (benchmarks/openloop.c), built with the machine's gcc: a Python
# generator offering 1,000 new connections a second takes a large share of a 2-core machine.
OPENLOOP_C = Path(__file__).resolve().parent / "openloop.c"


@dataclass
class Generator:
    """What ran the open loop and what it cost: CPU seconds of its own (for the report)."""

    tool: str
    cpu_seconds: float


def build_openloop(out_dir: Path) -> Path | None:
    """Compile openloop.c into out_dir; None when there is no gcc or it fails to build."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        return None
    binary = out_dir / "openloop"
    done = subprocess.run([gcc, "-O2", "-Wall", "-o", str(binary), str(OPENLOOP_C)],
                          capture_output=True, text=True, timeout=120, check=False)
    return binary if done.returncode == 0 and binary.exists() else None


def open_loop_c(
    binary: Path,
    name: str,
    port: int,
    path: str,
    bodies: Sequence[bytes],
    headers: dict[str, str],
    *,
    rate: float,
    timeout: float = 5.0,
) -> tuple[LatencyResult, Generator]:
    """open_loop() with the C generator: same schedule, same result fields."""
    result = LatencyResult(name=name, offered_rate=rate, scheduled=len(bodies))
    with tempfile.TemporaryDirectory(prefix="agegate-bench-openloop-") as tmp:
        requests = Path(tmp) / "requests"
        with open(requests, "wb") as handle:
            for body in bodies:
                payload = http_request(path, body, headers, port)
                handle.write(f"{len(payload)}\n".encode() + payload)
        expected = len(bodies) / rate + timeout + 30
        done = subprocess.run([str(binary), HOST, str(port), f"{rate:g}",
                               str(int(timeout * 1000)), str(requests)],
                              capture_output=True, text=True, timeout=expected, check=False)
    if done.returncode != 0:
        raise HarnessError(f"openloop failed ({done.returncode}): {done.stderr}")
    lines = done.stdout.splitlines()
    cpu = int(lines[-1].split()[1]) / 1e6 if lines and lines[-1].startswith("cpu_us") else 0.0
    last_done = 0.0
    for index, line in enumerate(lines[:-1]):
        status_text, latency_us, lag_us, reason = line.split()
        status, latency, lag = int(status_text), int(latency_us) / 1e6, int(lag_us) / 1e6
        result.send_lags.append(lag)
        if status == 0:
            result.errors["ConnectionError"] += 1
            continue
        if status == -1:
            result.errors["TimeoutError"] += 1
            continue
        if status < 0:
            result.errors["no HTTP status line"] += 1
            continue
        result.latencies.append(latency)
        result.statuses[status] += 1
        if reason != "-":
            result.reasons[reason] += 1
        # Time from the first scheduled send, as open_loop() measures it.
        last_done = max(last_done, index / rate + latency)
    result.elapsed = last_done
    return result, Generator("c-epoll", cpu)


# -- closed loop -----------------------------------------------------------------------------
async def _closed_loop(
    port: int, payloads: Sequence[bytes], concurrency: int, seconds: float, timeout: float
) -> tuple[int, int, int, float]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    counts = {"done": 0, "non_2xx": 0, "errors": 0}
    position = iter(range(len(payloads)))

    async def worker() -> None:
        while loop.time() < deadline:
            index = next(position, None)
            if index is None:
                return
            try:
                status, _ = await _exchange(port, payloads[index], timeout)
            except (TimeoutError, OSError, ConnectionError):
                counts["errors"] += 1
                continue
            counts["done"] += 1
            if not 200 <= status < 300:
                counts["non_2xx"] += 1

    started = loop.time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = loop.time() - started
    return counts["done"] + counts["errors"], counts["non_2xx"], counts["errors"], elapsed


def closed_loop_python(
    name: str,
    port: int,
    path: str,
    bodies: Sequence[bytes],
    headers: dict[str, str],
    *,
    seconds: float,
    concurrency: int = 8,
    timeout: float = 5.0,
) -> ThroughputResult:
    """Max-rate run with the Python generator (used when wrk is absent)."""
    payloads = [http_request(path, body, headers, port) for body in bodies]
    total, non_2xx, errors, elapsed = asyncio.run(
        _closed_loop(port, payloads, concurrency, seconds, timeout)
    )
    return ThroughputResult(name, "python-asyncio", total, non_2xx, errors, elapsed)


WRK_SCRIPT = """
-- Generated by benchmarks/harness.py: POST one "path<TAB>body" line per request, threads
-- interleaved (a path per line, so requests can spread over accounts as a platform's do).
local lines_path = %(lines)s
local headers = %(headers)s
local nthreads = %(threads)d
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  reqs = {}
  for line in io.lines(lines_path) do
    local tab = string.find(line, "\t", 1, true)
    reqs[#reqs + 1] = {string.sub(line, 1, tab - 1), string.sub(line, tab + 1)}
  end
  idx = tid
end
function request()
  idx = idx + nthreads
  if idx > #reqs then idx = ((idx - 1) %% #reqs) + 1 end
  return wrk.format("POST", reqs[idx][1], headers, reqs[idx][2])
end
"""


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def closed_loop_wrk(
    name: str,
    port: int,
    requests: Sequence[tuple[str, bytes]],
    headers: dict[str, str],
    *,
    seconds: float,
    connections: int = 8,
    threads: int = 1,
) -> ThroughputResult:
    """Max-rate run with wrk, one (path, body) per request in turn; the pairs are written to a
    temp file its Lua script reads."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise HarnessError("wrk is not installed")
    all_headers = {"Content-Type": "application/json", "Connection": "close", **headers}
    with tempfile.TemporaryDirectory(prefix="agegate-bench-wrk-") as tmp:
        lines_file = Path(tmp) / "requests.tsv"
        lines_file.write_bytes(b"\n".join(path.encode() + b"\t" + body
                                          for path, body in requests) + b"\n")
        lua_headers = "{" + ", ".join(
            f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in all_headers.items()
        ) + "}"
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_SCRIPT % {"lines": _lua_string(str(lines_file)),
                                        "headers": lua_headers, "threads": threads})
        args = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s",
                "-s", str(script), f"http://{HOST}:{port}{requests[0][0]}"]
        done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 30,
                              check=False)
    if done.returncode != 0:
        raise HarnessError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(name, done.stdout)


def parse_wrk(name: str, output: str) -> ThroughputResult:
    """Requests, non-2xx and socket errors from wrk's summary."""
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if not total:
        raise HarnessError(f"cannot read wrk output:\n{output}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[total.group(3)]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    # wrk counts a server-side close after a response as a read "error" on some builds; only
    # connect/write/timeout mean a request was lost.
    errors = 0
    if socket_errors:
        errors = (int(socket_errors.group(1)) + int(socket_errors.group(3))
                  + int(socket_errors.group(4)))
    return ThroughputResult(
        name, "wrk", int(total.group(1)), int(non_2xx.group(1)) if non_2xx else 0, errors,
        float(total.group(2)) * scale,
    )


# -- printing --------------------------------------------------------------------------------
def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.2f}"


def print_throughput(results: Sequence[ThroughputResult]) -> None:
    """A table of closed-loop results."""
    print(f"  {'endpoint':<28} {'tool':<15} {'requests':>9} {'non-2xx':>8} {'errors':>7} "
          f"{'req/s':>9}")
    for r in results:
        print(f"  {r.name:<28} {r.tool:<15} {r.requests:>9} {r.non_2xx:>8} {r.errors:>7} "
              f"{r.rate:>9.1f}")


def print_latency(results: Sequence[LatencyResult]) -> None:
    """A table of open-loop results (ms, from the scheduled send time)."""
    print(f"  {'endpoint':<28} {'offered':>8} {'achieved':>9} {'p50':>7} {'p90':>7} {'p99':>7} "
          f"{'max':>8} {'non-2xx':>8} {'errors':>7} {'gen lag p99':>12}")
    for r in results:
        non_2xx = sum(n for s, n in r.statuses.items() if not 200 <= s < 300)
        errors = sum(r.errors.values())
        print(f"  {r.name:<28} {r.offered_rate:>8.0f} {r.achieved_rate:>9.1f} "
              f"{ms(r.pct(50)):>7} {ms(r.pct(90)):>7} {ms(r.pct(99)):>7} {ms(r.pct(100)):>8} "
              f"{non_2xx:>8} {errors:>7} {ms(r.lag_pct(99)):>12}")


def verdict(label: str, passed: bool, detail: str) -> str:
    """One PASS/FAIL line."""
    return f"{'PASS' if passed else 'FAIL'}  {label}: {detail}"
