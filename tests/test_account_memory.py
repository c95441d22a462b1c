"""Issue 14 item 4: what Redis keeps per scored account stays under 2 KB whatever the number of
messages (real Redis MEMORY USAGE of the account's own keys, the real model, real posts)."""

from __future__ import annotations

import pytest

from agegate.storage import keys
from tests.signals_helpers import adult_text, minor_text, post_signals, signals_app, text_signal

BUDGET = 2048


@pytest.fixture
def app(config, clock):
    return signals_app(config, clock)


def own_bytes(app, redis_client, account_id: str) -> int:
    account_hash = app.extensions["agegate"].hasher.account(account_id)
    return sum(int(redis_client.memory_usage(key, samples=0) or 0)
               for key in keys.account_keys(account_hash) if redis_client.exists(key))


def test_an_account_with_many_messages_stays_under_two_kilobytes(client, app, redis_client):
    sizes = []
    for round_ in range(10):
        # 30 messages a round, minor- and adult-typical mixed, with platform signals too.
        signals = [text_signal((minor_text if i % 2 else adult_text)(round_ * 30 + i))
                   for i in range(28)]
        signals += [{"type": "payment", "at": "2026-11-24T13:00:00Z", "method": "gift_card"},
                    {"type": "report", "at": "2026-11-24T13:00:00Z",
                     "reason": "suspected_minor"}]
        response = post_signals(client, "acc-chatty", signals)
        assert response.status_code == 200, response.json
        sizes.append(own_bytes(app, redis_client, "acc-chatty"))
    assert response.json["case_id"] is not None  # a case and its pointer are counted too
    assert max(sizes) <= BUDGET, sizes
    # Bounded, not merely small so far: 300 messages cost what 60 did, give or take the
    # explanation's top-k filling up.
    assert sizes[-1] - sizes[1] <= 128, sizes


def test_a_review_case_keeps_one_entry_for_a_run_of_raises(client, app, redis_client):
    for i in range(12):
        assert post_signals(client, "acc-raise", [text_signal(minor_text(i))]).status_code == 200
    state = app.extensions["agegate"]
    case_id = redis_client.get(keys.account_open_case(state.hasher.account("acc-raise")))
    history = state.review.cases.read(redis_client, case_id)["history"]
    events = [h["event"] for h in history]
    assert events[0] == "opened" and "raised" in events
    assert all(a != "raised" or b != "raised" for a, b in zip(events, events[1:], strict=False))
