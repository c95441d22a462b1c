"""Signals, scores and the account record, through the HTTP API on a real Redis."""

from __future__ import annotations

import threading

import pytest

from agegate.storage import keys
from tests.conftest import auth
from tests.helpers import across_shards, dump_keyspace
from tests.signals_helpers import (
    adult_text,
    flag,
    minor_text,
    not_flagged,
    post_signals,
    real_model,
    signals_app,
    text_signal,
)

# Storage across accounts and shards: also run on a real 3-primary Redis Cluster.
pytestmark = pytest.mark.cluster


@pytest.fixture
def app(config, clock):
    """The app with the trained model."""
    return signals_app(config, clock)


def word_runs(text: str, length: int = 3) -> set[str]:
    """Every run of `length` consecutive words of a message (lower case)."""
    words = text.lower().split()
    return {" ".join(words[i:i + length]) for i in range(len(words) - length + 1)}


def account_hash(app, account_id: str) -> str:
    return app.extensions["agegate"].hasher.short("account", account_id)


def test_low_score_is_stored_without_a_case(client, app, redis_client):
    body = not_flagged(client, "acc-1")
    assert body["band"] == "low"
    account = client.get("/v1/accounts/acc-1", headers=auth("reviewer")).json
    assert account["status"] == "active"
    assert account["score"] == pytest.approx(body["score"])
    assert account["case_id"] is None
    # The raw text is never stored anywhere: not even three of its words in a row.
    runs = word_runs(adult_text(0))
    assert runs
    # Values as stored (DUMP's RDB encoding may LZF-compress a string and hide it).
    for key, stored in dump_keyspace(redis_client).items():
        assert not any(run in stored.lower() for run in runs), key


def test_explanations_name_model_features_and_hold_no_message_text(client, app, redis_client):
    body = flag(client, "acc-why")
    model = real_model()
    names = [s["name"] for s in body["top_signals"]]
    assert names and all(isinstance(name, str) and name for name in names)
    # Every name is a vocabulary n-gram, the lexicon, an activity feature or a platform rule.
    assert set(names) <= model.reason_names(), names
    assert all(s["weight"] > 0 for s in body["top_signals"])
    case = client.get(f"/v1/review/cases/{body['case_id']}", headers=auth("reviewer")).json
    assert case["top_signals"] == body["top_signals"]
    posted = set().union(*(word_runs(minor_text(i)) for i in range(12)))
    shown = str(body).lower() + str(case).lower()
    assert not [run for run in posted if run in shown]
    for key, stored in dump_keyspace(redis_client).items():
        assert not any(minor_text(i).lower()[:60] in stored.lower() for i in range(12)), key


def test_flagged_account_gets_one_case_and_rising_score_raises_it(client, app):
    first = flag(client, "acc-2")
    assert first["case_id"]
    case = client.get(f"/v1/review/cases/{first['case_id']}", headers=auth("reviewer")).json
    assert case["kind"] == "classifier" and case["status"] == "open"
    # More minor-typical messages: the real score rises and raises the same case, which keeps
    # the highest score the account reached (a later message may lower it a little).
    posts = [post_signals(client, "acc-2", [text_signal(minor_text(i))]).json
             for i in range(3)]
    second = posts[-1]
    assert second["flagged"] is True
    assert {p["case_id"] for p in posts} == {first["case_id"]}
    assert max(p["score"] for p in posts) > first["score"]
    raised = client.get(f"/v1/review/cases/{first['case_id']}", headers=auth("reviewer")).json
    assert raised["priority"] > case["priority"]
    assert raised["score"] == pytest.approx(max(first["score"], *(p["score"] for p in posts)))
    cases = client.get("/v1/review/cases", headers=auth("reviewer")).json["cases"]
    assert [c["case_id"] for c in cases] == [first["case_id"]]
    account = client.get("/v1/accounts/acc-2", headers=auth("reviewer")).json
    assert account["case_id"] == first["case_id"]


def test_suspected_minor_report_opens_a_report_case_below_threshold(client):
    # An adult-sounding account: the report's +1.0 log-odds alone must not flag it, yet the
    # report still reaches a reviewer as a report case.
    response = post_signals(client, "acc-3", [
        text_signal(adult_text(0)),
        {"type": "report", "at": "2026-11-24T12:00:00Z", "reason": "suspected_minor"}])
    assert response.status_code == 200
    assert response.json["flagged"] is False
    assert response.json["score"] < real_model().review_threshold
    case = client.get(f"/v1/review/cases/{response.json['case_id']}",
                      headers=auth("reviewer")).json
    assert case["kind"] == "report"
    other = post_signals(client, "acc-4", [
        {"type": "report", "at": "2026-11-24T12:00:00Z", "reason": "spam"}])
    assert other.json["case_id"] is None


@pytest.mark.parametrize("signals,field", [
    ([text_signal("x" * 10_001)], "signals.0.text"),
    ([{"type": "message", "at": "2026-11-24T13:00:00", "text": "hi"}], "signals.0.at"),
    ([{"type": "message", "at": "yesterday", "text": "hi"}], "signals.0.at"),
    ([{"type": "telepathy", "at": "2026-11-24T13:00:00Z"}], "signals.0.type"),
    ([{"type": "session", "at": "2026-11-24T13:00:00Z", "text": "hi"}], "signals.0.text"),
    ([{"type": "session", "at": "2026-11-24T13:00:00Z"}], "signals.0.duration_s"),
    ([{"type": "payment", "at": "2026-11-24T13:00:00Z", "method": "crypto"}],
     "signals.0.method"),
    ([{"type": "dob_change", "at": "2026-11-24T13:00:00Z", "colour": "red"}],
     "signals.0.colour"),
    ([text_signal("hi")] * 501, "signals"),
    ([], "signals"),
])
def test_bad_signals_are_422_and_never_echo_text(client, signals, field):
    response = post_signals(client, "acc-5", signals)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert field in response.json["error"]["fields"]
    assert "xxxx" not in response.get_data(as_text=True)


def test_500_signals_and_10000_characters_are_accepted(client):
    signals = [text_signal("a" * 10_000)] + [
        {"type": "session", "at": "2026-11-24T13:00:00+01:00", "duration_s": 60}] * 499
    assert post_signals(client, "acc-6", signals).status_code == 200


def test_roles_on_account_routes(client):
    body = {"signals": [text_signal("hi")]}
    assert client.post("/v1/accounts/a/signals", json=body).status_code == 401
    assert client.post("/v1/accounts/a/signals", json=body,
                       headers=auth("reviewer")).status_code == 403
    assert client.get("/v1/accounts/a", headers=auth("signals")).status_code == 403
    assert client.get("/v1/accounts/never-seen", headers=auth("reviewer")).status_code == 404
    assert client.get("/v1/accounts/never-seen", headers=auth("admin")).status_code == 404


def test_without_a_model_signals_are_503(client, app):
    app.extensions["agegate"].model = None
    response = post_signals(client, "acc-7", [text_signal("hi")])
    assert response.status_code == 503
    assert response.json["error"]["code"] == "model_unavailable"


def test_racing_posts_lose_no_signal_and_open_exactly_one_case(app, redis_client):
    threads, results, errors = [], [], []
    text = minor_text(0)  # flags on its own, so every one of the 48 posts sees a flagged score

    def post() -> None:
        try:
            with app.test_client() as c:
                for _ in range(3):
                    response = post_signals(c, "acc-race", [text_signal(text)])
                    results.append(response.json["case_id"])
        except Exception as error:  # noqa: BLE001 - report any failure to the main thread
            errors.append(error)

    for _ in range(16):
        threads.append(threading.Thread(target=post))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 48 and len(set(results)) == 1
    ah = account_hash(app, "acc-race")
    assert redis_client.scard(keys.account_cases(ah)) == 1
    assert across_shards(redis_client, "zcard", keys.review_open) == 1
    state = app.extensions["agegate"].accounts.accounts.state(redis_client, ah)
    assert state["n"] == 48  # no lost update: every post folded into the state


def test_age_redeclaration_becomes_a_signal(client, app, redis_client):
    check = {"date_of_birth": "2012-01-01", "country": "US", "device_id": "dev-9"}
    assert client.post("/v1/age-checks", json=check,
                       headers=auth("registration")).json["reason"] == "under_minimum_age"
    retry = {"date_of_birth": "1990-01-01", "country": "US", "device_id": "dev-9",
             "account_id": "acc-redeclared"}
    assert client.post("/v1/age-checks", json=retry,
                       headers=auth("registration")).json["reason"] == "previous_underage_attempt"
    state = app.extensions["agegate"].accounts.accounts.state(
        redis_client, account_hash(app, "acc-redeclared"))
    assert state["plat"]["redeclaration"] == 1
    account = client.get("/v1/accounts/acc-redeclared", headers=auth("reviewer")).json
    # The retry moves the score up from where an account without any signal starts.
    fresh = real_model()
    assert account["score"] > fresh.score(fresh.new_state()).score


def test_objection_stops_processing_and_drops_the_score_state(client, app, redis_client):
    flag(client, "acc-obj")
    accounts = app.extensions["agegate"].accounts
    accounts.stop_processing("acc-obj", actor="parents-bot")
    assert redis_client.exists(keys.account_state(account_hash(app, "acc-obj"))) == 0
    response = post_signals(client, "acc-obj", [text_signal("hello")])
    assert response.status_code == 409
    assert response.json["error"]["code"] == "processing_stopped"
    account = client.get("/v1/accounts/acc-obj", headers=auth("reviewer")).json
    assert account["score"] is None and account["processing_stopped"] is True


def test_export_holds_everything_about_the_account(client, app):
    case_id = flag(client, "acc-exp")["case_id"]
    export = app.extensions["agegate"].accounts.export("acc-exp")
    assert export["account"]["status"] == "active"
    assert export["model_state"]["n"] == 1  # a minor-typical post flags a fresh account alone
    assert [c["case_id"] for c in export["cases"]] == [case_id]
    assert any(e["action"] == "case_opened" for e in export["audit"])
    assert export["deletions"] == []


def test_the_trained_model_scores_and_keeps_state_small(config, clock, redis_client):
    from agegate import create_app

    real = create_app(config.with_overrides(load_model=True), clock=clock)
    assert real.extensions["agegate"].model is not None
    client = real.test_client()
    for n in range(20):
        signals = [text_signal(f"message {n}-{i}: omg my mom says i cant go, homework due")
                   for i in range(10)]
        response = post_signals(client, "acc-real", signals)
        assert response.status_code == 200
        assert 0.0 <= response.json["score"] <= 1.0
    ah = real.extensions["agegate"].hasher.short("account", "acc-real")
    assert len(redis_client.get(keys.account_state(ah))) <= 2048
