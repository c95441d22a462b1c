from __future__ import annotations

import copy
from datetime import UTC, date, datetime

import pytest

from agegate import features as F


def test_to_date_accepts_utc_datetime_and_iso_string():
    assert F.to_date(datetime(2004, 7, 3, 23, 59, tzinfo=UTC)) == date(2004, 7, 3)
    assert F.to_date("2003-12-24") == date(2003, 12, 24)
    assert F.to_date(None) is None
    assert F.to_date("not a date") is None


def test_fold_activity_counts_weekend_summer_winter_and_span():
    act = F.new_activity()
    days = [date(2004, 7, 3), date(2004, 7, 5), date(2003, 12, 24), None]  # Sat, Mon, Wed
    for d in days:
        act = F.fold_activity(act, d, 100)
    assert act["nl"] == 4 and act["nd"] == 3
    assert act["we"] == 1 and act["su"] == 2 and act["wi"] == 1
    assert act["d1"] - act["d0"] == (date(2004, 7, 5) - date(2003, 12, 24)).days


def test_activity_vector_shrinks_towards_prior_with_few_dates():
    one_weekend = F.fold_activity(F.new_activity(), date(2004, 7, 3), 50)
    many = F.new_activity()
    for _ in range(50):
        many = F.fold_activity(many, date(2004, 7, 3), 50)
    share_one = F.activity_vector(one_weekend)[0]
    share_many = F.activity_vector(many)[0]
    assert 2 / 7 < share_one < share_many < 1.0
    assert F.activity_vector(F.new_activity())[3] == 0.0  # no rate from < 2 dates


def test_fold_functions_do_not_mutate_their_input():
    act = F.new_activity()
    before = copy.deepcopy(act)
    F.fold_activity(act, date(2004, 1, 1), 10)
    assert act == before
    plat = F.new_platform()
    before = copy.deepcopy(plat)
    F.fold_platform(plat, {"type": "payment", "method": "gift_card"})
    assert plat == before


def test_platform_counters_keep_only_known_values():
    plat = F.new_platform()
    for sig in (
        {"type": "report", "reason": "my phone number is 555 1234"},
        {"type": "report", "reason": "suspected_minor"},
        {"type": "payment", "method": "bitcoin"},
        {"type": "session", "duration_s": 30},
        {"type": "dob_change"},
        {"type": "age_redeclaration"},
    ):
        plat = F.fold_platform(plat, sig)
    assert plat["reports"] == {"other": 1, "suspected_minor": 1}
    assert plat["payment"] == {"none": 1}
    assert plat["sessions"] == 1 and plat["session_s"] == 30
    assert plat["dob_change"] == 1 and plat["redeclaration"] == 1
    assert "555" not in repr(plat)


def test_normalize_text_replaces_links_and_truncates():
    t = F.normalize_text("see   https://example.com/x?y=1 and www.foo.org now")
    assert t == "see urlLink and urlLink now"
    assert len(F.normalize_text("a" * 20000)) == F.MAX_TEXT_CHARS


@pytest.mark.parametrize("text", ["omg my mom is so annoying", "Grading papers tonight."])
def test_hashed_index_matches_the_vectorizer(text):
    union = F.build_text_pipeline().named_steps["hash"]
    cols = set(union.transform([text]).tocsr().indices.tolist())
    expected = set()
    for kind, hasher in union.transformer_list:
        expected |= {F.hashed_index(g, kind) for g in hasher.build_analyzer()(text)}
    assert cols == expected
    assert min(cols) < F.N_WORD_FEATURES <= max(cols) < F.N_TEXT_FEATURES


def test_account_vector_order_and_mean():
    act = F.fold_activity(F.new_activity(), date(2004, 7, 3), 100)
    v = F.account_vector(3.0, 2, act)
    assert len(v) == len(F.ACCOUNT_FEATURES)
    assert v[0] == pytest.approx(1.5)
    assert v[2] == pytest.approx(0.6931, abs=1e-3)


def test_pooled_decision_counts_by_amount_of_text_not_by_message_count():
    act = F.new_activity()
    i = F.ACCOUNT_FEATURES.index("account_text_decision")
    chat_line = F.account_vector(2.0, 2, act, account_decision=40.0, text_mass=500.0)
    whole_account = F.account_vector(2.0, 2, act, account_decision=40.0, text_mass=50_000.0)
    assert chat_line[i] == pytest.approx(40.0 * 500 / (500 + F.ACCOUNT_TEXT_HALF_MASS))
    assert chat_line[i] < 4.0 < 36.0 < whole_account[i] < 40.0
    assert chat_line[i + 1] == pytest.approx(chat_line[i] * 0.6931, abs=1e-3)
    assert F.account_vector(0.0, 0, act, account_decision=40.0, text_mass=500.0)[i] == 0.0
