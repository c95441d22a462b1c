"""Issue 24: a 503 after the write was applied (too few replicas confirmed it, a lost reply) is
answered by the caller's retry, so every write must be safe to send twice. POST .../signals
takes an `Idempotency-Key` (the signal stream's `id`: one mechanism, one namespace); every
other write is idempotent by what it writes, shown route by route below."""

from __future__ import annotations

import json

import pytest

from agegate.storage import keys
from tests.conftest import auth
from tests.helpers import dump_keyspace
from tests.signals_helpers import adult_text, minor_text, signals_app, text_signal
from tests.test_errors import assert_error

pytestmark = pytest.mark.cluster


@pytest.fixture
def app(config, clock):
    return signals_app(config, clock)


def post(client, account_id: str, signals: list[dict], key: str | None = None):
    headers = {**auth("signals"), **({"Idempotency-Key": key} if key is not None else {})}
    return client.post(f"/v1/accounts/{account_id}/signals", json={"signals": signals},
                       headers=headers)


def applied(app, account_id: str) -> int:
    """Messages folded into the account's state."""
    state = app.extensions["agegate"]
    found = state.accounts.accounts.state(state.redis, state.hasher.account(account_id))
    return (found or {"n": 0})["n"]


def test_a_retried_idempotency_key_is_applied_once_and_answered_as_the_first_time(app, client):
    batch = [text_signal(minor_text(i)) for i in range(6)]
    first = post(client, "acc-i", batch, key="batch-1")
    assert first.status_code == 200, first.json
    for _ in range(2):
        again = post(client, "acc-i", batch, key="batch-1")
        assert again.status_code == 200
        assert again.json == first.json
    assert applied(app, "acc-i") == 6  # six messages, once
    # Another key is another batch; no key at all is applied every time, as before.
    assert post(client, "acc-i", batch, key="batch-2").status_code == 200
    assert post(client, "acc-i", [text_signal(adult_text(0))]).status_code == 200
    assert post(client, "acc-i", [text_signal(adult_text(0))]).status_code == 200
    assert applied(app, "acc-i") == 14
    # A key is per account.
    assert post(client, "acc-other", batch, key="batch-1").status_code == 200
    assert applied(app, "acc-other") == 6


def test_a_replay_is_answered_as_the_first_time_after_other_signals(app, client):
    """The first answer is kept with the applied-once marker: signals applied in between
    change the account, not the replay's answer."""
    first = post(client, "acc-r", [text_signal(adult_text(0))], key="batch-1")
    assert first.status_code == 200 and first.json["flagged"] is False
    later = post(client, "acc-r", [text_signal(minor_text(i)) for i in range(6)])
    assert later.json["score"] != first.json["score"] and later.json["case_id"]
    replay = post(client, "acc-r", [text_signal(adult_text(0))], key="batch-1")
    assert replay.status_code == 200
    assert replay.json == first.json  # its score, band, top signals, and no case
    assert applied(app, "acc-r") == 7


def test_a_key_reused_with_another_body_is_refused_and_applies_nothing(app, client):
    first = post(client, "acc-u", [text_signal(adult_text(0))], key="batch-1")
    assert first.status_code == 200
    for other in ([text_signal(adult_text(1))],  # another text
                  [text_signal(adult_text(0), at="2026-11-24T13:00:01Z")],  # another time
                  [text_signal(adult_text(0)), text_signal(adult_text(0))]):  # twice
        error = assert_error(post(client, "acc-u", other, key="batch-1"), 422,
                             "idempotency_key_reused")
        assert "fields" not in error and adult_text(1)[:20] not in json.dumps(error)
    assert applied(app, "acc-u") == 1
    # The same batch, with its time written another way, is the same body: a replay.
    same = [text_signal(adult_text(0), at="2026-11-24T13:00:00+00:00")]
    assert post(client, "acc-u", same, key="batch-1").json == first.json
    assert applied(app, "acc-u") == 1


def test_the_first_answer_is_kept_text_free_with_the_markers_ttl(app, client, redis_client):
    text = minor_text(0)
    first = post(client, "acc-k", [text_signal(text)], key="batch-k")
    assert first.json["flagged"] and first.json["case_id"]
    assert any(s["name"].startswith("text:") for s in first.json["top_signals"])
    state = app.extensions["agegate"]
    [marker] = redis_client.scan_iter(f"{keys.tag(state.hasher.account('acc-k'))}:seen:*")
    kept = redis_client.get(marker)
    packed = json.loads(kept)
    assert packed["c"] == first.json["case_id"] and "d" not in packed  # its case step done
    # Vocabulary ids, not n-grams; no account id, no message text, no key.
    assert all(isinstance(code, int) or not code.startswith("text:") for code, _ in packed["t"])
    for word in ["acc-k", "batch-k", *[w for w in text.split() if len(w) > 6][:5]]:
        assert word not in kept
    assert len(kept) < 400
    day = state.retention.seconds("signal_entry")
    assert day - 5 < redis_client.ttl(marker) <= day


def test_a_stream_batch_answers_each_entry_with_the_case_its_batch_opened(
        app, client, redis_client):
    """Two entries of one account in one worker batch: the first opens the case, the second
    (not raising it) was answered with that case, and its replay over HTTP is too."""
    from tests.test_signal_stream import drain, publish

    flagging = [text_signal(minor_text(i)) for i in range(3)]
    quiet = [{"type": "session", "at": "2026-11-24T13:05:00Z", "duration_s": 60}]
    publish(redis_client, "acc-b", flagging, "m-1")
    publish(redis_client, "acc-b", quiet, "m-2")
    assert drain(app) == 2
    case_id = client.get("/v1/accounts/acc-b", headers=auth("reviewer")).json["case_id"]
    assert case_id
    one, two = (post(client, "acc-b", batch, key=key)
                for batch, key in ((flagging, "m-1"), (quiet, "m-2")))
    assert one.json["case_id"] == two.json["case_id"] == case_id
    assert one.json["flagged"]
    # The stream's result as first applied, whatever the account received since.
    post(client, "acc-b", [text_signal(adult_text(i)) for i in range(8)])
    assert post(client, "acc-b", flagging, key="m-1").json == one.json
    assert applied(app, "acc-b") == 3 + 8


def test_a_stream_entry_reusing_a_key_for_another_body_is_dead_lettered(
        app, client, redis_client):
    from tests.test_signal_stream import drain, publish

    assert post(client, "acc-s2", [text_signal(adult_text(0))], key="m-9").status_code == 200
    publish(redis_client, "acc-s2", [text_signal(adult_text(2))], "m-9")
    publish(redis_client, "acc-s2", [text_signal(adult_text(3))], "m-10")
    assert drain(app) == 2
    [(_, letter)] = app.extensions["agegate"].ingest.store.dead_letters()
    assert json.loads(letter["error"])["code"] == "idempotency_key_reused"
    assert applied(app, "acc-s2") == 2


def test_the_stream_id_and_the_header_are_one_key(app, client, redis_client):
    from tests.test_signal_stream import drain

    batch = [text_signal(adult_text(3))]
    assert post(client, "acc-both", batch, key="msg-77").status_code == 200
    redis_client.xadd("agegate:signals", {"account_id": "acc-both", "signals": json.dumps(batch),
                                          "id": "msg-77"})
    assert drain(app) == 1
    assert applied(app, "acc-both") == 1


@pytest.mark.parametrize("key", ["has space", "x" * 257, "caf\u00e9"])
def test_a_bad_idempotency_key_is_a_422(client, key):
    error = assert_error(post(client, "acc-bad", [text_signal("hello")], key=key), 422,
                         "validation_error")
    assert "Idempotency-Key" in error["fields"]


def test_the_key_and_the_503_are_documented(client):
    spec = client.get("/openapi.json").json
    operation = spec["paths"]["/v1/accounts/{account_id}/signals"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header"
               for p in operation["parameters"])
    assert "storage_unavailable" in operation["responses"]["503"]["description"]


# -- every other write: the retry changes nothing ---------------------------------------------
# A retry of a write that was applied (its 503 came after the primary had it) must change no
# state: the keyspace after the retry equals the keyspace after the first call, but for the
# audit trail (each call is its own audited event), the unit-of-work markers and rate limits.
NOT_STATE = (":audit", ":uow:", "LIMITER", ":chain")


def state_of(redis_client) -> dict[str, str]:
    return {k: v for k, v in dump_keyspace(redis_client).items()
            if not any(part in k for part in NOT_STATE)}


def _age_signal(client, account_id: str, lower: int, upper: int | None, **extra):
    return client.post(f"/v1/accounts/{account_id}/age-signals", headers=auth("signals"), json={
        "source": "google_play_age_signals", "observed_at": "2026-11-24T13:00:00Z",
        "age_lower": lower, "age_upper": upper, "method": "guardian_declared", **extra})


def _restricted(client, account_id: str) -> str:
    """An account restricted by an under-18 signal; its case id."""
    assert _age_signal(client, account_id, 13, 15).json["action"] == "case_opened"
    return client.get(f"/v1/accounts/{account_id}", headers=auth("reviewer")).json["case_id"] \
        or client.get("/v1/review/cases?kind=age_signal",
                      headers=auth("reviewer")).json["cases"][0]["case_id"]


def _claimed(client, account_id: str) -> str:
    case_id = client.get("/v1/review/cases?kind=age_signal",
                         headers=auth("reviewer")).json["cases"][0]["case_id"]
    assert client.post(f"/v1/review/cases/{case_id}/claim",
                       headers=auth("reviewer")).status_code == 200
    return case_id


def _terminated(client, account_id: str) -> str:
    response = client.post(f"/v1/accounts/{account_id}/termination", headers=auth("admin"),
                           json={"reason": "confirmed minor"})
    assert response.status_code == 202
    return response.json["deletion_id"]


# (name, setup(client) -> (method, path, role, body), statuses the retry may answer)
RETRIES = [
    ("age check deny", lambda c: ("POST", "/v1/age-checks", "registration", {
        "date_of_birth": "2014-01-01", "country": "US", "email": "k@example.com"}), {200}),
    ("termination", lambda c: (_age_signal(c, "acc-t", 18, None) and
                               ("POST", "/v1/accounts/acc-t/termination", "admin",
                                {"reason": "confirmed minor"})), {202}),
    ("deletion ack", lambda c: ("POST", f"/v1/deletions/{_terminated(c, 'acc-d')}/acks",
                                "downstream", {"system": "chat"}), {200, 409}),
    ("revocation", lambda c: (_age_signal(c, "acc-r", 18, None, install_id="inst-r") and
                              ("POST", "/v1/age-signals/revocations", "signals", {
                                  "source": "google_play_age_signals",
                                  "install_ids": ["inst-r"], "reason": "consent_revoked"})),
     {200}),
    ("verification", lambda c: (_restricted(c, "acc-v") and _claimed(c, "acc-v") and
                                ("POST", "/v1/accounts/acc-v/verification", "reviewer",
                                 {"outcome": "adult", "method": "id_document"})), {409}),
    ("decision", lambda c: (_restricted(c, "acc-c") and
                            ("POST", f"/v1/review/cases/{_claimed(c, 'acc-c')}/decision",
                             "reviewer", {"decision": "not_minor"})), {409}),
    ("appeal", lambda c: (_restricted(c, "acc-a") and
                          ("POST", "/v1/accounts/acc-a/appeals", "signals",
                           {"statement": "I am 34."})), {409}),
]


@pytest.mark.parametrize(("setup", "retry_statuses"), [pytest.param(s, r, id=n)
                                                       for n, s, r in RETRIES])
def test_a_retried_write_changes_nothing(app, client, redis_client, setup, retry_statuses):
    method, path, role, body = setup(client)
    outbox = app.extensions["agegate"].outbox

    def send():
        response = client.open(path, method=method, json=body, headers=auth(role))
        while outbox.drain_all():  # its follow-ups too, as the worker would
            pass
        return response

    first = send()
    assert first.status_code < 300, first.json
    before = state_of(redis_client)
    retry = send()
    assert retry.status_code in retry_statuses, retry.get_json()
    assert state_of(redis_client) == before


def test_a_retried_age_signal_is_stored_twice_and_decides_the_same(client):
    """Not idempotent in storage without an Idempotency-Key (tests/test_idempotent_creates.py
    has it with one): a platform age signal carries no id of its own, so a retry stores the
    observation again (its own signal_id). What it decides does not change: one restriction,
    one open case, the same age."""
    first = _age_signal(client, "acc-s", 13, 15)
    assert first.json["action"] == "case_opened"
    before = client.get("/v1/accounts/acc-s", headers=auth("reviewer")).json
    retry = _age_signal(client, "acc-s", 13, 15)
    assert retry.status_code == 200 and retry.json["action"] in ("none", "restricted")
    assert client.get("/v1/accounts/acc-s", headers=auth("reviewer")).json == before
    cases = client.get("/v1/review/cases?kind=age_signal", headers=auth("reviewer")).json
    assert len(cases["cases"]) == 1
