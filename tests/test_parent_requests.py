"""Parent requests through the HTTP API, with a real SMTP server and real Redis."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from datetime import timedelta

import pytest

from agegate import create_app
from tests.conftest import auth, make_config
from tests.helpers import dump_keyspace, keys_without_ttl
from tests.parents_helpers import gunicorn_server, http, smtp_server  # noqa: F401

# Storage across accounts and shards: also run on a real 3-primary Redis Cluster.
pytestmark = pytest.mark.cluster

PARENT = "Parent.Person@Example.org"


@pytest.fixture
def mail(smtp_server):  # noqa: F811
    """The inbox of the SMTP server the app mails to."""
    return smtp_server[1]


@pytest.fixture
def config(redis_url, redis_client, tmp_path, smtp_server):  # noqa: F811
    """The standard test config, mailing through the real local SMTP server."""
    return make_config(redis_url, tmp_path, smtp_url=smtp_server[0])


def submit(client, request_type="deletion", child=None, **extra):
    """POST a parent request; returns the response."""
    body = {"parent_name": "Pat", "parent_email": PARENT,
            "child": {"account_id": "kid-1"} if child is None else child,
            "request_type": request_type,
            "details": "My child is 14 and made this account without asking.",
            "attestation": True, **extra}
    return client.post("/v1/parent-requests", json=body)


def test_submit_mails_a_code_and_stores_no_email(client, mail, redis_client):
    response = submit(client, child={"email": "Kid@Example.com"})
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "pending_verification"
    assert set(body) == {"request_id", "status", "status_token"}
    code = mail.code_for(PARENT)
    assert len(code) >= 6
    assert keys_without_ttl(redis_client) == []
    dump = " ".join(f"{key} {value}" for key, value in dump_keyspace(redis_client).items())
    lowered = dump.lower()
    assert "parent.person@example.org" not in lowered
    assert "kid@example.com" not in lowered
    assert code not in dump
    assert body["status_token"] not in dump


@pytest.mark.parametrize("change, field", [
    ({"child": {"username": "kid", "email": "kid@example.com"}}, "child._schema"),
    ({"child": {}}, "child._schema"),
    ({"attestation": False}, "attestation"),
    ({"request_type": "erase_everything"}, "request_type"),
    ({"details": "x" * 2001}, "details"),
    ({"parent_email": "not-an-email"}, "parent_email"),
    ({"favourite_colour": "blue"}, "favourite_colour"),
])
def test_submit_validation(client, mail, change, field):
    response = submit(client, **change) if "child" not in change else submit(
        client, child=change["child"])
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["fields"]
    assert mail.messages == []


def test_wrong_code_then_right_code(client, mail, clock):
    created = submit(client).get_json()
    rid = created["request_id"]
    wrong = client.post(f"/v1/parent-requests/{rid}/verification", json={"code": "00000000x"})
    assert wrong.status_code == 422
    assert wrong.get_json()["error"]["fields"]["code"] == ["The code is not correct."]
    right = client.post(f"/v1/parent-requests/{rid}/verification",
                        json={"code": mail.code_for(PARENT)})
    assert right.status_code == 200
    assert right.get_json() == {"status": "verified",
                                "due_at": "2026-12-24T13:30:00Z"}  # submission + 30 days
    status = client.get(f"/v1/parent-requests/{rid}",
                        query_string={"status_token": created["status_token"]})
    assert status.get_json()["status"] == "verified"


def test_expired_code_is_refused_clearly(client, mail, clock):
    rid = submit(client).get_json()["request_id"]
    clock.instant += timedelta(hours=24, seconds=1)
    response = client.post(f"/v1/parent-requests/{rid}/verification",
                           json={"code": mail.code_for(PARENT)})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "code_expired"
    assert "expired" in error["message"]


def test_five_wrong_codes_lock_the_request(client, mail):
    rid = submit(client).get_json()["request_id"]
    for _ in range(5):
        response = client.post(f"/v1/parent-requests/{rid}/verification", json={"code": "1"})
        assert response.status_code == 422
    locked = client.post(f"/v1/parent-requests/{rid}/verification",
                         json={"code": mail.code_for(PARENT)})
    assert locked.status_code == 409
    assert locked.get_json()["error"]["code"] == "request_locked"


def test_parallel_guesses_never_exceed_five(app, mail):
    rid = submit(app.test_client()).get_json()["request_id"]
    statuses: list[int] = []

    def guess() -> None:
        response = app.test_client().post(f"/v1/parent-requests/{rid}/verification",
                                          json={"code": "12345678"})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [409] * 7 + [422] * 5


def test_status_needs_the_token_and_leaks_nothing(client, mail):
    created = submit(client, child={"username": "CoolKid2012"}).get_json()
    rid = created["request_id"]
    for token in ("wrong-token", ""):
        response = client.get(f"/v1/parent-requests/{rid}", query_string={"status_token": token})
        assert response.status_code in (404, 422)
    missing = client.get("/v1/parent-requests/preq_nope",
                         query_string={"status_token": created["status_token"]})
    wrong = client.get(f"/v1/parent-requests/{rid}", query_string={"status_token": "x" * 32})
    assert missing.status_code == wrong.status_code == 404
    assert missing.get_json() == wrong.get_json()
    status = client.get(f"/v1/parent-requests/{rid}",
                        query_string={"status_token": created["status_token"]})
    body = status.get_json()
    assert set(body) == {"request_id", "status", "request_type", "due_at", "outcome",
                         "reason"}
    text = status.get_data(as_text=True).lower()
    assert "coolkid2012" not in text and "example.org" not in text and "child" not in text


def test_outbox_when_no_smtp(redis_url, redis_client, tmp_path, clock):
    app = create_app(make_config(redis_url, tmp_path), clock=clock)
    client = app.test_client()
    assert submit(client).status_code == 202
    assert client.get("/v1/admin/outbox", headers=auth("reviewer")).status_code == 403
    outbox = client.get("/v1/admin/outbox", headers=auth("admin")).get_json()["messages"]
    assert len(outbox) == 1 and outbox[0]["to"] == PARENT
    code = re.search(r"enter this code: (\d+)", outbox[0]["body"]).group(1)
    rid = outbox[0]["body"].split("Request reference: ")[1].split()[0]
    outbox_keys = list(redis_client.scan_iter("agegate:outbox:*"))
    assert outbox_keys and all(0 < redis_client.ttl(k) <= 86_400 for k in outbox_keys)
    verified = client.post(f"/v1/parent-requests/{rid}/verification", json={"code": code})
    assert verified.status_code == 200


def test_smtp_down_is_a_clear_503_and_nothing_is_kept(redis_url, redis_client, tmp_path):
    from tests.parents_helpers import free_port

    app = create_app(make_config(redis_url, tmp_path, smtp_url=f"smtp://127.0.0.1:{free_port()}"))
    response = submit(app.test_client())
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "mail_unavailable"
    assert list(redis_client.scan_iter("agegate:preq:*")) == []


def test_overdue_listing_and_gauge(client, mail, clock):
    rid = submit(client).get_json()["request_id"]
    client.post(f"/v1/parent-requests/{rid}/verification", json={"code": mail.code_for(PARENT)})
    listed = client.get("/v1/admin/parent-requests", query_string={"overdue": "true"},
                        headers=auth("admin")).get_json()["requests"]
    assert listed == []
    assert "agegate_parent_requests_overdue 0.0" in client.get("/metrics").get_data(as_text=True)
    clock.instant += timedelta(days=30, seconds=1)
    listed = client.get("/v1/admin/parent-requests", query_string={"overdue": "true"},
                        headers=auth("admin")).get_json()["requests"]
    assert [r["request_id"] for r in listed] == [rid]
    assert listed[0]["overdue"] is True
    assert "agegate_parent_requests_overdue 1.0" in client.get("/metrics").get_data(as_text=True)
    assert client.get("/v1/admin/parent-requests",
                      headers=auth("reviewer")).status_code == 403


def test_rate_limit_holds_across_two_gunicorn_workers(gunicorn_server):  # noqa: F811
    base, log = gunicorn_server
    port = int(base.rsplit(":", 1)[1])
    body = json.dumps({"parent_name": "Pat", "parent_email": PARENT,
                       "child": {"account_id": "kid-1"}, "request_type": "access",
                       "attestation": True}).encode()
    head = (f"POST /v1/parent-requests HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    # Hold one worker on a half-sent request, so the other serves the next three...
    with socket.create_connection(("127.0.0.1", port), timeout=10) as held:
        held.sendall(head[:20])
        time.sleep(0.5)
        statuses = [http("POST", f"{base}/v1/parent-requests", body,
                         {"Content-Type": "application/json"})[0] for _ in range(3)]
        assert statuses == [202, 202, 202]  # the limit is "3 per hour" in the fixture
        # ...then let the held worker finish its request: it must see the other's count.
        held.sendall(head[20:] + body)
        reply = b""
        while chunk := held.recv(65536):
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line.split()[1] == b"429"
    headers, _, payload = rest.partition(b"\r\n\r\n")
    assert re.search(rb"(?im)^retry-after: *[1-9]\d*\r?$", headers)
    assert json.loads(payload)["error"]["code"] == "rate_limited"
    pids = [line.split()[0] for line in log.read_text().splitlines()
            if re.fullmatch(r"<\d+> (202|429)", line.strip())]
    assert len(pids) == 4 and len(set(pids[:3])) == 1 and pids[3] != pids[0]


@pytest.mark.parametrize("trusted_proxies, limited_statuses", [
    (0, [202, 202, 429, 429]),  # forwarded addresses are ignored: one client
    (1, [202, 202, 202, 202]),  # one trusted proxy: two clients, two each
])
def test_client_address_respects_trusted_proxies(redis_url, redis_client, tmp_path, clock,
                                                 trusted_proxies, limited_statuses):
    app = create_app(make_config(redis_url, tmp_path, trusted_proxies=trusted_proxies,
                                 parent_request_rate_limit="2 per hour"), clock=clock)
    client = app.test_client()
    statuses = []
    for address in ("203.0.113.7", "198.51.100.9", "203.0.113.7", "198.51.100.9"):
        client.environ_base["HTTP_X_FORWARDED_FOR"] = address
        statuses.append(submit(client).status_code)
    assert sorted(statuses) == limited_statuses
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.7"
    assert submit(client).status_code == 429
    keys = list(redis_client.scan_iter("agegate:rl:*"))
    assert keys and not any("203.0.113" in k for k in keys)  # addresses kept only hashed


def test_an_ipv6_client_is_limited_by_its_64(redis_url, redis_client, tmp_path, clock, config):
    """One host picks any address of its /64: the budget is the /64's, not each address's."""
    app = create_app(config.with_overrides(trusted_proxies=1,
                                           parent_request_rate_limit="2 per hour"), clock=clock)
    client = app.test_client()
    statuses = []
    for n, address in enumerate(("2001:db8:1:2::1", "2001:db8:1:2::ffff", "2001:db8:1:2:a:b:c:d")):
        client.environ_base["HTTP_X_FORWARDED_FOR"] = address
        statuses.append(submit(client, parent_email=f"p{n}@example.org").status_code)
    assert statuses == [202, 202, 429]
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "2001:db8:1:3::1"  # another /64
    assert submit(client, parent_email="other@example.org").status_code == 202
    # An IPv4-mapped IPv6 address is its IPv4 address.
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "::ffff:203.0.113.7"
    assert submit(client, parent_email="a@example.org").status_code == 202
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.7"
    assert submit(client, parent_email="b@example.org").status_code == 202
    assert submit(client, parent_email="c@example.org").status_code == 429


def test_one_parent_email_is_limited_whatever_the_address(redis_url, redis_client, tmp_path,
                                                          clock, config):
    app = create_app(config.with_overrides(
        trusted_proxies=1, parent_request_email_rate_limit="2 per day"), clock=clock)
    client = app.test_client()
    statuses = []
    for n, email in enumerate(("Sam@Example.org", " sam@example.org", "SAM@EXAMPLE.ORG")):
        client.environ_base["HTTP_X_FORWARDED_FOR"] = f"198.51.100.{n + 1}"
        statuses.append(submit(client, parent_email=email).status_code)
    assert statuses == [202, 202, 429]
    limited = submit(client, parent_email="sam@example.org")
    assert limited.status_code == 429 and limited.json["error"]["code"] == "rate_limited"
    assert submit(client, parent_email="someone.else@example.org").status_code == 202
    stored = " ".join(redis_client.scan_iter("agegate:rl:*"))
    assert stored and "sam" not in stored.lower() and "example" not in stored
    # A body without an email is a 422, counted per address only.
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.50"
    assert client.post("/v1/parent-requests", json={"parent_name": "x"}).status_code == 422
