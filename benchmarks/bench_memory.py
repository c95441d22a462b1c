"""Redis memory per scored account: `used_memory` growth over thousands of accounts, against the
2,048-byte goal, with a per-key breakdown (MEMORY USAGE) that shows where the bytes go.

    python benchmarks/bench_memory.py [--accounts 2000] [--messages 20] [--per-post 5]

Each account is one held-out author of the blog corpus (the model never trained on them), fed
`--messages` of their posts cut to chat length, `--per-post` messages a call, through
`AccountService.record_signals` (the path both the HTTP route and the stream use) on an embedded
Redis of its own. Young authors' accounts are flagged and get review cases, as in production; the
mix is the corpus's, printed beside the figures. The baseline is the same Redis before the run.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402

GOAL = 2048
# storage/unit.py's at-most-once markers: they expire Retention.unit_marker_seconds after their
# write, so they are measured, then deleted for the at-rest figure.
UOW_PREFIX = "agegate:uow:"
CHAT_LENGTH = 280


def authors(accounts: int, messages: int,
            minor_share: float | None) -> list[tuple[str, int, list[str]]]:
    """(author id, age, `messages` posts) of held-out authors with at least 5 usable posts;
    an author's posts are cycled when there are fewer (the corpus keeps at most 12). With
    `minor_share`, that share of the accounts are under-18 authors, else the corpus's mix."""
    from training.data import iter_authors, split_of

    out = []
    minors = 0 if minor_share is None else round(accounts * minor_share)
    wanted = {True: minors, False: accounts - minors}
    for author in iter_authors():
        if split_of(author["author_id"]) != "test":
            continue
        posts = [p["text"][:CHAT_LENGTH] for p in author["posts"] if p["text"].strip()]
        if len(posts) < 5:
            continue
        minor = int(author["age"]) < 18
        if minor_share is not None:
            if wanted[minor] == 0:
                continue
            wanted[minor] -= 1
        out.append((str(author["author_id"]), int(author["age"]),
                    [posts[i % len(posts)] for i in range(messages)]))
        if len(out) >= accounts:
            break
    if not out:
        raise SystemExit("no corpus authors found: set AGEGATE_TRAINING_DATA")
    return out


def kind_of(key: str) -> str:
    """A key's kind: `account:` and its kind for an account's keys; otherwise its family, with
    the shard's tag and any id left out (`case`, `audit`, `audit:heads`)."""
    if key.startswith(UOW_PREFIX):
        return "unit-of-work markers (transient)"
    parts = key.split(":")
    if parts[1] == "acct" and len(parts) > 4:
        return "account:" + parts[4]
    return ":".join(part for part in parts[1:] if re.fullmatch(r"[a-z]+(-[a-z]+)*", part))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--per-post", type=int, default=5)
    parser.add_argument("--minor-share", type=float, default=None,
                        help="share of under-18 authors (default: the corpus's own mix)")
    args = parser.parse_args()

    from agegate import create_app
    from agegate.config import Config

    feed = authors(args.accounts, args.messages, args.minor_share)
    with harness.embedded_redis() as url, tempfile.TemporaryDirectory() as tmp:
        app = create_app(Config(env="production", secret_key="b" * 48, redis_url=url,
                                data_dir=Path(tmp), model_dir=ROOT / "model"))
        state = app.extensions["agegate"]
        if state.model is None:
            raise SystemExit(f"the trained model did not load: {state.model_error}")
        r = state.redis
        r.flushall()
        before = int(r.info("memory")["used_memory"])
        start = datetime(2026, 11, 2, 18, tzinfo=UTC)
        flagged = 0
        flagged_ids: set[str] = set()
        for n, (author_id, _, posts) in enumerate(feed):
            account_id = f"acc-{author_id}"
            result = None
            for i in range(0, len(posts), args.per_post):
                signals = [{"type": "message", "at": start + timedelta(hours=7 * (i + j)),
                            "text": text} for j, text in enumerate(posts[i:i + args.per_post])]
                result = state.accounts.record_signal(account_id, signals, actor="bench")
            if result and result["case_id"]:
                flagged += 1
                flagged_ids.add(account_id)
            if n and n % 500 == 0:
                print(f"  {n} accounts ...", flush=True)
        after = int(r.info("memory")["used_memory"])
        transient = list(r.scan_iter(match=f"{UOW_PREFIX}*", count=1000))

        sizes: dict[str, int] = Counter()
        counts: dict[str, int] = Counter()
        for key in r.scan_iter(count=1000):
            kind = kind_of(key)
            sizes[kind] += int(r.memory_usage(key, samples=0) or 0)
            counts[kind] += 1
        from agegate.storage import keys

        per_account: dict[str, list[int]] = defaultdict(list)
        for author_id, _, _ in feed:
            account_id = f"acc-{author_id}"
            h = state.hasher.account(account_id)
            own = sum(int(r.memory_usage(k, samples=0) or 0) for k in keys.account_keys(h)
                      if r.exists(k))
            per_account["flagged" if account_id in flagged_ids else "not flagged"].append(own)
        for start_ in range(0, len(transient), 500):
            r.delete(*transient[start_:start_ + 500])
        at_rest = int(r.info("memory")["used_memory"])
        state.close()

    accounts = len(feed)
    growth = (at_rest - before) / accounts
    young = sum(1 for _, age, _ in feed if age < 18)
    print(f"accounts: {accounts} held-out corpus authors ({young / accounts:.0%} under 18), "
          f"{args.messages} messages each ({args.per_post} a call); with a review case: "
          f"{flagged} ({flagged / accounts:.0%})")
    print(f"Redis used_memory: {before:,} -> {after:,} bytes; {at_rest:,} at rest (without "
          f"the {len(transient):,} unit-of-work markers, which expire within minutes)")
    print(f"bytes per scored account (used_memory growth / accounts): {growth:,.0f} at rest "
          f"(goal <= {GOAL:,}); {(after - before) / accounts:,.0f} with the transient markers")
    print("where the bytes go (MEMORY USAGE summed per kind of key, per account):")
    for kind, total in sorted(sizes.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:32s} {counts[kind]:6d} keys  {total / accounts:8.0f} bytes/account")
    for group, sizes_ in per_account.items():
        print(f"an account's own keys (MEMORY USAGE), {group}: mean "
              f"{sum(sizes_) / len(sizes_):,.0f}, max {max(sizes_):,} bytes "
              f"({len(sizes_)} accounts)")
    print(harness.verdict("memory per scored account", growth <= GOAL,
                          f"{growth:,.0f} bytes against {GOAL:,}"))


if __name__ == "__main__":
    main()
