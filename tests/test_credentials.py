"""Digital credentials over HTTP: requests, answers, what they leave in Redis, and the age check
that follows (docs/api.md, "Digital credentials")."""

from __future__ import annotations

import base64
import re
from datetime import timedelta

import pytest

from agegate import create_app
from agegate.storage import keys
from tests.conftest import auth, make_config
from tests.mdoc_helpers import MDL, ORIGIN, Presentation, salts

# Requests, markers and blocks live in several slots: run again on a Redis Cluster.
pytestmark = pytest.mark.cluster


@pytest.fixture
def app(redis_url, redis_client, tmp_path, clock, pki):
    config = make_config(redis_url, tmp_path, credential_origins=(ORIGIN, "http://localhost:8701"),
                         credential_trust_anchors=pki.anchors_pem().decode(), load_model=False)
    return create_app(config, clock=clock)


def new_request(client, **ids) -> dict:
    response = client.post("/v1/credential-requests", json={"origin": ORIGIN, **ids},
                           headers=auth("registration"))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def answer(client, request_id: str, presentation: str, query: str = "age"):
    return client.post(f"/v1/credential-requests/{request_id}/response",
                       json={"vp_token": {query: [presentation]}}, headers=auth("registration"))


def age_check(client, born: str = "2000-01-01", country: str = "US", **ids) -> dict:
    response = client.post("/v1/age-checks", headers=auth("registration"),
                           json={"date_of_birth": born, "country": country, **ids})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_a_request_is_the_contracts_openid4vp_request(client, clock):
    body = new_request(client, account_id="acc-1", session_id="s-1")
    assert body["protocol"] == "openid4vp-v1-unsigned"
    assert body["expires_at"] == "2026-11-24T13:35:00Z"  # the test clock reads 13:30Z
    assert re.fullmatch(r"creq_s\d+_[A-Za-z0-9_-]+", body["request_id"])
    request = body["request"]
    assert (request["response_type"], request["response_mode"]) == ("vp_token", "dc_api")
    nonce = request.pop("nonce")
    assert re.fullmatch(r"[A-Za-z0-9_-]+", nonce)
    assert len(base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))) * 8 >= 128
    assert new_request(client)["request"]["nonce"] != nonce
    assert request["dcql_query"] == {
        "credentials": [
            {"id": "age", "format": "mso_mdoc", "meta": {"doctype_value": "eu.europa.ec.av.1"},
             "claims": [{"path": ["eu.europa.ec.av.1", "age_over_18"]}]},
            {"id": "mdl", "format": "mso_mdoc", "meta": {"doctype_value": "org.iso.18013.5.1.mDL"},
             "claims": [{"path": ["org.iso.18013.5.1", "age_over_18"]}]}],
        "credential_sets": [{"options": [["age"], ["mdl"]]}]}


@pytest.mark.parametrize("body", [
    {"origin": "https://other.example"}, {"origin": "https://signup.example/"},
    {"origin": "https://SIGNUP.example"}, {}, {"origin": ORIGIN, "extra": 1},
    {"origin": ORIGIN, "session_id": "has space"}, {"origin": 7}, [],
])
def test_a_request_for_another_origin_or_a_bad_body_is_a_422(client, body):
    response = client.post("/v1/credential-requests", json=body, headers=auth("registration"))
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "validation_error"


def test_only_the_registration_role_may_ask(client):
    assert client.post("/v1/credential-requests", json={"origin": ORIGIN}).status_code == 401
    response = client.post("/v1/credential-requests", json={"origin": ORIGIN},
                           headers=auth("signals"))
    assert response.status_code == 403
    response = client.post("/v1/credential-requests/creq_s1_x/response",
                           json={"vp_token": {"age": ["x"]}}, headers=auth("reviewer"))
    assert response.status_code == 403


def test_eu_age_verification_over_18_and_an_mdl(client, pki):
    request = new_request(client)
    presentation = Presentation(pki, request["request"]["nonce"]).encoded()
    response = answer(client, request["request_id"], presentation)
    assert response.status_code == 200
    body = response.get_json()
    assert body == {"request_id": request["request_id"], "result": "over_18", "reason": None,
                    "check_id": body["check_id"]}
    request = new_request(client)
    mdl = Presentation(pki, request["request"]["nonce"], doctype=MDL[0], namespace=MDL[1])
    assert answer(client, request["request_id"], mdl.encoded(), "mdl").get_json()["result"] \
        == "over_18"


@pytest.mark.parametrize(("change", "reason"), [
    ({"nonce": "not-this-requests-nonce-000"}, "bad_device_signature"),
    ({"origin": "http://localhost:8701"}, "bad_device_signature"),
    ({"issuer": "untrusted"}, "untrusted_issuer"),
    ({"tamper_element": True}, "digest_mismatch"),
    ({"valid_until": "expired"}, "expired"),
    ({"doctype": MDL[0], "namespace": MDL[1]}, "wrong_doctype"),
])
def test_each_failure_is_rejected_with_its_reason(client, pki, clock, change, reason):
    request = new_request(client)
    if change.get("valid_until") == "expired":
        change = {"valid_until": clock.now() - timedelta(seconds=1)}
    options = {"nonce": request["request"]["nonce"], **change}
    response = answer(client, request["request_id"], Presentation(pki, **options).encoded())
    assert response.status_code == 200
    assert (response.get_json()["result"], response.get_json()["reason"]) == ("rejected", reason)


@pytest.mark.parametrize("garbage", ["!!!", "AAAA", base64.urlsafe_b64encode(b"\x9f" * 3000)
                                     .decode()])
def test_garbage_is_rejected_as_malformed(client, garbage):
    request = new_request(client)
    body = answer(client, request["request_id"], garbage).get_json()
    assert (body["result"], body["reason"]) == ("rejected", "malformed")


@pytest.mark.parametrize("body", [
    {}, {"vp_token": {}}, {"vp_token": {"age": []}}, {"vp_token": {"age": ["a", "b"]}},
    {"vp_token": {"age": ["a"], "mdl": ["b"]}}, {"vp_token": {"pid": ["a"]}},
    {"vp_token": {"age": [7]}}, {"vp_token": "x"}, {"vp_token": {"age": [""]}},
    {"vp_token": {"age": ["a" * 70_000]}}, {"vp_token": {"age": ["a"]}, "state": "x"},
])
def test_a_bad_answer_body_is_a_422_and_leaves_the_request_open(client, pki, body):
    request = new_request(client)
    response = client.post(f"/v1/credential-requests/{request['request_id']}/response",
                           json=body, headers=auth("registration"))
    assert response.status_code == 422
    presentation = Presentation(pki, request["request"]["nonce"]).encoded()
    assert answer(client, request["request_id"], presentation).get_json()["result"] == "over_18"


def test_a_request_is_answered_once_and_not_after_it_expired(client, pki, redis_client):
    request = new_request(client)
    presentation = Presentation(pki, request["request"]["nonce"]).encoded()
    assert answer(client, request["request_id"], presentation).status_code == 200
    replay = answer(client, request["request_id"], presentation)
    assert replay.status_code == 409
    assert replay.get_json()["error"]["code"] == "conflict"
    # A rejected answer uses the request up as well.
    request = new_request(client)
    assert answer(client, request["request_id"], "AAAA").get_json()["reason"] == "malformed"
    assert answer(client, request["request_id"], presentation).status_code == 409
    # Expiry is Redis's own: the key lives five minutes.
    request = new_request(client)
    key = next(k for k in redis_client.scan_iter("*credreq*"))
    assert 295 <= redis_client.ttl(key) <= 300
    redis_client.delete(key)
    assert answer(client, request["request_id"], presentation).status_code == 409
    assert answer(client, "creq_s3_unknown", presentation).status_code == 409
    assert answer(client, "not-a-request", presentation).status_code == 404


def test_over_18_lets_the_same_sessions_and_accounts_age_check_through(client, pki, clock):
    born_2012 = "2012-01-01"
    request = new_request(client, account_id="acc-w", session_id="sess-w")
    presentation = Presentation(pki, request["request"]["nonce"]).encoded()
    assert answer(client, request["request_id"], presentation).get_json()["result"] == "over_18"
    assert age_check(client, born_2012, session_id="sess-w")["decision"] == "allow"
    assert age_check(client, born_2012, account_id="acc-w")["decision"] == "allow"
    # Another session, another account: the declared date decides as ever.
    assert age_check(client, born_2012, session_id="sess-other")["decision"] == "deny"


def test_over_18_lasts_thirty_minutes(client, pki, redis_client):
    request = new_request(client, session_id="sess-t")
    presentation = Presentation(pki, request["request"]["nonce"]).encoded()
    answer(client, request["request_id"], presentation)
    [key] = list(redis_client.scan_iter("*credpass*"))
    assert 1790 <= redis_client.ttl(key) <= 1800


def test_not_over_18_blocks_the_session_and_account(client, pki):
    request = new_request(client, account_id="acc-m", session_id="sess-m")
    presentation = Presentation(pki, request["request"]["nonce"],
                                elements={"age_over_18": False}).encoded()
    body = answer(client, request["request_id"], presentation).get_json()
    assert (body["result"], body["reason"]) == ("not_over_18", None)
    for ids in ({"session_id": "sess-m"}, {"account_id": "acc-m"}):
        denied = age_check(client, "1990-01-01", **ids)
        assert (denied["decision"], denied["reason"]) == ("deny", "previous_underage_attempt")
    assert age_check(client, "1990-01-01", session_id="sess-n")["decision"] == "allow"


def test_a_rejected_answer_changes_nothing_for_the_age_check(client, pki):
    request = new_request(client, session_id="sess-r")
    presentation = Presentation(pki, request["request"]["nonce"], issuer="untrusted").encoded()
    assert answer(client, request["request_id"], presentation).get_json()["result"] == "rejected"
    assert age_check(client, "2012-01-01", session_id="sess-r")["decision"] == "deny"
    assert age_check(client, "1990-01-01", session_id="sess-r2")["decision"] == "allow"


def test_the_audit_trail_keeps_result_doctype_and_issuer_fingerprint(client, pki):
    from agegate import mdoc

    request = new_request(client, account_id="acc-a")
    presentation = Presentation(pki, request["request"]["nonce"]).encoded()
    answer(client, request["request_id"], presentation)
    entries = client.get("/v1/audit?account_id=acc-a", headers=auth("admin")).get_json()
    [entry] = [e for e in entries["events"] if e["action"] == "credential_check"]
    assert entry["details"] == {
        "request_id": request["request_id"], "check_id": entry["details"]["check_id"],
        "result": "over_18", "reason": None, "doctype": "eu.europa.ec.av.1",
        "issuer_fingerprint": mdoc.fingerprint(pki.signer)}


def _every_stored_value(redis_url: str) -> bytes:
    """Every key, and every value as Redis serialises it (DUMP), plus stream entries."""
    import redis as redis_lib

    binary = redis_lib.Redis.from_url(redis_url)
    dump = b""
    for key in binary.scan_iter("*"):
        dump += key + b"\n" + (binary.dump(key) or b"") + b"\n"
        if binary.type(key) == b"stream":
            for _, fields in binary.xrange(key):
                dump += b"".join(k + v for k, v in fields.items())
    binary.close()
    return dump


def test_no_stored_value_holds_the_presentation_or_its_salts(client, pki, redis_url):
    from tests.conftest import cluster_mode

    if cluster_mode():
        pytest.skip("reads every key of a single Redis")
    for elements in ({"age_over_18": True, "family_name": "Doe"}, {"age_over_18": False}):
        request = new_request(client, account_id="acc-p", session_id="sess-p")
        built = Presentation(pki, request["request"]["nonce"], elements=elements)
        raw = built.build()
        encoded = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        answer(client, request["request_id"], encoded)
        dump = _every_stored_value(redis_url)
        for salt in salts(raw):
            assert salt not in dump and salt.hex().encode() not in dump
        assert encoded[:40].encode() not in dump and raw[:64] not in dump
        assert b"Doe" not in dump and request["request"]["nonce"].encode() not in dump


# -- with step-up assurance (API.md "Age assurance") ---------------------------------------------
def _status(client, account_id: str) -> dict:
    response = client.get(f"/v1/accounts/{account_id}", headers=auth("reviewer"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _prove(client, pki, over_18: bool = True, **ids) -> dict:
    request = new_request(client, **ids)
    presentation = Presentation(pki, request["request"]["nonce"],
                                elements={"age_over_18": over_18}).encoded()
    body = answer(client, request["request_id"], presentation).get_json()
    return {**body, "request_id": request["request_id"]}


def test_in_gb_over_18_admits_the_waiting_account_and_is_its_assurance_record(client, pki):
    asked = age_check(client, account_id="acc-gb", session_id="sess-gb", country="GB")
    assert asked["decision"] == "verify" and "digital_identity" in asked["methods"]
    assert _status(client, "acc-gb")["status"] == "pending_assurance"
    proved = _prove(client, pki, account_id="acc-gb", session_id="sess-gb")
    assert proved["result"] == "over_18"
    assert _status(client, "acc-gb")["status"] == "active"
    [record] = client.get("/v1/accounts/acc-gb/assurance",
                          headers=auth("reviewer")).get_json()["records"]
    assert (record["method"], record["category"], record["outcome"]) == \
        ("digital_identity", "verification", "over_threshold")
    assert record["highly_effective"] is True and record["jurisdiction"] == "GB"
    assert record["evidence_id"] == proved["request_id"]
    assert record["provider"] == "agegate_digital_credentials"
    # The same session's and account's age checks are now allow, not verify.
    again = age_check(client, session_id="sess-gb", country="GB")
    assert (again["decision"], again["reason"]) == ("allow", "of_age")
    assert age_check(client, account_id="acc-gb", country="GB")["decision"] == "allow"
    assert age_check(client, session_id="sess-other", country="GB")["decision"] == "verify"


def test_over_18_without_an_account_is_still_recorded_for_the_regulator(client, pki):
    assert _prove(client, pki, session_id="sess-anon")["result"] == "over_18"
    export = client.get("/v1/admin/assurance/export?from=2026-11-24&to=2026-11-24",
                        headers=auth("admin"))
    assert export.status_code == 200
    assert '"digital_identity"' in export.get_data(as_text=True)


def test_in_gb_not_over_18_blocks_the_identifiers_of_the_sessions_verify_checks(client, pki):
    asked = age_check(client, account_id="acc-k", session_id="sess-k", country="GB",
                      device_id="dev-k", email="Kid@Example.com")
    assert asked["decision"] == "verify"
    age_check(client, session_id="sess-k", country="GB", device_id="dev-k2")
    proved = _prove(client, pki, over_18=False, account_id="acc-k", session_id="sess-k")
    assert proved["result"] == "not_over_18"
    for ids in ({"device_id": "dev-k"}, {"device_id": "dev-k2"}, {"email": "kid@example.com"},
                {"session_id": "sess-k"}, {"account_id": "acc-k"}):
        denied = age_check(client, country="US", **ids)
        assert (denied["decision"], denied["reason"]) == ("deny", "previous_underage_attempt"), ids
    # A device of another session is not blocked.
    assert age_check(client, country="US", device_id="dev-other")["decision"] == "allow"
    # An issuer-signed under-18 is a verification finding: restricted, one case for a reviewer.
    assert _status(client, "acc-k")["status"] == "restricted"
    cases = client.get("/v1/review/cases?kind=age_signal", headers=auth("reviewer")).get_json()
    assert [c["account_id"] for c in cases["cases"]] == ["acc-k"]


def test_only_the_last_thirty_minutes_verify_checks_are_blocked(client, pki, redis_client):
    age_check(client, session_id="sess-old", country="GB", device_id="dev-old")
    [key] = list(redis_client.scan_iter("*verify-session*"))
    assert 1790 <= redis_client.ttl(key) <= 1800
    # A member older than the period is not read, even while the key lives on.
    stale = "ab" * 32
    redis_client.zadd(key, {f"device:{stale}": 1.0})
    _prove(client, pki, over_18=False, session_id="sess-old")
    assert age_check(client, country="US", device_id="dev-old")["decision"] == "deny"
    assert not list(redis_client.scan_iter(f"*retry*{stale}*"))
    assert list(redis_client.scan_iter("*retry*device*"))


def test_an_answer_after_a_key_rotation_names_the_new_account_in_its_own_slot(
        redis_url, redis_client, tmp_path, clock, pki):
    """A request made for an account not seen yet, answered after AGEGATE_SECRET_KEY gained a
    new first key: the account is now named under that key, in another shard than the
    request's, so its assurance record is written in a unit of its own (on a cluster, one unit
    across the two slots would be refused)."""
    old, new = "old-secret-0123456789-abcdefghijklmnopqrstuvwxyz", \
        "new-secret-0123456789-abcdefghijklmnopqrstuvwxyz"

    def app_with(secret: str):
        return create_app(make_config(
            redis_url, tmp_path, secret_key=secret, load_model=False, credential_origins=(ORIGIN,),
            credential_trust_anchors=pki.anchors_pem().decode()), clock=clock)

    before, after = app_with(old), app_with(f"{new},{old}")
    shard = lambda app, account: keys.shard_of(  # noqa: E731
        app.extensions["agegate"].hasher.short("account", account))
    account = next(a for a in (f"acc-rot-{i}" for i in range(100))
                   if shard(before, a) != shard(after, a))
    request = new_request(before.test_client(), account_id=account)
    presentation = Presentation(pki, request["request"]["nonce"]).encoded()
    client = after.test_client()
    assert answer(client, request["request_id"], presentation).json["result"] == "over_18"
    [record] = client.get(f"/v1/accounts/{account}/assurance",
                          headers=auth("reviewer")).json["records"]
    assert record["evidence_id"] == request["request_id"]
