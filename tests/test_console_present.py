"""The console's explanations and deadlines read the way a reviewer needs them to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agegate.console import present

NOW = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)


def test_signals_become_sentences_and_relative_bars():
    rows = present.explain([
        {"name": "word:mom", "weight": 0.4},
        {"name": "payment:prepaid_card", "weight": 0.1},
        {"name": "long_sessions", "weight": -0.2},
    ])
    assert rows[0]["sentence"] == "The word “mom” in messages pushed the score up (+0.40)."
    assert rows[0]["percent"] == 100 and rows[1]["percent"] == 25
    assert rows[1]["sentence"].startswith("Paying with prepaid card pushed")
    assert rows[2]["direction"] == "down" and "pulled the score down (-0.20)" in rows[2]["sentence"]
    assert present.explain(None) == [] and present.explain([{"weight": 1}]) == []


def test_the_trained_models_names_read_as_sentences():
    rows = present.explain([
        {"name": "text:homework", "weight": 0.6},
        {"name": "text:for school", "weight": 0.3},
        {"name": "activity:weekend_share", "weight": 0.2},
        {"name": "reports:suspected_minor", "weight": 1.0},
        {"name": "age_gate:redeclaration", "weight": 1.0},
    ])
    assert [r["sentence"] for r in rows] == [
        "The word “homework” in messages pushed the score up (+0.60).",
        "The words “for school” in messages pushed the score up (+0.30).",
        "The share of messages sent at weekends pushed the score up (+0.20).",
        "User reports of a suspected minor pushed the score up (+1.00).",
        "Retrying the age gate with another birth date pushed the score up (+1.00).",
    ]


def test_deadlines_mark_overdue_and_due_within_a_week():
    assert present.deadline(NOW - timedelta(days=2), NOW)["state"] == "overdue"
    assert present.deadline(NOW - timedelta(days=2), NOW)["text"] == "Overdue by 2 d 0 h"
    assert present.deadline("2026-11-27T13:30:00Z", NOW) == {
        "state": "soon", "text": "Due in 3 d 0 h"}
    assert present.deadline(NOW + timedelta(days=20), NOW)["state"] == "ok"
    assert present.deadline(None, NOW) is None


def test_durations_and_times_are_short_and_utc():
    assert present.duration(timedelta(minutes=14, seconds=5)) == "14 min 5 s"
    assert present.duration(timedelta(hours=3, minutes=2)) == "3 h 2 min"
    assert present.duration(timedelta(seconds=-5)) == "0 s"
    assert present.when("2026-11-24T13:30:00Z") == "2026-11-24 13:30 UTC"
    assert present.when(None) == "—"


def test_each_kind_offers_only_its_decisions():
    assert [d for d, _ in present.DECISIONS["parent_request"]] == ["fulfill", "reject"]
    assert {d for d, _ in present.DECISIONS["report"]} == {
        "confirm_minor", "not_minor", "request_verification"}
