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


def test_fold_activity_counts_active_days_not_messages():
    act = F.new_activity()
    days = [date(2003, 12, 24), date(2004, 7, 3), date(2004, 7, 3), None, date(2004, 7, 5)]
    for d in days:  # Wed (winter break), Sat (summer) twice, undated, Mon (summer)
        act = F.fold_activity(act, d)
    assert act["nd"] == 3
    assert act["we"] == 1 and act["su"] == 2 and act["wi"] == 1
    # Three chat messages within two minutes are one active day, not three.
    burst = F.new_activity()
    for _ in range(3):
        burst = F.fold_activity(burst, date(2026, 11, 28))
    assert burst["nd"] == 1 and burst["we"] == 1


def test_activity_vector_shrinks_towards_prior_with_few_days():
    one_weekend = F.fold_activity(F.new_activity(), date(2004, 7, 3))
    many = F.new_activity()
    for k in range(50):  # 50 Saturdays
        many = F.fold_activity(many, date(2004, 7, 3).fromordinal(date(2004, 7, 3).toordinal()
                                                                   + 7 * k))
    share_one = F.activity_vector(one_weekend)[0]
    share_many = F.activity_vector(many)[0]
    assert 2 / 7 < share_one < share_many < 1.0
    assert F.activity_vector(F.new_activity())[0] == pytest.approx(2 / 7)


def test_fold_functions_do_not_mutate_their_input():
    act = F.new_activity()
    before = copy.deepcopy(act)
    F.fold_activity(act, date(2004, 1, 1))
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


def test_account_vector_order_mean_and_words():
    act = F.fold_activity(F.new_activity(), date(2004, 7, 3))
    v = F.account_vector(3.0, 2, act, words=99.0)
    assert len(v) == len(F.ACCOUNT_FEATURES)
    # The mean decision (1.5) weighed by the words per message: 49.5 / (49.5 + 5).
    assert v[F.ACCOUNT_FEATURES.index("text_mean_by_length")] == pytest.approx(
        1.5 * 49.5 / 54.5)
    assert v[F.ACCOUNT_FEATURES.index("log_words")] == pytest.approx(4.6052, abs=1e-3)
    assert F.account_vector(3.0, 0, act, words=99.0) == [0.0] * len(F.ACCOUNT_FEATURES)


def test_the_message_models_mean_counts_less_on_short_messages():
    # Issue 19: the message model learned from blog posts and Reddit comments; on chat lines of
    # a few words its mean is weighed down, by the words per message, not by the message count.
    act = F.new_activity()
    i = F.ACCOUNT_FEATURES.index("text_mean_by_length")
    chat = F.account_vector(20.0, 10, act, words=40.0)[i]  # 10 lines of 4 words, mean 2.0
    blog = F.account_vector(4.0, 2, act, words=400.0)[i]  # 2 posts of 200 words, mean 2.0
    assert chat == pytest.approx(2.0 * 4 / (4 + F.MEAN_HALF_WORDS_PER_MESSAGE))
    assert chat < 1.0 < 1.9 < blog < 2.0
    assert F.account_vector(20.0, 10, act, words=0.0)[i] == 0.0  # empty lines: no weight
    # The service names n-grams by d(log-odds)/d(mean): the same factors.
    factors = F.mean_factors(40.0, 10)
    assert factors["text_mean_by_length"] == pytest.approx(chat / 2.0)
    assert set(factors) == set(F.MEAN_FEATURES) <= set(F.ACCOUNT_FEATURES)


def test_posting_days_do_not_move_the_account_features():
    # Activity shares won only on blogs (issue 19): the state still counts active days, but
    # the second stage no longer sees them, so the days a member posts on change nothing.
    weekend_summer = F.new_activity()
    for day in (date(2004, 7, 3), date(2004, 7, 4), date(2004, 8, 7)):
        weekend_summer = F.fold_activity(weekend_summer, day)
    weekday = F.fold_activity(F.new_activity(), date(2004, 3, 3))
    assert weekend_summer != weekday
    assert F.account_vector(3.0, 3, weekend_summer, 1.0, 900.0, -4.0, 30.0) == \
        F.account_vector(3.0, 3, weekday, 1.0, 900.0, -4.0, 30.0)
    assert not set(F.ACTIVITY_FEATURES) & set(F.ACCOUNT_FEATURES)


def test_pooled_decision_counts_by_amount_of_text_not_by_message_count():
    act = F.new_activity()
    i = F.ACCOUNT_FEATURES.index("account_text_decision")
    chat_line = F.account_vector(2.0, 2, act, account_decision=40.0, text_mass=500.0, words=9)
    whole_account = F.account_vector(2.0, 2, act, account_decision=40.0, text_mass=50_000.0,
                                     words=9)
    assert chat_line[i] == pytest.approx(40.0 * 500 / (500 + F.ACCOUNT_TEXT_HALF_MASS))
    assert chat_line[i] < 4.0 < 36.0 < whole_account[i] < 40.0
    assert chat_line[i + 1] == pytest.approx(chat_line[i] * 2.3026, abs=1e-3)


def test_lexicon_age_is_shrunk_for_few_words():
    act = F.new_activity()
    i = F.ACCOUNT_FEATURES.index("lexicon_age")
    # The same average weight per word (-5): few words are pulled towards 0 (the intercept).
    few = F.account_vector(0.0, 1, act, lexicon_sum=-5.0 * 4, words=4)[i]
    many = F.account_vector(0.0, 9, act, lexicon_sum=-5.0 * 400, words=400)[i]
    assert few == pytest.approx(-20 / (4 + F.LEXICON_PRIOR_WORDS))
    assert -5.0 < many < few < 0.0


def test_lexicon_tokens_are_lower_cased_words_emoticons_and_punctuation():
    assert F.lexicon_tokens("OMG my mom's t-shirt :) lol!!") == [
        "omg", "my", "mom's", "t-shirt", ":)", "lol", "!", "!"]


def test_fold_activity_counts_the_same_days_in_any_order():
    # Two workers may take one account's messages out of order: the counters must not care.
    import random

    start = date(2026, 6, 20)
    days = [start.fromordinal(start.toordinal() + k) for k in (0, 0, 1, 3, 3, 7, 12, 30, 31)]
    in_order = F.new_activity()
    for d in days:
        in_order = F.fold_activity(in_order, d)
    assert in_order["nd"] == 7
    rng = random.Random(5)
    for _ in range(20):
        shuffled = days[:]
        rng.shuffle(shuffled)
        act = F.new_activity()
        for d in shuffled:
            act = F.fold_activity(act, d)
        assert act == in_order, shuffled


def test_fold_activity_keeps_a_state_from_before_the_window():
    # A state stored before the window existed: every day up to its latest counts as seen.
    old = {"nd": 2, "we": 1, "su": 0, "wi": 0, "dl": date(2026, 3, 10).toordinal()}
    assert F.fold_activity(old, date(2026, 3, 9))["nd"] == 2
    assert F.fold_activity(old, date(2026, 3, 11))["nd"] == 3
