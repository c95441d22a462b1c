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
    france = get(client, "FR").json
    assert france["resolved_from"] == "*" and france["uncertain"] is True
    assert france["minimum_age"] == 18 and france["age_signal"]["required"] is False


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
])
def test_a_bad_operator_file_stops_the_service_at_start(redis_url, redis_client, tmp_path, rows):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(ConfigError, match="AGEGATE_JURISDICTIONS_FILE"):
        create_app(make_config(redis_url, tmp_path, load_model=False, jurisdictions_file=path))
