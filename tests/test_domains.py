"""The evaluation across domains: known figures on small fixtures, the bootstrap's behaviour,
and chat scored exactly as the service scores it."""

from __future__ import annotations

import numpy as np
import pytest

from tests.model_fixtures import MODEL_DIR
from training import domains as D


def test_roc_auc_is_the_share_of_correctly_ordered_pairs_with_ties_half():
    # Pairs (minor, adult): (0.9, 0.5) (0.9, 0.1) (0.4, 0.5) (0.4, 0.1) -> 3 of 4 right.
    assert D.roc_auc(np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.5, 0.1])) == 0.75
    # One tie of four pairs counts half: (0.5, 0.5) 0.5, (0.5, 0.1) 1, (0.7, 0.5) 1, (0.7, 0.1) 1.
    assert D.roc_auc(np.array([1, 1, 0, 0]), np.array([0.5, 0.7, 0.5, 0.1])) == 0.875
    assert D.roc_auc(np.array([1, 1]), np.array([0.5, 0.7])) is None


def test_bootstrap_resamples_whole_people_and_is_repeatable():
    # Three people with two records each: every resample holds whole people, so an even
    # number of records, and a statistic that counts people's records sees only multiples of 2.
    groups = ["a", "a", "b", "b", "c", "c"]
    seen: set[int] = set()

    def rows(r: np.ndarray) -> float:
        seen.add(len(r))
        return float(len(r))

    lo, hi = D.bootstrap(rows, groups, n_boot=200)
    assert seen == {6} and (lo, hi) == (6.0, 6.0)
    y = np.array([1, 1, 0, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.2, 0.6, 0.7, 0.3])
    first = D.auc_row(y, s, groups, n_boot=300)
    assert first == D.auc_row(y, s, groups, n_boot=300)  # seeded: the same interval again
    assert first["people"] == 3 and first["n"] == 6
    lo, hi = first["interval"]
    assert lo <= first["value"] <= hi <= 1.0


def test_bootstrap_interval_is_a_point_for_perfect_ranking_and_widens_with_noise():
    y = np.array([1] * 10 + [0] * 10)
    perfect = D.auc_row(y, np.arange(20, 0, -1, dtype=float), list(range(20)), n_boot=300)
    assert perfect["value"] == 1.0 and perfect["interval"] == [1.0, 1.0]
    rng = np.random.default_rng(0)
    noisy = D.auc_row(y, rng.normal(size=20) + y, list(range(20)), n_boot=300)
    lo, hi = noisy["interval"]
    assert lo < noisy["value"] < hi and hi - lo > 0.1


def test_share_and_precision_recall_at_prevalence_known_figures():
    flags = np.array([True, False, False, False])
    row = D.share_row(flags, ["a", "b", "c", "d"], n_boot=200)
    assert row["value"] == 0.25 and row["flagged"] == 1
    assert 0.0 <= row["interval"][0] <= 0.25 <= row["interval"][1] <= 1.0
    # Minors: 3 of 4 flagged (recall 0.75); adults: 1 of 10 flagged. At 2% prevalence:
    # precision = 0.02 * 0.75 / (0.02 * 0.75 + 0.98 * 0.1) = 0.015 / 0.113.
    y = np.array([1] * 4 + [0] * 10)
    flagged = np.array([1, 1, 1, 0] + [1] + [0] * 9, dtype=bool)
    prec, rec = D.at_prevalence(y, flagged, 0.02)
    assert rec == 0.75 and prec == pytest.approx(0.015 / 0.113)


def test_rows_are_checked_against_their_targets_and_formatted():
    rows = {"nps_all_rooms": {"value": 0.9, "interval": [0.8, 0.95]},
            "nus_21_plus_flagged": {"value": 0.05, "interval": [0.02, 0.08]}}
    checked = {c["key"]: c for c in D.check(rows)}
    assert checked["nps_all_rooms"]["met"] is True
    assert checked["nus_21_plus_flagged"]["met"] is False  # a "<=" row
    assert checked["blog_roc_auc"]["met"] is None
    text = D.format_rows(list(checked.values()))
    assert "met           NPS Chat dev, 5+ lines: teens' room vs all other rooms, ROC-AUC " \
           ">= 0.85: 0.9 (90% interval 0.8 - 0.95)" in text
    assert "NOT met       NUS SMS: senders aged 21+ flagged at defaults (share) <= 0.03" in text
    assert "not measured  blog authors aged 18-24: share flagged <= 0.03: absent" in text
    assert len(text.splitlines()) == len(D.DOMAIN_TARGETS)


@pytest.fixture(scope="module")
def model():
    from agegate.model import load_model

    return load_model(MODEL_DIR)


def test_chat_rows_score_each_line_as_one_message_signal(model):
    teen = ["omg my mom took my phone", "i have so much homework lol", "school tomorrow ugh",
            "my bff is sooo annoying", "cant wait for summer break"]
    adult = ["meeting at the office ran late", "my wife and i bought a house",
             "the mortgage rate went up", "our kids start school monday",
             "work has been busy this quarter"]
    nps = [{"user": "u1", "room": "teens", "label_minor": True, "posts": teen},
           {"user": "u2", "room": "20s", "label_minor": False, "posts": adult},
           {"user": "u3", "room": "teens", "label_minor": True, "posts": teen[:4]}]  # < 5 lines
    rows = D.nps_rows(model, nps, n_boot=50)
    assert rows["nps_all_rooms"]["n"] == 2  # the 4-line record is left out
    expected = model.score(D.service_state(model, teen)).score > model.score(
        D.service_state(model, adult)).score
    assert rows["nps_all_rooms"]["value"] == (1.0 if expected else 0.0)
    # The state is the one the service builds: one message signal per line, in order.
    state = model.new_state()
    for t in teen:
        state = model.update(state, [{"type": "message", "text": t, "at": D.CHAT_AT}])
    assert D.service_state(model, teen) == state
    nus = [{"author_id": "s1", "age_range": "16-20", "messages": teen},
           {"author_id": "s2", "age_range": "21-25", "messages": adult},
           {"author_id": "s3", "age_range": "31-35", "messages": adult},
           {"author_id": "s4", "age_range": "No response", "messages": teen}]
    rows = D.nus_rows(model, nus, n_boot=50)
    assert rows["nus_16_20_vs_26_plus"]["n"] == 2
    assert rows["nus_21_plus_flagged"]["n"] == 2
    assert rows["nus_flagged_by_age"].keys() == {"16-20", "21-25", "31-35"}


def test_a_model_without_the_lexicon_holds_the_same_state_without_the_lexicon_sum(model):
    # The card's --no-lexicon figures score the lexicon model's states without the lexicon's
    # sum: exactly the state a model of the same text models without the lexicon builds.
    from agegate.model import AgeModel
    from training.recalibrate import read_artifact
    from training.train import without_lexicon

    _, artifact, _ = read_artifact(MODEL_DIR)
    bare = AgeModel({**artifact, "lexicon_terms": [], "lexicon_weights": np.zeros(0),
                     "text_version": model.text_version})
    lines = ["omg my mom took my phone", "lol", "<empty>", "see u at school tmrw :)"]
    with_lex, without = D.service_state(model, lines), D.service_state(bare, lines)
    assert with_lex["lx"] != 0.0 and without["lx"] == 0.0
    assert without_lexicon(with_lex) == without


def test_chat_reference_scores_each_sender_out_of_fold_and_transfers_to_nps():
    from training import chat_reference as R

    rng = np.random.default_rng(3)
    filler = ["see you at the station", "ok done", "call me later", "where are you now"]

    def texts(marker: str) -> list[str]:
        return [f"{rng.choice(filler)} {marker}" for _ in range(6)]

    nus = ([{"age_range": "16-20", "messages": texts("zqx")} for _ in range(10)]
           + [{"age_range": "31-35", "messages": texts("vvk")} for _ in range(10)]
           + [{"age_range": "21-25", "messages": texts("zqx")}])  # not ranked: left out
    nps = ([{"room": "teens", "label_minor": True, "posts": texts("zqx")} for _ in range(4)]
           + [{"room": "20s", "label_minor": False, "posts": texts("vvk")} for _ in range(4)]
           + [{"room": "40s", "label_minor": False, "posts": ["hi", "zqx"]}])  # < 5 lines
    (row,) = R.reference(nps, nus, c_values=(10.0,))
    # A marker only one side writes ranks perfectly, in fold and across media.
    assert row == {"C": 10.0, "nus_16_20_vs_26_plus_out_of_fold": 1.0,
                   "nps_all_rooms_from_nus": 1.0, "nps_teens_vs_20s_from_nus": 1.0}
    # Out of fold: a sender's own words are never in its model. Senders who share nothing
    # (random six-letter words) are learned by heart in fold, and ranked near a coin out of it.
    rng = np.random.default_rng(1)
    solo = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 6)) for _ in range(20)]
    y = np.asarray([i < 10 for i in range(20)])
    assert D.roc_auc(y, R._model(10.0).fit(solo, y).decision_function(solo)) >= 0.95
    assert D.roc_auc(y, R.out_of_fold(solo, y, 10.0)) <= 0.7
