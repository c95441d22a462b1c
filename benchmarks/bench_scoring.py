"""Scoring throughput and latency on single messages, beside the raw sklearn pipeline.

    python benchmarks/bench_scoring.py [--n 3000] [--chars 200]

Each message goes through ``AgeModel.update(state, [signal])`` + ``score`` (one call per
message, as the service does for a single new message), rotating over 100 account states.
The raw baseline is ``text_pipeline.predict([text])`` on the same texts in the same run.
Three message sets are measured: real Reddit comments (chat length, median about 10 words),
real blog posts cut at --chars characters, and whole blog posts (up to 1,500 characters).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agegate.model import load_model  # noqa: E402
from training.data import REPO_ROOT, iter_authors, load_reddit  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def bench(model, texts: list[str]) -> dict[str, float]:
    at = datetime(2024, 5, 6, 15, 0, tzinfo=UTC)
    states: list[dict | None] = [None] * 100
    for t in texts[:50]:  # warm-up
        model.score(model.update(None, [{"type": "message", "text": t, "at": at}]))
        model.text_pipeline.predict([t])
    lat = []
    start = time.perf_counter()
    for i, t in enumerate(texts):
        t0 = time.perf_counter()
        st = model.update(states[i % 100], [{"type": "message", "text": t, "at": at}])
        model.score(st)
        lat.append(time.perf_counter() - t0)
        states[i % 100] = st
    ours = time.perf_counter() - start
    raw_lat = []
    start = time.perf_counter()
    for t in texts:
        t0 = time.perf_counter()
        model.text_pipeline.predict([t])
        raw_lat.append(time.perf_counter() - t0)
    raw = time.perf_counter() - start
    return {
        "n": len(texts),
        "agemodel_msgs_per_s": len(texts) / ours,
        "agemodel_p50_ms": _pct(lat, 0.5) * 1e3,
        "agemodel_p99_ms": _pct(lat, 0.99) * 1e3,
        "sklearn_msgs_per_s": len(texts) / raw,
        "sklearn_p50_ms": _pct(raw_lat, 0.5) * 1e3,
        "sklearn_p99_ms": _pct(raw_lat, 0.99) * 1e3,
        "ratio_agemodel_over_sklearn_throughput": (len(texts) / ours) / (len(texts) / raw),
    }


def _worker(args: tuple[str, list[str]]) -> float:
    model_dir, texts = args
    model = load_model(model_dir)
    at = datetime(2024, 5, 6, 15, 0, tzinfo=UTC)
    states: list[dict | None] = [None] * 100
    for t in texts[:50]:
        model.score(model.update(None, [{"type": "message", "text": t, "at": at}]))
    start = time.perf_counter()
    for i, t in enumerate(texts):
        states[i % 100] = model.update(states[i % 100], [{"type": "message", "text": t, "at": at}])
        model.score(states[i % 100])
    return len(texts) / (time.perf_counter() - start)


def parallel(model_dir: str, texts: list[str], procs: int) -> float:
    """Aggregate msg/s of ``procs`` processes (like gunicorn workers) scoring concurrently."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(procs) as pool:
        rates = pool.map(_worker, [(model_dir, texts)] * procs)
    return sum(rates)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--chars", type=int, default=200)
    ap.add_argument("--model-dir", default=str(REPO_ROOT / "model"))
    ap.add_argument("--procs", type=int, default=2, help="processes for the aggregate figure")
    args = ap.parse_args()
    t0 = time.perf_counter()
    model = load_model(args.model_dir)
    print(f"load_model: {time.perf_counter() - t0:.2f} s")
    posts: list[str] = []
    for a in iter_authors():
        posts.extend(p["text"] for p in a["posts"])
        if len(posts) >= args.n:
            break
    posts = posts[: args.n]
    comments = [c["text"] for c in load_reddit()[:: 7]][: args.n]
    sets = (
        ("Reddit comments (chat length)", comments),
        (f"blog posts cut at {args.chars} chars", [p[: args.chars] for p in posts]),
        ("whole posts (<= 1,500 chars)", posts),
    )
    for label, texts in sets:
        r = bench(model, texts)
        print(f"\n{label}, {r['n']} single-message calls, 1 process")
        print(f"  AgeModel.update+score : {r['agemodel_msgs_per_s']:8.0f} msg/s   "
              f"p50 {r['agemodel_p50_ms']:.2f} ms   p99 {r['agemodel_p99_ms']:.2f} ms")
        print(f"  sklearn predict       : {r['sklearn_msgs_per_s']:8.0f} msg/s   "
              f"p50 {r['sklearn_p50_ms']:.2f} ms   p99 {r['sklearn_p99_ms']:.2f} ms")
        print(f"  ratio (AgeModel / sklearn throughput): "
              f"{r['ratio_agemodel_over_sklearn_throughput']:.2f}")
        agg = parallel(args.model_dir, texts, args.procs)
        print(f"  AgeModel.update+score, {args.procs} processes concurrently: {agg:.0f} msg/s")


if __name__ == "__main__":
    main()
