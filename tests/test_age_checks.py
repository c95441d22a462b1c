"""The registration age gate, through the HTTP API on a real Redis."""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, timedelta

import pytest

from agegate import create_app
from agegate.services.age_checks import ALLOW_MESSAGE, DENY_MESSAGE, age_on
from agegate.storage import keys
from tests.conftest import auth, make_config
from tests.helpers import (
    assert_nowhere,
    audit_verify,
    block_identities,
    dump_keyspace,
    keys_without_ttl,
)

# Storage across accounts and shards: also run on a real 3-primary Redis Cluster.
pytestmark = pytest.mark.cluster

URL = "/v1/age-checks"


def check(client, **body):
    body.setdefault("country", "US")
    return client.post(URL, json=body, headers=auth("registration"))


@pytest.mark.parametrize(
    ("born", "today", "age"),
    [
        (date(2008, 11, 24), date(2026, 11, 24), 18),  # the 18th birthday itself
        (date(2008, 11, 25), date(2026, 11, 24), 17),  # one day short
        (date(2008, 2, 29), date(2026, 2, 28), 17),  # leap-day birthday, common year: not yet
        (date(2008, 2, 29), date(2026, 3, 1), 18),  # ...turns over on 1 March
        (date(2008, 2, 29), date(2028, 2, 29), 20),  # leap year: on the day itself
        (date(2000, 12, 31), date(2026, 1, 1), 25),
    ],
)
def test_age_arithmetic(born, today, age):
    assert age_on(born, today) == age


def test_adult_is_allowed_and_minor_denied_on_either_side_of_the_birthday(client):
    adult = check(client, date_of_birth="2008-11-24")
    assert adult.status_code == 200
    assert adult.json["decision"] == "allow" and adult.json["reason"] == "of_age"
    assert adult.json["message"] == ALLOW_MESSAGE
    assert adult.json["check_id"]
    minor = check(client, date_of_birth="2008-11-25")
    assert minor.json["decision"] == "deny" and minor.json["reason"] == "under_minimum_age"


@pytest.mark.parametrize(
    ("today", "decision"),
    [(datetime(2026, 2, 28, 23, 59, tzinfo=UTC), "deny"),
     (datetime(2026, 3, 1, 0, 0, tzinfo=UTC), "allow")],
)
def test_leap_day_birthday_turns_over_on_first_of_march(client, clock, today, decision):
    clock.instant = today
    assert check(client, date_of_birth="2008-02-29").json["decision"] == decision


def test_age_is_counted_on_the_utc_date(client, clock):
    # 23:30 UTC on the eve of the birthday: still 17, whatever the caller's local date.
    clock.instant = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)
    assert check(client, date_of_birth="2008-11-24").json["decision"] == "deny"


def test_messages_are_neutral_and_never_hint_at_the_cutoff(client):
    bodies = [check(client, date_of_birth="2012-01-01").json,
              check(client, date_of_birth="1990-01-01").json]
    for body in bodies:
        assert not any(ch.isdigit() for ch in body["message"])
        assert "age" not in body["message"].lower() and "old" not in body["message"].lower()
    assert bodies[0]["message"] == DENY_MESSAGE


@pytest.mark.parametrize(
    ("rules", "country", "region", "born", "decision"),
    [
        ({}, "CA", None, "2008-11-24", "allow"),  # default 18 everywhere
        ({}, "FR", None, "2008-11-25", "deny"),  # ... in the EU too, where an adult verifies
        ({"US-AL": 19}, "US", "AL", "2008-11-24", "deny"),  # region rule applies
        ({"US-AL": 19}, "US", "US-AL", "2008-11-24", "deny"),  # full ISO 3166-2 form accepted
        ({"US-AL": 19}, "US", "al", "2007-11-24", "allow"),  # 19 on the day, lower-case region
        ({"US-AL": 19}, "US", "CA", "2008-11-24", "allow"),  # other regions keep the default
        ({"JP": 20}, "JP", "13", "2007-11-24", "deny"),  # a country rule covers its regions
        ({"JP": 20, "JP-13": 18}, "JP", "13", "2008-11-24", "allow"),  # most specific wins
    ],
)
def test_jurisdiction_table(redis_url, redis_client, tmp_path, clock, rules, country, region,
                            born, decision):
    app = create_app(make_config(redis_url, tmp_path, minimum_ages=rules, load_model=False),
                     clock=clock)
    body = {"date_of_birth": born, "country": country}
    if region:
        body["region"] = region
    response = app.test_client().post(URL, json=body, headers=auth("registration"))
    assert response.status_code == 200, response.json
    assert response.json["decision"] == decision


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"device_id": "dev-1"}, {"device_id": "dev-1"}),
        ({"email": "Kid@Example.com"}, {"email": "  kid@example.COM "}),
        ({"session_id": "s-9"}, {"session_id": "s-9", "device_id": "new-device"}),
        ({"device_id": "d", "email": "a@b.co", "session_id": "s"}, {"email": "a@b.co"}),
    ],
)
def test_going_back_and_typing_another_date_is_still_denied(client, first, second):
    assert check(client, date_of_birth="2012-05-01", **first).json["reason"] == "under_minimum_age"
    again = check(client, date_of_birth="1980-05-01", **second)
    assert again.json == again.json | {"decision": "deny", "reason": "previous_underage_attempt"}
    assert again.json["message"] == DENY_MESSAGE


def test_unrelated_identifiers_are_not_blocked(client):
    check(client, date_of_birth="2012-05-01", device_id="dev-1", email="kid@example.com")
    other = check(client, date_of_birth="1980-05-01", device_id="dev-2", email="mum@example.com")
    assert other.json["decision"] == "allow"


def test_retry_block_lasts_the_configured_days(redis_url, redis_client, tmp_path, clock):
    app = create_app(make_config(redis_url, tmp_path, retry_block_days=7, load_model=False),
                     clock=clock)
    app.test_client().post(URL, json={"date_of_birth": "2012-05-01", "country": "US",
                                      "device_id": "dev-1"}, headers=auth("registration"))
    blocks = list(redis_client.scan_iter("agegate:retry:*"))
    assert blocks, "an under-age answer must leave a retry block"
    for key in blocks:
        assert 7 * 86400 - 60 <= redis_client.ttl(key) <= 7 * 86400


def test_allowed_check_leaves_no_retry_block(client, redis_client):
    check(client, date_of_birth="1990-05-01", device_id="dev-1")
    assert not list(redis_client.scan_iter("agegate:retry:*"))


def test_identity_block_denies_whatever_the_date(app, client):
    state = app.extensions["agegate"]
    block_identities(state, [("device", state.hasher.short("device", "dev-banned"))])
    response = check(client, date_of_birth="1980-01-01", device_id="dev-banned")
    assert response.json["decision"] == "deny"
    assert response.json["reason"] == "identity_blocked"
    assert check(client, date_of_birth="1980-01-01", device_id="dev-ok").json["decision"] == "allow"


def test_identity_block_is_never_shortened(app, redis_client):
    state = app.extensions["agegate"]
    ident = [("email", state.hasher.short("email", "kid@example.com"))]
    for ttl in (10_000, 100):
        block_identities(state, ident, ttl_seconds=ttl)
    assert redis_client.ttl(keys.identity_block(*ident[0])) > 9_000


@pytest.mark.parametrize(
    ("born", "field_message"),
    [
        ("2023-02-30", "Enter a real date as YYYY-MM-DD."),
        ("24/11/2008", "Enter a real date as YYYY-MM-DD."),
        ("2026-11-25", "Must not be in the future."),
        ("1895-01-01", "Is not a plausible date of birth."),
    ],
)
def test_bad_dates_are_422_without_echoing_the_date(client, born, field_message):
    response = check(client, date_of_birth=born)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_error"
    assert response.json["error"]["fields"]["date_of_birth"] == [field_message]
    assert born not in response.get_data(as_text=True)


def test_age_of_exactly_130_is_accepted_and_131_is_not(client):
    assert check(client, date_of_birth="1896-11-24").status_code == 200
    assert check(client, date_of_birth="1895-11-24").status_code == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"date_of_birth": "2000-01-01"}, "country"),
        ({"country": "US"}, "date_of_birth"),
        ({"date_of_birth": "2000-01-01", "country": "XX"}, "country"),
        ({"date_of_birth": "2000-01-01", "country": "USA"}, "country"),
        ({"date_of_birth": "2000-01-01", "country": "US", "email": "not-an-email"}, "email"),
        ({"date_of_birth": "2000-01-01", "country": "US", "device_id": ""}, "device_id"),
        ({"date_of_birth": "2000-01-01", "country": "US", "device_id": "x" * 257}, "device_id"),
        ({"date_of_birth": "2000-01-01", "country": "US", "region": "Cal!"}, "region"),
        ({"date_of_birth": "2000-01-01", "country": "US", "dob": "2000-01-01"}, "dob"),
        ({"date_of_birth": 20000101, "country": "US"}, "date_of_birth"),
    ],
)
def test_invalid_fields_are_named(client, body, field):
    response = client.post(URL, json=body, headers=auth("registration"))
    assert response.status_code == 422
    assert field in response.json["error"]["fields"]


def test_email_error_does_not_echo_the_email(client):
    response = check(client, date_of_birth="2000-01-01", email="kid.secret@@example.com")
    assert response.status_code == 422
    assert "kid.secret" not in response.get_data(as_text=True)


def test_date_of_birth_and_identifiers_are_never_stored_or_logged(client, redis_client, caplog):
    caplog.set_level(logging.DEBUG)
    check(client, date_of_birth="2011-07-13", email="kid@example.com", device_id="dev-xyz",
          session_id="sess-xyz", account_id="acc-1")
    check(client, date_of_birth="1977-03-02", email="kid@example.com")
    assert_nowhere(redis_client, "2011-07-13", "07-13", "1977-03-02",
                   "kid@example.com", "dev-xyz", "sess-xyz")
    # The birth year on its own, as a number: not inside the hex of a hash or an id, where four
    # digits turn up by chance (a test that fails one run in thirty proves nothing).
    year = re.compile(r"(?<![0-9A-Za-z])(2011|1977)(?![0-9A-Za-z])")
    for key, value in dump_keyspace(redis_client).items():
        assert not year.search(key) and not year.search(value), f"a birth year in {key}"
    for record in caplog.records:
        text = record.getMessage()
        for needle in ("2011-07-13", "1977-03-02", "kid@example.com", "dev-xyz"):
            assert needle not in text


def test_every_key_written_expires(client, redis_client):
    check(client, date_of_birth="2012-01-01", email="a@b.co", account_id="acc-1")
    check(client, date_of_birth="1990-01-01", device_id="d-2", account_id="acc-2")
    assert list(redis_client.scan_iter("*"))
    assert keys_without_ttl(redis_client) == []


def test_each_check_leaves_a_pii_free_audit_record(app, client):
    first = check(client, date_of_birth="2012-01-01", email="kid@example.com", account_id="acc-7")
    check(client, date_of_birth="1990-01-01")
    entries = app.extensions["agegate"].audit.entries(None, 10)
    assert [e["action"] for e in entries] == ["age_check", "age_check"]
    mine = app.extensions["agegate"].audit.entries("acc-7", 10)
    assert len(mine) == 1
    assert mine[0]["details"]["check_id"] == first.json["check_id"]
    assert mine[0]["actor"] == "registration-bot"
    assert mine[0]["details"]["reason"] == "under_minimum_age"
    assert "kid@example.com" not in str(entries) and "2012-01-01" not in str(entries)


def test_redeclaration_runs_the_registered_hooks_for_the_account(app, client):
    seen = []
    app.extensions["agegate"].age_checks.redeclaration_hooks.append(
        lambda account_id, at, actor: seen.append((account_id, actor))
    )
    check(client, date_of_birth="2012-01-01", device_id="dev-1", account_id="acc-1")
    assert seen == []
    check(client, date_of_birth="1990-01-01", device_id="dev-1", account_id="acc-1")
    assert seen == [("acc-1", "registration-bot")]


def test_only_the_registration_role_may_check(client):
    body = {"date_of_birth": "2000-01-01", "country": "US"}
    assert client.post(URL, json=body).status_code == 401
    assert client.post(URL, json=body, headers=auth("reviewer")).status_code == 403
    assert client.post(URL, json=body, headers=auth("admin")).status_code == 403


def test_one_request_leaves_nothing_behind_for_the_next(client):
    """The request schema is one shared instance: errors and values must not carry over."""
    first = check(client, date_of_birth="2000-01-01", country="us", region="US-CA",
                  email=" Adult@Example.com ")
    assert first.status_code == 200
    bad = check(client, date_of_birth="2000-01-01", email="not-an-email", region="Cal!")
    assert bad.status_code == 422
    assert set(bad.json["error"]["fields"]) == {"email", "region"}
    again = check(client, date_of_birth="2000-01-01", country="CA")
    assert again.status_code == 200
    assert again.json["decision"] == "allow"


def test_the_audit_entry_recorded_is_the_outcome_that_applied(app, client):
    state = app.extensions["agegate"]
    block_identities(state, [("device", state.hasher.short("device", "dev-banned"))])
    answers = [
        check(client, date_of_birth="1980-01-01", device_id="dev-banned", account_id="a1"),
        check(client, date_of_birth="2012-01-01", device_id="dev-kid", account_id="a2"),
        check(client, date_of_birth="1980-01-01", device_id="dev-kid", account_id="a3"),
        check(client, date_of_birth="1980-01-01", device_id="dev-adult", account_id="a4"),
    ]
    assert [a.json["reason"] for a in answers] == [
        "identity_blocked", "under_minimum_age", "previous_underage_attempt", "of_age"]
    for number, answer in enumerate(answers, 1):
        # a3's re-declaration also reaches the account as a signal (and may flag it, which the
        # model's threshold decides); exactly one age-check entry per account either way.
        (entry,) = [e for e in state.audit.entries(f"a{number}", 10)
                    if e["action"] == "age_check"]
        assert entry["details"]["check_id"] == answer.json["check_id"]
        assert entry["details"]["reason"] == answer.json["reason"]
        assert entry["details"]["decision"] == answer.json["decision"]
    checked, problems = state.audit.log.verify()
    assert problems == [] and checked == len(state.audit.entries(None, 100)) >= 4


# Bodies the one route must refuse with a 422 naming the field (edge cases of each field).
REFUSED = [
    ({"date_of_birth": "2000-02-30"}, "date_of_birth"),
    ({"date_of_birth": 20000101}, "date_of_birth"),
    ({"country": "ZZ"}, "country"),
    ({"country": 1}, "country"),
    ({"region": "CAL1"}, "region"),
    ({"device_id": ""}, "device_id"),
    ({"device_id": "a b"}, "device_id"),
    ({"account_id": "a" * 257}, "account_id"),
    ({"email": "a@" + "b" * 250 + ".com"}, "email"),
    ({"email": None}, "email"),
    ({"surprise": "x"}, "surprise"),
]


@pytest.mark.parametrize(("change", "field"), REFUSED)
def test_the_route_refuses_each_bad_field_with_the_contracts_422(client, change, field):
    body = {"date_of_birth": "2000-01-01", "country": "US", **change}
    answer = client.post(URL, json=body, headers=auth("registration"))
    assert answer.status_code == 422
    assert answer.json["error"]["code"] == "validation_error"
    assert set(answer.json["error"]["fields"]) == {field}


def test_a_body_that_is_not_json_is_the_contracts_400(client):
    answer = client.post(URL, data=b'{"date_of_birth": ', content_type="application/json",
                         headers=auth("registration"))
    assert answer.status_code == 400
    assert answer.json["error"]["code"] == "malformed_json"


def test_the_route_is_documented_with_its_schemas(client):
    operation = client.get("/openapi.json").json["paths"][URL]["post"]
    assert "application/json" in operation["requestBody"]["content"]
    assert {"200", "422"} <= set(operation["responses"])
    answer = check(client, date_of_birth="1990-01-01")
    assert set(answer.json) == {"check_id", "decision", "reason", "message"}


def test_each_outcome_writes_one_entry_and_the_cli_verifies_the_chain(
    app, client, clock, redis_url, monkeypatch
):
    state = app.extensions["agegate"]
    block_identities(state, [("email", state.hasher.short("email", "banned@example.com"))])
    bodies = [
        {"date_of_birth": "1980-01-01", "email": " Banned@Example.com"},
        {"date_of_birth": "2012-01-01", "session_id": "s-kid"},
        {"date_of_birth": "1980-01-01", "session_id": "s-kid"},
        {"date_of_birth": "1980-01-01", "session_id": "s-adult"},
    ]
    reasons = []
    for body in bodies:
        # One second apart: these checks land in random shards, and the trail orders entries
        # of different shards by the time they record.
        clock.instant += timedelta(seconds=1)
        reasons.append(check(client, **body).json["reason"])
    assert reasons == ["identity_blocked", "under_minimum_age", "previous_underage_attempt",
                       "of_age"]
    entries = state.audit.entries(None, 10)
    assert [e["details"]["reason"] for e in entries] == reasons[::-1]
    result = audit_verify(monkeypatch, redis_url)
    assert result.exit_code == 0, result.output
    assert "entries checked: 4" in result.output and "problems: 0" in result.output


def test_a_dropped_connection_does_not_break_the_next_check(app, client, redis_client):
    body = {"date_of_birth": "2012-01-01", "device_id": "dev-drop"}
    assert check(client, **body).json["reason"] == "under_minimum_age"
    redis_client.client_kill_filter(_type="normal", skipme=True)
    again = check(client, **body)
    assert again.status_code == 200 and again.json["reason"] == "previous_underage_attempt"
    checked, problems = app.extensions["agegate"].audit.log.verify()
    assert (checked, problems) == (2, [])
