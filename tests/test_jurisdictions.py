"""Jurisdictions through the HTTP API: the shipped table, fall-back rows, operator overrides,
and the age check reading its minimum age from the same table."""

from __future__ import annotations

import json

import pytest

from agegate import create_app
from agegate.config import ConfigError
from tests.conftest import auth, make_config

URL = "/v1/jurisdictions/"


def get(client, code: str, role: str = "registration"):
    return client.get(URL + code, headers=auth(role))


def test_california_cites_ab_1043_and_asks_at_download_and_launch(client):
    response = get(client, "US-CA")
    assert response.status_code == 200, response.json
    body = response.json
    assert body["jurisdiction"] == "US-CA" and body["resolved_from"] == "US-CA"
    assert body["minimum_age"] == 18
    assert body["age_signal"] == {
        "required": True, "effective": "2027-01-01", "when": ["download", "launch"],
        "law": "Cal. Civ. Code §§1798.500-1798.502 (AB 1043, Digital Age Assurance Act)"}
    assert body["sources"] and body["rerequest"]


@pytest.mark.parametrize(("code", "effective", "uncertain", "status"), [
    ("US", None, False, "in_force"),
    ("US-UT", "2027-05-06", True, "enacted"),
    ("US-TX", "2026-01-01", True, "in_litigation"),
    ("US-LA", "2027-07-01", True, "enacted"),
    ("BR", "2026-03-17", True, "enacted"),
    ("GB", None, False, "in_force"),
])
def test_every_shipped_row_cites_its_law_and_says_when_it_is_uncertain(client, code, effective,
                                                                        uncertain, status):
    body = get(client, code).json
    assert body["resolved_from"] == code
    assert body["age_signal"]["effective"] == effective
    assert body["age_signal"]["law"]
    assert (body["uncertain"], body["status"]) == (uncertain, status)
    if code == "US-TX":
        assert "litigation" in body["note"] and "litigation" in body["age_signal"]["law"]


def test_unknown_places_fall_back_to_the_most_specific_row(client):
    new_york = get(client, "us-ny").json
    assert (new_york["jurisdiction"], new_york["resolved_from"]) == ("US-NY", "US")
    japan = get(client, "JP").json
    assert japan["resolved_from"] == "*" and japan["uncertain"] is True
    assert japan["minimum_age"] == 18 and japan["age_signal"]["required"] is False
    # An EU member state without a row of its own resolves to the EU row, not to `*`.
    france = get(client, "fr").json
    assert (france["jurisdiction"], france["resolved_from"]) == ("FR", "EU")


@pytest.mark.parametrize("code", ["USA", "XX", "U1", "US-CALIF", "US_CA", "ZZ-CA"])
def test_malformed_or_unreal_codes_are_404_in_the_contract_shape(client, code):
    response = get(client, code)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_only_the_registration_role_may_ask(client):
    assert get(client, "US", role="signals").status_code == 403
    assert client.get(URL + "US").status_code == 401


def test_an_operator_file_overrides_and_adds_rows_and_the_age_check_follows(
        redis_url, redis_client, tmp_path, clock):
    rows = {"US-CA": {"minimum_age": 21, "age_signal": {"effective": "2027-02-01"}},
            "JP": {"name": "Japan", "minimum_age": 20, "status": "in_force",
                   "uncertain": False, "note": "Operator's own row.",
                   "sources": ["https://example.org/jp"]}}
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows))
    app = create_app(make_config(redis_url, tmp_path, load_model=False, jurisdictions_file=path,
                                 minimum_ages={"US-AL": 19}), clock=clock)
    client = app.test_client()
    california = get(client, "US-CA").json
    assert california["minimum_age"] == 21
    assert california["age_signal"]["effective"] == "2027-02-01"
    assert california["age_signal"]["when"] == ["download", "launch"]  # kept from the shipped row
    assert get(client, "JP-13").json["minimum_age"] == 20
    assert get(client, "US-AL").json["minimum_age"] == 19  # AGEGATE_MINIMUM_AGES still works

    def check(born: str, country: str, region: str | None = None) -> str:
        body = {"date_of_birth": born, "country": country, **({"region": region} if region else {})}
        response = client.post("/v1/age-checks", json=body, headers=auth("registration"))
        assert response.status_code == 200, response.json
        return response.json["decision"]

    # The clock reads 2026-11-24: born 2006-11-24 is 20 today, 2005-11-24 is 21.
    assert check("2006-11-24", "US", "CA") == "deny"
    assert check("2005-11-24", "US", "CA") == "allow"
    assert check("2006-11-24", "JP") == "allow"
    assert check("2006-11-24", "US", "NY") == "allow"


@pytest.mark.parametrize("rows", [
    {"US-CA": {"minimum_age": 9}},
    {"US-CA": {"status": "maybe"}},
    {"US-CA": {"colour": "blue"}},
    {"US-CA": {"age_signal": {"when": ["sometimes"]}}},
    {"NOT A CODE": {"minimum_age": 18}},
    {"GB": {"assurance": {"accepted_methods": ["self_declaration"]}}},
    {"GB": {"assurance": {"accepted_methods": ["palm_reading"]}}},
    {"GB": {"assurance": {"accepted_methods": []}}},
    {"GB": {"assurance": {"estimation_challenge_age": None}}},
    {"GB": {"assurance": {"liveness_required": "yes"}}},
    {"US": {"assurance": {"colour": "blue"}}},
    {"GB": {"assurance": {"accepted_methods": ["credit_card", "credit_card"]}}},
    {"US-CA": {"minimum_age": True}},
    {"US-CA": {"age_signal": {"effective": "1 Feb 2027"}}},
])
def test_a_bad_operator_file_stops_the_service_at_start(redis_url, redis_client, tmp_path, rows):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(ConfigError, match="AGEGATE_JURISDICTIONS_FILE"):
        create_app(make_config(redis_url, tmp_path, load_model=False, jurisdictions_file=path))


# -- age assurance (issue 22) ----------------------------------------------------------------
ALL_METHODS = ["digital_identity", "photo_id_matching", "facial_age_estimation", "open_banking",
               "mobile_network_operator", "credit_card", "email_age_estimation"]
VERIFICATION = ["digital_identity", "photo_id_matching", "open_banking",
                "mobile_network_operator", "credit_card"]
EU_MEMBERS = ("AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES "
              "SE").split()


@pytest.mark.parametrize(("code", "methods", "effective", "law", "uncertain"), [
    ("GB", ALL_METHODS, "2025-07-25", "Online Safety Act 2023", False),
    ("EU", VERIFICATION, "2025-07-14", "Digital Services Act", True),
    ("AU", ALL_METHODS, "2025-12-10", "Social Media Minimum Age", True),
])
def test_where_a_declared_age_is_not_enough_the_row_says_which_methods_count(
        client, code, methods, effective, law, uncertain):
    body = get(client, code).json
    rule = body["assurance"]
    assert body["resolved_from"] == code
    assert rule["self_declaration_sufficient"] is False
    assert rule["accepted_methods"] == methods
    assert rule["estimation_challenge_age"] == 25 and rule["liveness_required"] is True
    assert law in rule["law"] and rule["effective"] == effective
    assert rule["sources"] and all(s.startswith("https://") for s in rule["sources"])
    assert rule["uncertain"] is uncertain and rule["note"]
    assert body["policy_version"]


def test_the_eu_guidelines_and_ofcom_codes_are_cited():
    from agegate.services.jurisdictions import JurisdictionTable

    table = JurisdictionTable.build()
    assert "14 July 2025" in table.rows["EU"]["assurance"]["law"]
    assert "Protection of Children Codes" in table.rows["GB"]["assurance"]["law"]
    assert "Online Safety Amendment (Social Media Minimum Age) Act 2024" in \
        table.rows["AU"]["assurance"]["law"]


@pytest.mark.parametrize("code", EU_MEMBERS)
def test_every_eu_member_state_resolves_to_the_eu_row(client, code):
    body = get(client, code).json
    assert body["resolved_from"] == "EU", code
    assert body["assurance"]["self_declaration_sufficient"] is False


@pytest.mark.parametrize("code", ["US", "US-CA", "US-UT", "US-TX", "US-LA", "US-NY"])
def test_us_rows_say_a_declared_age_still_suffices(client, code):
    rule = get(client, code).json["assurance"]
    assert rule["self_declaration_sufficient"] is True
    assert rule["accepted_methods"] == [] and rule["law"]


def test_an_operator_gives_a_member_state_its_own_row_and_the_version_changes(
        redis_url, redis_client, tmp_path, clock, client):
    shipped_version = get(client, "GB").json["policy_version"]
    rows = {"DE": {"name": "Germany", "assurance": {"accepted_methods": ["digital_identity"]}}}
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows))
    app = create_app(make_config(redis_url, tmp_path, load_model=False, jurisdictions_file=path),
                     clock=clock)
    germany = get(app.test_client(), "DE").json
    assert germany["resolved_from"] == "DE"
    # Started from the EU row: only the field given changed.
    assert germany["assurance"]["accepted_methods"] == ["digital_identity"]
    assert germany["assurance"]["self_declaration_sufficient"] is False
    assert "Digital Services Act" in germany["assurance"]["law"]
    assert get(app.test_client(), "FR").json["resolved_from"] == "EU"
    assert germany["policy_version"].startswith(shipped_version + "+")
