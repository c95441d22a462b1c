from __future__ import annotations

import copy
import json
import shutil
import time
from datetime import UTC, datetime

import pytest

from agegate.model import ModelLoadError, Score, load_model
from tests.model_fixtures import MODEL_DIR, as_signal, first_authors, minor_test_posts


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL_DIR)


def _posts(n: int) -> list[dict]:
    posts = [p for a in first_authors(400) for p in a["posts"]]
    return [posts[i % len(posts)] for i in range(n)]


# ------------------------------------------------------------------------- loading / tamper


def test_committed_artifact_loads_quickly_and_matches_card():
    t = time.perf_counter()
    m = load_model(MODEL_DIR)
    elapsed = time.perf_counter() - t
    card = json.loads((MODEL_DIR / "card.json").read_text())
    assert m.sha256 == card["sha256"] and m.version == card["version"]
    assert m.prevalence_train == pytest.approx(card["prevalence_train"], abs=1e-4)
    assert m.uses_lexicon == (card["lexicon"] is not None)
    assert m.review_threshold == 0.5 and m.prevalence == 0.02  # the config defaults
    assert m.band_thresholds["medium"] <= m.band_thresholds["high"]
    assert (MODEL_DIR / "model.skops").stat().st_size <= 50 * 1024 * 1024
    assert elapsed < 4.0  # budget is 2 s; slack for a loaded CI machine


@pytest.fixture
def model_copy(tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(MODEL_DIR, dst)
    return dst


def test_one_changed_byte_is_refused(model_copy):
    art = model_copy / "model.skops"
    data = bytearray(art.read_bytes())
    data[len(data) // 2] ^= 0x01
    art.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="sha256"):
        load_model(model_copy)


def test_other_sklearn_version_in_card_is_refused(model_copy):
    card_path = model_copy / "card.json"
    card = json.loads(card_path.read_text())
    card["sklearn_version"] = "1.0.0"
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="scikit-learn"):
        load_model(model_copy)


@pytest.mark.parametrize("name", ["card.json", "model.skops"])
def test_missing_file_is_refused(model_copy, name):
    (model_copy / name).unlink()
    with pytest.raises(ModelLoadError):
        load_model(model_copy)


def test_artifact_with_a_non_allowlisted_type_is_refused(model_copy, monkeypatch):
    import agegate.model as M

    monkeypatch.setattr(M, "TRUSTED_TYPES", ("builtins.dict",))
    with pytest.raises(ModelLoadError, match="allowlist"):
        load_model(model_copy)


# ------------------------------------------------------------------------- state


_STATE_KEYS = {
    "v", "m", "n", "sd", "sa", "sl", "lx", "lw", "top", "act", "plat",
    "nd", "we", "su", "wi", "dl", "rb",
    "sessions", "session_s", "payment", "reports", "dob_change", "redeclaration",
    "card", "prepaid_card", "gift_card", "wallet", "none", "suspected_minor", "other",
}


def _strings(obj, out):
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.add(k)
            _strings(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _strings(v, out)
    elif isinstance(obj, str):
        out.add(obj)
    return out


def test_state_holds_no_text_only_known_keys_and_numbers(model):
    posts = _posts(50)
    state = model.update(None, [as_signal(p) for p in posts])
    strings = _strings(state, set())
    assert strings <= _STATE_KEYS | {model.text_version}
    blob = json.dumps(state)
    words = {w for p in posts for w in p["text"].split() if len(w) >= 6}
    fixed = " ".join(_STATE_KEYS | {model.text_version})
    assert not [w for w in words if w in blob and w not in fixed]


def test_state_stays_under_1kb_after_5000_messages(model):
    posts = _posts(5000)
    state = None
    for start in range(0, 5000, 500):  # the service sends at most 500 signals per call
        state = model.update(state, [as_signal(p) for p in posts[start : start + 500]])
    state = model.update(state, [{"type": "payment", "method": m, "at": datetime.now(UTC)}
                                 for m in ("card", "prepaid_card", "gift_card", "wallet", "none")])
    state = model.update(state, [{"type": "report", "reason": f"r{i}", "at": datetime.now(UTC)}
                                 for i in range(300)])
    assert state["n"] == 5000
    # The scale engineer fits all of an account's Redis memory in 2,048 bytes.
    assert len(json.dumps(state)) <= 1024


def test_update_is_pure(model):
    state = model.update(None, [as_signal(p) for p in _posts(3)])
    before = copy.deepcopy(state)
    new = model.update(state, [as_signal(p) for p in _posts(7)] + [{"type": "dob_change"}])
    assert state == before
    assert new is not state and new["n"] == 10
    assert model.score(state) == model.score(before)


def test_batch_and_one_by_one_updates_agree(model):
    sigs = [as_signal(p) for p in _posts(6)]
    batch = model.update(None, sigs)
    one = None
    for s in sigs:
        one = model.update(one, [s])
    assert batch["n"] == one["n"] == 6
    assert batch["sd"] == pytest.approx(one["sd"], abs=1e-4)
    assert model.score(batch).score == pytest.approx(model.score(one).score, abs=1e-4)


def test_state_from_another_model_version_resets_text_part(model):
    state = model.update(None, [as_signal(p) for p in _posts(5)] + [{"type": "dob_change"}])
    state["m"] = "some-older-model"
    new = model.update(state, [])
    assert new["n"] == 0 and new["lw"] == 0 and new["top"] == []
    assert new["plat"]["dob_change"] == 1
    assert model.score(state) == model.score(new)


def test_state_of_the_previous_layout_keeps_its_platform_counters(model):
    old = {"v": 1, "m": "age-20261124190533", "n": 3, "sd": 9.0, "sa": 1.0, "sl": 2.0,
           "top": [[123, 1.0]], "act": {"nd": 1, "we": 0, "su": 0, "wi": 0, "d0": 1, "d1": 1,
                                        "nl": 3, "ll": 9.0},
           "plat": {"sessions": 2, "session_s": 60, "payment": {"card": 1}, "reports": {},
                    "dob_change": 1, "redeclaration": 0}}
    new = model.update(old, [])
    assert new["v"] == model.new_state()["v"] and new["n"] == 0 and new["sd"] == 0.0
    assert new["plat"]["payment"] == {"card": 1} and new["plat"]["sessions"] == 2


# ------------------------------------------------------------------------- scoring


def test_new_state_is_json_and_scores(model):
    state = model.new_state()
    assert json.loads(json.dumps(state)) == state
    s = model.score(state)
    assert isinstance(s, Score) and 0 < s.score < 1 and s.band in {"low", "medium", "high"}


def test_single_message_scores_sensibly(model):
    s = model.score(model.update(None, [as_signal(_posts(1)[0])]))
    assert 0.0 < s.score < 1.0
    assert s.flagged == (s.score >= model.review_threshold)
    assert len(s.top_signals) <= 5
    weights = [t["weight"] for t in s.top_signals]
    assert weights == sorted(weights, reverse=True) and all(w > 0 for w in weights)


def test_score_rises_as_more_minor_typical_messages_arrive(model):
    model = model.with_calibration(0.5)  # a platform where half the accounts are minors
    posts = minor_test_posts()
    assert len(posts) >= 200
    scores = {1: [], 4: [], 12: []}
    for k in range(10):  # 10 accounts, each fed real under-18 posts (test-split authors)
        account = posts[k * 12 : (k + 1) * 12]
        for n in scores:
            state = model.update(None, [as_signal(p) for p in account[:n]])
            scores[n].append(model.score(state).score)
    mean = {n: sum(v) / len(v) for n, v in scores.items()}
    assert mean[1] < mean[4] < mean[12]
    assert mean[12] > 0.5


def test_rules_move_the_score_and_explain_themselves(model):
    base = model.update(None, [as_signal(_posts(1)[0])])
    at = datetime(2024, 1, 1, tzinfo=UTC)
    reported = model.update(base, [{"type": "report", "reason": "suspected_minor", "at": at},
                                   {"type": "payment", "method": "gift_card", "at": at}])
    carded = model.update(base, [{"type": "payment", "method": "card", "at": at}])
    s0, s1, s2 = model.score(base), model.score(reported), model.score(carded)
    assert s1.score > s0.score > s2.score
    names = [t["name"] for t in s1.top_signals]
    assert "reports:suspected_minor" in names
    assert all(not n.startswith("payment:card") for n in (t["name"] for t in s2.top_signals))


def test_top_signal_names_come_from_the_model(model):
    posts = minor_test_posts()[:12]
    s = model.score(model.update(None, [as_signal(p) for p in posts]))
    assert s.top_signals
    assert {t["name"] for t in s.top_signals} <= model.reason_names()
    assert any(t["name"].startswith("text:") for t in s.top_signals)


def test_fast_scoring_path_equals_the_sklearn_pipeline(model):
    texts = [p["text"] for p in _posts(300)] + ["", "!!!", "a"]
    from agegate.features import normalize_text

    texts = [normalize_text(t) for t in texts]
    dec, _, _ = model.text_records(texts)
    expected = model.text_pipeline.decision_function(texts)
    assert dec == pytest.approx(expected, abs=1e-9)


def test_every_text_signal_type_counts_and_others_do_not(model):
    post = _posts(1)[0]
    sigs = [as_signal(post, kind) for kind in ("message", "profile_text", "message_board_post")]
    sigs.append({"type": "session", "duration_s": 600, "at": datetime(2024, 1, 1, tzinfo=UTC)})
    state = model.update(None, sigs)
    assert state["n"] == 3 and state["plat"]["sessions"] == 1
    assert state["act"]["nd"] == 1  # three texts on one day are one active day


def test_account_text_sums_equal_the_pooled_sklearn_computation(model):
    """The state's two running sums give exactly the account text model's decision on the
    account's pooled, L1-normalised tf-idf, computed here with sklearn's own transformers."""
    import numpy as np
    import scipy.sparse as sp
    from sklearn.preprocessing import normalize

    from agegate.features import normalize_text

    posts = _posts(7)
    state = model.update(None, [as_signal(p) for p in posts])
    texts = [normalize_text(p["text"]) for p in posts]
    H = model.text_pipeline.named_steps["hash"].transform(texts).astype(np.float64).tocsr()
    H.data = np.log(H.data) + 1.0
    U = H @ sp.diags(model.text_pipeline.named_steps["tfidf"].idf_)
    pooled = normalize(sp.csr_matrix(U.sum(axis=0)), norm="l1")
    expected = float((pooled @ model._aw)[0]) + model._ab
    assert model.account_text_decision(state) == pytest.approx(expected, abs=1e-4)
    assert model.account_text_decision(model.new_state()) == 0.0


# ------------------------------------------------------------------------- issue 11


def _reddit(n_per_side: int, stack_only: bool = True) -> tuple[list[str], list[str]]:
    """Real comments of teen and young-adult communities, from threads held apart from the
    shipped text models' training (they only fed its account model)."""
    from training.data import REDDIT_STACK_FROM, load_reddit, reddit_path, thread_bucket

    if not reddit_path().is_file():
        pytest.skip(f"Reddit comments not found at {reddit_path()}")
    teen: list[str] = []
    adult: list[str] = []
    for c in load_reddit():
        if stack_only and thread_bucket(c["thread"]) < REDDIT_STACK_FROM:
            continue
        side = teen if c["label_minor"] else adult
        if len(side) < n_per_side:
            side.append(c["text"])
    return teen, adult


def _chat(text: str, minute: int = 0) -> dict:
    return {"type": "message", "text": text,
            "at": datetime(2026, 11, 24, 15, minute % 60, tzinfo=UTC)}


def test_lexicon_sums_equal_a_direct_computation_on_real_comments(model):
    import csv

    from training.data import lexicon_path

    assert model.uses_lexicon
    weights = {}
    with open(lexicon_path(), encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["term"] != "_intercept":
                weights[row["term"]] = float(row["weight"])
    teen, adult = _reddit(40)
    texts = teen + adult
    state = model.update(None, [_chat(t, i) for i, t in enumerate(texts)])
    # Directly: lower-case the whole account's text, count every token, weight lexicon words.
    from agegate.features import lexicon_tokens, normalize_text

    tokens = [tok for t in texts for tok in lexicon_tokens(normalize_text(t))]
    assert state["lw"] == len(tokens) > 500
    assert state["lx"] == pytest.approx(sum(weights.get(tok, 0.0) for tok in tokens), abs=1e-2)
    assert sum(1 for tok in tokens if tok in weights) > 100


def test_prevalence_shift_is_exact_at_known_points(model):
    from agegate.model import logit

    state = model.update(None, [as_signal(p) for p in _posts(3)])
    at_train = model.with_calibration(model.prevalence_train).score(state).score
    z = logit(at_train)
    for pi in (0.01, 0.02, 0.1, 0.5, 0.9):
        shifted = model.with_calibration(pi).score(state).score
        assert logit(shifted) == pytest.approx(z + logit(pi) - logit(model.prevalence_train),
                                               abs=1e-9)
    # Without text the score is the prevalence itself; at the training share, no shift.
    assert model.with_calibration(0.02).score(model.new_state()).score == pytest.approx(0.02)
    assert model.with_calibration(0.37).score(model.new_state()).score == pytest.approx(0.37)
    # Default: 2% prevalence, flagged from 0.5; the loader takes the operator's values.
    assert model.prevalence == 0.02 and model.review_threshold == 0.5
    other = load_model(MODEL_DIR, prevalence=0.1, review_threshold=0.8)
    assert other.score(state).score == pytest.approx(
        model.with_calibration(0.1).score(state).score, abs=1e-12)
    assert other.band_thresholds == {"medium": 0.4, "high": 0.8}
    with pytest.raises(ModelLoadError):
        load_model(MODEL_DIR, prevalence=1.0)


def test_explanations_name_only_ngrams_the_accounts_messages_contained(model):
    analyzer = model.text_pipeline.named_steps["hash"].transformer_list[0][1].build_analyzer()
    from agegate.features import normalize_text

    teen, adult = _reddit(400, stack_only=False)
    posts = [p["text"] for p in minor_test_posts()]
    named = 0
    accounts = [teen[i : i + 20] for i in range(0, 400, 20)] + [
        adult[i : i + 20] for i in range(0, 400, 20)] + [
        posts[i : i + 3] for i in range(0, 60, 3)]
    for texts in accounts:
        s = model.score(model.update(None, [_chat(t, i) for i, t in enumerate(texts)]))
        grams = {g for t in texts for g in analyzer(normalize_text(t))}
        for t in s.top_signals:
            if t["name"].startswith("text:"):
                named += 1
                assert t["name"][5:] in grams, (t["name"], texts)
    assert named > 20


def test_three_chat_messages_in_two_minutes_give_no_activity_reasons(model):
    texts = ["omg the school dance is friday", "this boy in my class asked me",
             "but i have a math test monday"]
    sigs = [{"type": "message", "text": t,
             "at": datetime(2026, 11, 28, 20, i, 40 * i % 60, tzinfo=UTC)}
            for i, t in enumerate(texts)]
    state = model.update(None, sigs)
    assert state["act"]["nd"] == 1
    s = model.with_calibration(0.5).score(state)
    assert s.top_signals
    assert not [t for t in s.top_signals if t["name"].startswith("activity:")]


def test_teen_chat_account_scores_above_young_adult_chat_account(model):
    teen, adult = _reddit(300)
    teen_scores, adult_scores = [], []
    for k in range(10):
        for texts, out in ((teen, teen_scores), (adult, adult_scores)):
            account = texts[k * 30 : (k + 1) * 30]
            out.append(model.score(model.update(
                None, [_chat(t, i) for i, t in enumerate(account)])).score)
    assert min(teen_scores) > max(adult_scores) * 0.5
    assert sum(teen_scores) / 10 > 3 * sum(adult_scores) / 10
    pairs = sum(t > a for t in teen_scores for a in adult_scores)
    assert pairs >= 90  # of 100 teen/young-adult account pairs


def test_named_reasons_are_readable_tokens_not_fragments(model):
    """Word tokens keep one-letter words and punctuation, so the vocabulary must leave out
    n-grams a reviewer cannot read as a reason: contraction pieces and word-punctuation pairs."""
    from training.train import nameable

    assert nameable("u") and nameable("!!!") and nameable(":)") and nameable("my mom")
    assert not nameable("t supposed") and not nameable("dark .") and not nameable("s")
    assert all(nameable(name) for name in model.vocab_names)
    # Tokens the default pattern dropped are in the shipped vocabulary's reach.
    analyzer = model.text_pipeline.named_steps["hash"].transformer_list[0][1].build_analyzer()
    assert {"u", "r", "!!!", ":)"} <= set(analyzer("u r so cute!!! :)"))
