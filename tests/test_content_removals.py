"""California minor content removal (Cal. Bus. & Prof. Code §22581) through the HTTP API."""

from __future__ import annotations

import pytest

from agegate import create_app
from tests.conftest import auth, make_config
from tests.helpers import keys_without_ttl

# Storage across accounts and shards: also run on a real 3-primary Redis Cluster.
pytestmark = pytest.mark.cluster


def item(content_id, **overrides):
    """One item posted publicly by acc-1 itself, with no §22581(b) exception."""
    return {"content_id": content_id, "author_account_id": "acc-1", "visibility": "public",
            "posted_by": "self", "anonymized": False, "compensated": False,
            "legal_hold": False, **overrides}


def remove(client, items, region="US-CA", account_id="acc-1"):
    """POST a removal request as the platform."""
    return client.post("/v1/content-removals", headers=auth("signals"),
                       json={"account_id": account_id, "region": region, "items": items})


def removal_events(redis_client):
    """The content.removal_requested events on the stream."""
    return [fields for _, fields in redis_client.xrange("agegate:events")
            if fields["type"] == "content.removal_requested"]


def test_own_posts_are_removed_and_each_emits_one_event(client, redis_client):
    response = remove(client, [item("post-1"), item("post-2")])
    assert response.status_code == 202
    body = response.get_json()
    assert body["removed"] == ["post-1", "post-2"] and body["refused"] == []
    events = removal_events(redis_client)
    assert [e["content_id"] for e in events] == ["post-1", "post-2"]
    assert all(e["account_id"] == "acc-1" and e["request_id"] == body["request_id"]
               for e in events)
    audit = client.get("/v1/audit", query_string={"account_id": "acc-1"},
                       headers=auth("admin")).get_json()["events"]
    assert audit[0]["action"] == "content_removal.requested"
    assert audit[0]["details"]["request_id"] == body["request_id"]
    assert keys_without_ttl(redis_client) == []


@pytest.mark.parametrize("overrides, reason", [
    ({"author_account_id": "someone-else"}, "not_author"),        # §22581(a)(1)
    ({"legal_hold": True}, "legal_hold"),                         # §22581(b)(1)
    ({"posted_by": "third_party"}, "third_party_repost"),         # §22581(b)(2)
    ({"anonymized": True}, "anonymized"),                         # §22581(b)(3)
    ({"compensated": True}, "compensated"),                       # §22581(b)(5)
])
def test_each_exception_is_refused_with_its_reason(client, redis_client, overrides, reason):
    response = remove(client, [item("post-1"), item("post-2", **overrides)])
    assert response.status_code == 202
    body = response.get_json()
    assert body["removed"] == ["post-1"]
    assert body["refused"] == [{"content_id": "post-2", "reason": reason}]
    assert [e["content_id"] for e in removal_events(redis_client)] == ["post-1"]


def test_repeated_items_are_removed_once(client, redis_client):
    first = remove(client, [item("post-1")]).get_json()
    again = remove(client, [item("post-1"), item("post-1"), item("post-2")]).get_json()
    assert first["removed"] == ["post-1"]
    assert again["removed"] == ["post-1", "post-2"]
    assert first["request_id"] != again["request_id"]
    assert [e["content_id"] for e in removal_events(redis_client)] == ["post-1", "post-2"]


def test_outside_california_is_not_eligible(client, redis_client):
    response = remove(client, [item("post-1")], region="US-NY")
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "not_eligible"
    assert removal_events(redis_client) == []
    assert remove(client, [item("post-1")], region="us-ca").status_code == 202


def test_operator_may_extend_to_all_regions(redis_url, redis_client, tmp_path, clock):
    app = create_app(make_config(redis_url, tmp_path, content_removal_all_regions=True),
                     clock=clock)
    response = remove(app.test_client(), [item("post-1")], region="DE")
    assert response.status_code == 202
    assert response.get_json()["removed"] == ["post-1"]


@pytest.mark.parametrize("body, field", [
    ({"account_id": "acc-1", "region": "US-CA", "items": []}, "items"),
    ({"account_id": "acc-1", "region": "California", "items": [item("p")]}, "region"),
    ({"account_id": "acc-1", "region": "US-CA", "items": [{**item("p"), "likes": 3}]},
     "items.0.likes"),
    ({"account_id": "acc-1", "region": "US-CA", "items": [item("p", posted_by="robot")]},
     "items.0.posted_by"),
    ({"region": "US-CA", "items": [item("p")]}, "account_id"),
])
def test_bad_requests_are_422(client, body, field):
    response = client.post("/v1/content-removals", headers=auth("signals"), json=body)
    assert response.status_code == 422
    assert field in response.get_json()["error"]["fields"]


def test_only_the_platform_may_ask(client):
    response = client.post("/v1/content-removals", headers=auth("reviewer"),
                           json={"account_id": "acc-1", "region": "US-CA",
                                 "items": [item("p")]})
    assert response.status_code == 403
    assert client.post("/v1/content-removals", json={}).status_code == 401


def test_notice_covers_the_three_statutory_points(client):
    response = client.get("/v1/content-removals/notice")
    assert response.status_code == 200
    notice = response.get_json()
    assert "§22581" in notice["law"]
    assert "remove" in notice["right"] and "under 18" in notice["right"]      # (a)(2)
    assert "Remove my post" in notice["how_to_request"]                        # (a)(3)
    assert "does not ensure complete or comprehensive removal" in notice["limitations"]  # (a)(4)
    assert notice["text"].startswith(notice["right"])


def test_terminated_account_still_gets_removal_and_termination_forgets_it(client, redis_client):
    assert remove(client, [item("post-1")]).status_code == 202
    removals = [k for k in redis_client.scan_iter("agegate:acct:*") if k.endswith(":removals")]
    assert len(removals) == 1
    terminated = client.post("/v1/accounts/acc-1/termination", headers=auth("admin"),
                             json={"reason": "confirmed minor"})
    assert terminated.status_code == 202
    assert not redis_client.exists(removals[0])  # termination deletes what we hold
    response = remove(client, [item("post-2")])
    assert response.status_code == 202
    assert response.get_json()["removed"] == ["post-2"]
    assert [e["content_id"] for e in removal_events(redis_client)] == ["post-1", "post-2"]
