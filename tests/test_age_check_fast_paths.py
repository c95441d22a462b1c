"""The age check's fast paths (issue 2's benchmark) decide and record exactly as the slow ones."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from marshmallow import ValidationError

from agegate.api.age_checks import REQUEST_SCHEMA
from agegate.schemas.age_checks import AgeCheckRequestSchema
from agegate.storage import keys
from agegate.storage.audit import canonical
from tests.conftest import auth
from tests.helpers import audit_verify, block_identities

URL = "/v1/age-checks"

VALID = [
    {"date_of_birth": "2000-01-31", "country": "US"},
    {"date_of_birth": "2000-01-31", "country": " us ", "region": "us-ca"},
    {"date_of_birth": "1950-12-01", "country": "GB", "email": " Kid.Name+x@Example.co.uk ",
     "device_id": "dev-1", "session_id": "s~1", "account_id": 'acc-"quoted"\\'},
    {"date_of_birth": "2012-02-29", "country": "CA", "region": "ON", "account_id": "a" * 256},
    {"date_of_birth": "2000-01-31", "country": "DE", "email": "root@localhost"},
]
# Everything here is either rejected, or accepted only by marshmallow's looser rules.
UNUSUAL = [
    {"date_of_birth": "2000-1-5", "country": "US"},  # strptime takes unpadded digits
    {"date_of_birth": "2000-02-30", "country": "US"},
    {"date_of_birth": "２０００-01-01", "country": "US"},  # non-ASCII digits
    {"date_of_birth": "2000-01-01 ", "country": "US"},
    {"date_of_birth": "2000-01-01", "country": "ZZ"},
    {"date_of_birth": "2000-01-01", "country": "US", "region": "CAL1"},
    {"date_of_birth": "2000-01-01", "country": "US", "device_id": "dev-1\n"},  # `$` allows it
    {"date_of_birth": "2000-01-01", "country": "US", "device_id": ""},
    {"date_of_birth": "2000-01-01", "country": "US", "device_id": "a b"},
    {"date_of_birth": "2000-01-01", "country": "US", "account_id": "a" * 257},
    {"date_of_birth": "2000-01-01", "country": "US", "email": "not-an-email"},
    {"date_of_birth": "2000-01-01", "country": "US", "email": "a@" + "b" * 250 + ".com"},
    {"date_of_birth": "2000-01-01", "country": "US", "email": None},
    {"date_of_birth": "2000-01-01", "country": "US", "surprise": "x"},
    {"date_of_birth": "2000-01-01", "country": 1},
    {"date_of_birth": 20000101, "country": "US"},
    {"date_of_birth": "2000-01-01"},
    {"country": "US"},
    [],
    "2000-01-01",
    None,
]


def slow_load(body):
    """What marshmallow alone makes of a body: the data, or the error messages."""
    try:
        return AgeCheckRequestSchema().load(body)
    except ValidationError as error:
        return ("error", error.messages)


@pytest.mark.parametrize("body", VALID)
def test_fast_load_takes_plainly_valid_bodies_and_returns_what_marshmallow_would(body):
    fast = REQUEST_SCHEMA.load_fast(body)
    assert fast is not None
    assert fast == slow_load(body)


@pytest.mark.parametrize("body", UNUSUAL)
def test_fast_load_leaves_everything_else_to_marshmallow(body):
    fast = REQUEST_SCHEMA.load_fast(body)
    assert fast is None or fast == slow_load(body)
    assert fast is None  # none of these is plainly valid


@pytest.mark.parametrize("body", VALID[:2] + UNUSUAL)
def test_http_answers_match_marshmallow_for_every_body(client, body):
    answer = client.post(URL, data=json.dumps(body), content_type="application/json",
                         headers=auth("registration"))
    expected = slow_load(body)
    if isinstance(expected, tuple):
        assert answer.status_code == 422
        assert answer.json["error"]["code"] == "validation_error"
        assert answer.json["error"]["fields"] == expected[1]
    else:
        assert answer.status_code == 200, answer.json


def test_a_body_that_is_not_json_is_still_the_contracts_400(client):
    answer = client.post(URL, data=b'{"date_of_birth": ', content_type="application/json",
                         headers=auth("registration"))
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "malformed_json"


def test_the_response_is_the_documented_json(client):
    answer = client.post(URL, json={"date_of_birth": "1990-01-01", "country": "US"},
                         headers=auth("registration"))
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    assert set(answer.json) == {"check_id", "decision", "reason", "message"}
    assert answer.data.endswith(b"}\n")


def test_prepared_alternatives_encode_and_hash_as_a_full_dump_would(app):
    log = app.extensions["agegate"].audit.log
    alternatives = [{"check_id": "chk_1", "decision": d, "reason": r, "country": "US",
                     "region": region}
                    for d, r, region in (("deny", "identity_blocked", None),
                                         ("allow", "of_age", "CA"))]
    alternatives.append({"count": 3, "systems": ["chat", "ü"], "flag": True, "none": None})
    prepared = log.prepare_alternatives(
        "chain_x", "f" * 64, entry_id="aud_1", at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        actor='bot "ü"', action="age_check", account_id='acc-"1"\\', account_hash="ab" * 16,
        alternatives=alternatives,
    )
    assert len(prepared.details) == 3 and len(set(prepared.hashes)) == 3
    for i, details in enumerate(alternatives):
        one = prepared.entry(i)
        assert one.entry["details"] == details and one.entry["prev_hash"] == "f" * 64
        assert one.encoded == prepared.encoded(i)
        assert one.encoded == json.dumps(one.entry, sort_keys=True, separators=(",", ":"))
        assert one.hash == prepared.hashes[i] == log.chain_hash("f" * 64, one.entry)
        assert canonical(json.loads(one.encoded)) == canonical(one.entry)
        assert one.index == keys.audit_index("ab" * 16)


def test_each_outcome_writes_one_entry_and_the_cli_verifies_the_chain(
    app, client, redis_url, monkeypatch
):
    state = app.extensions["agegate"]
    block_identities(state, [("email", state.hasher.short("email", "banned@example.com"))])
    bodies = [
        {"date_of_birth": "1980-01-01", "email": " Banned@Example.com"},
        {"date_of_birth": "2012-01-01", "session_id": "s-kid"},
        {"date_of_birth": "1980-01-01", "session_id": "s-kid"},
        {"date_of_birth": "1980-01-01", "session_id": "s-adult"},
    ]
    reasons = [client.post(URL, json={"country": "US", **body},
                           headers=auth("registration")).json["reason"] for body in bodies]
    assert reasons == ["identity_blocked", "under_minimum_age", "previous_underage_attempt",
                       "of_age"]
    entries = state.audit.entries(None, 10)
    assert [e["details"]["reason"] for e in entries] == reasons[::-1]
    assert len({e["id"] for e in entries}) == 4
    result = audit_verify(monkeypatch, redis_url)
    assert result.exit_code == 0, result.output
    assert "entries checked: 4" in result.output and "problems: 0" in result.output


def test_the_age_check_script_survives_a_script_flush_and_a_dropped_connection(app, client,
                                                                               redis_client):
    body = {"date_of_birth": "2012-01-01", "country": "US", "device_id": "dev-flush"}
    assert client.post(URL, json=body, headers=auth("registration")).status_code == 200
    redis_client.script_flush()  # as after a Redis restart: EVALSHA answers NOSCRIPT
    again = client.post(URL, json=body, headers=auth("registration"))
    assert again.json["reason"] == "previous_underage_attempt"
    app.extensions["agegate"].identities._check_and_record.close()
    redis_client.client_kill_filter(_type="normal", skipme=True)
    third = client.post(URL, json=body, headers=auth("registration"))
    assert third.status_code == 200 and third.json["reason"] == "previous_underage_attempt"
    checked, problems = app.extensions["agegate"].audit.log.verify()
    assert (checked, problems) == (3, [])


def test_shared_audit_keys_keep_their_ttl_and_the_index_its_cap(app, client, redis_client,
                                                                 monkeypatch):
    monkeypatch.setattr("agegate.storage.identities.MAX_ACCOUNT_ENTRIES", 2)
    for born in ("1990-01-01", "1991-01-01", "1992-01-01"):
        client.post(URL, json={"date_of_birth": born, "country": "US", "account_id": "acc-cap"},
                    headers=auth("registration"))
    retention = app.extensions["agegate"].retention.seconds("audit")
    for key in (keys.AUDIT_STREAM, keys.AUDIT_HEADS):
        assert retention - 60 <= redis_client.ttl(key) <= retention
    account_hash = app.extensions["agegate"].hasher.account("acc-cap")
    assert redis_client.llen(keys.audit_index(account_hash)) == 2
    assert redis_client.xlen(keys.AUDIT_STREAM) == 3


def test_the_fast_view_keeps_the_routes_access_rule_and_its_documentation(app, client):
    view = app.view_functions["age_checks.create_age_check"]
    assert view._agegate_roles == frozenset({"registration"})
    body = {"date_of_birth": "1990-01-01", "country": "US"}
    assert client.post(URL, json=body).status_code == 401
    assert client.post(URL, json=body, headers=auth("reviewer")).status_code == 403
    operation = client.get("/openapi.json").json["paths"][URL]["post"]
    assert "application/json" in operation["requestBody"]["content"]
    assert {"200", "422"} <= set(operation["responses"])
