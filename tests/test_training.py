from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from agegate import features as F
from agegate.cli_model import evaluate, train
from agegate.model import AgeModel, load_model
from tests.model_fixtures import MODEL_DIR, first_authors
from training import domains as D
from training import evaluate as E
from training import selection
from training.data import (
    SPLIT_BOUNDS,
    bucket,
    read_lexicon,
    reddit_group,
    split_authors,
    split_of,
)
from training.train import LEXICON_COEF, fit_models, load_corpus, view_weights


def test_split_is_deterministic_and_disjoint():
    authors = first_authors(3000)
    a = split_authors(list(authors))
    b = split_authors(list(reversed(authors)))
    ids = {k: {x["author_id"] for x in v} for k, v in a.items()}
    assert ids == {k: {x["author_id"] for x in v} for k, v in b.items()}
    assert not (ids["train"] & ids["validation"] or ids["train"] & ids["test"]
                or ids["validation"] & ids["test"])
    assert sum(len(v) for v in ids.values()) == len({x["author_id"] for x in authors})
    frac = {k: len(v) / len(authors) for k, v in ids.items()}
    assert 0.65 < frac["train"] < 0.75 and 0.12 < frac["test"] < 0.18


GOLDEN_BUCKETS = [44, 51, 35]


def test_split_depends_only_on_the_keyed_author_hash():
    # Golden values: changing the key or bucket rule silently reshuffles train and test.
    assert [bucket(x) for x in ("1000331", "1000866", "abc")] == GOLDEN_BUCKETS
    assert split_of("1000331") == _expected_split(GOLDEN_BUCKETS[0])


def _expected_split(b: int) -> str:
    return next(name for name, bound in SPLIT_BOUNDS.items() if b < bound)




def test_eval_views_cover_single_snippet_and_account():
    author = first_authors(5)[1]
    views = E.eval_views(author)
    n = len(author["posts"])
    assert views["single_post"] == [[i] for i in range(n)]
    assert len(views["snippet_3"][0]) == min(3, n) and views["account"] == [list(range(n))]
    assert views == E.eval_views(author)


def _small_reddit(n: int = 4000) -> list[dict]:
    from training.data import load_reddit, reddit_path

    if not reddit_path().is_file():
        pytest.skip(f"Reddit comments not found at {reddit_path()}")
    comments = load_reddit()
    step = max(1, len(comments) // n)
    return comments[::step][:n]


def _small_training_files(tmp_path):
    """500 blog authors and 2,500 Reddit comments as files `agegate train` can read."""
    blog = tmp_path / "authors.jsonl"
    blog.write_text("".join(json.dumps(a) + "\n" for a in first_authors(500)))
    reddit = tmp_path / "comments.jsonl"
    reddit.write_text("".join(json.dumps(c) + "\n" for c in _small_reddit(2500)))
    return blog, reddit


def test_small_model_from_real_data_beats_chance_on_held_out_authors_and_communities():
    authors = list(first_authors(1000))
    # An author without posts (possible in an operator's own data) is skipped, not a crash.
    empty_id = next(f"empty-{i}" for i in range(1000) if split_of(f"empty-{i}") == "train")
    authors.append({"author_id": empty_id, "age": 30, "gender": "male", "posts": []})
    comments = _small_reddit()
    corpus = load_corpus(authors, comments, read_lexicon())
    stacks: dict = {}
    fitted = fit_models(corpus, vocab=False, stacks=stacks)
    model = AgeModel(fitted["shipped"][0])
    assert model.uses_lexicon and 0.3 < model.prevalence_train < 0.7
    # The lexicon's weight is fixed (it transfers to chat), not fitted on blogs and Reddit.
    lex = F.ACCOUNT_FEATURES.index("lexicon_age")
    assert model._acc_coef[lex] == LEXICON_COEF
    assert (model._acc_coef[:lex] != 0).all()
    held_out = split_authors(authors)["test"]
    kept: list = []
    scores = E.score_authors(model, held_out, keep=kept)
    acc = scores["account"]
    assert len(set(acc["y"].tolist())) == 2
    assert roc_auc_score(acc["y"], acc["z"]) > 0.75
    single = scores["single_post"]
    assert roc_auc_score(single["y"], single["z"]) > 0.65
    # Across communities: trained with Reddit group A only, scored on group B.
    other = [c for c in comments if reddit_group(c) == "B"]
    kept_a: list = []
    r = E.score_reddit(AgeModel(fitted["A"][0]), other, keep=kept_a)
    assert roc_auc_score(r["account_10"]["y"], r["account_10"]["z"]) > 0.7
    # The card's table of candidate account models refits each on the same training states
    # and scores the same states: its shipped row is the shipped models' own figures, and a
    # candidate that differs gives other figures.
    directions = {g: AgeModel(fitted[g][0]) for g in ("A", "B")}
    rows = selection.compare(model, directions, stacks, (kept, acc["y"]),
                             {"A->B": (kept_a, r["account_10"]["y"])}, None, None)
    shipped = next(row for row in rows if "(shipped)" in row["name"])
    assert shipped["blog"] == pytest.approx(D.roc_auc(acc["y"], acc["z"]), abs=1e-4)
    assert shipped["reddit_A->B"] == pytest.approx(
        D.roc_auc(r["account_10"]["y"], r["account_10"]["z"]), abs=1e-4)
    prec, rec = D.at_prevalence(acc["y"].astype(bool), np.asarray(
        [model.score(st).flagged for st in kept]), 0.02)
    assert (shipped["blog_precision_2pct"], shipped["blog_recall_2pct"]) == (
        pytest.approx(prec, abs=1e-4) if prec is not None else None, pytest.approx(rec, abs=1e-4))
    assert len({row["blog"] for row in rows}) > 1


def test_no_lexicon_model_builds_and_loads_without_reading_the_lexicon(tmp_path):
    blog, reddit = _small_training_files(tmp_path)
    nowhere = tmp_path / "no-such-dir" / "age_lexicon.csv"
    out = tmp_path / "model"
    result = CliRunner().invoke(train, ["--data", str(blog), "--reddit", str(reddit),
                                        "--lexicon", str(nowhere), "--no-lexicon",
                                        "--out", str(out)])
    assert result.exit_code == 0, result.output
    model = load_model(out)
    assert not model.uses_lexicon
    assert model._acc_coef[F.ACCOUNT_FEATURES.index("lexicon_age")] == 0.0
    state = model.update(None, [{"type": "message", "text": "omg my mom is so annoying lol"}])
    assert state["lx"] == 0.0 and state["lw"] > 0
    assert "lexicon:age_words" not in {t["name"] for t in model.score(state).top_signals}
    card = json.loads((out / "card.json").read_text())
    assert card["lexicon"] is None
    text = (out / "MODEL_CARD.md").read_text()
    assert "does not contain or use the Sap et al." in text
    # The same command without --no-lexicon needs the file, and says so.
    failed = CliRunner().invoke(train, ["--data", str(blog), "--reddit", str(reddit),
                                        "--lexicon", str(nowhere), "--out",
                                        str(tmp_path / "m2")])
    assert failed.exit_code != 0


def test_recall_at_precision_picks_the_lowest_qualifying_threshold():
    y = np.array([0, 0, 1, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    rec, thr = E.recall_at_precision(y, p, 0.95)
    assert rec == 0.75 and thr == 0.5


def test_evaluate_command_prints_metrics_json(tmp_path):
    small = tmp_path / "a.jsonl"
    small.write_text("".join(json.dumps(a) + "\n" for a in first_authors(40)))
    result = CliRunner().invoke(evaluate, ["--data", str(small), "--model-dir", str(MODEL_DIR)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["authors"] == 40
    assert {"single_post", "snippet_3", "account", "lines_40"} <= set(out["metrics"])
    assert 0 <= out["metrics"]["account"]["roc_auc"] <= 1
    # Every domain's row, with its interval and met / NOT met (or not measured) on stderr.
    assert [t["key"] for t in out["targets"]] == [k for k, *_ in D.DOMAIN_TARGETS]
    lines = result.stderr.strip().splitlines()[-len(D.DOMAIN_TARGETS):]
    for line, (_, name, target, direction) in zip(lines, D.DOMAIN_TARGETS, strict=True):
        assert line.split("  ")[0].strip() in ("met", "NOT met", "not measured")
        assert f"{name} {direction} {target}: " in line
    blog = next(line for line in lines if "blog test authors: ROC-AUC" in line)
    assert blog.startswith(("met ", "NOT met ")) and "90% interval" in blog
    # The Reddit rows need the full evaluation (its cross-community models).
    assert all(line.startswith("not measured") for line in lines if "Reddit" in line)
    nps = next(line for line in lines if "teens' room vs all other rooms" in line)
    assert nps.startswith(("met ", "NOT met ")) and "90% interval" in nps


def test_view_weights_give_each_kind_its_share_split_evenly_between_minors_and_adults():
    source = np.array(["blog"] * 6 + ["reddit_1"] * 4 + ["platform"] * 3)
    y = np.array([1, 0, 0, 0, 0, 0] + [1, 1, 1, 0] + [0, 0, 0])
    w = view_weights(source, y, {"platform": 2.0})
    assert w.mean() == pytest.approx(1.0)
    totals = {k: w[source == k].sum() for k in ("blog", "reddit_1", "platform")}
    assert totals["platform"] == pytest.approx(2 * totals["blog"])
    assert totals["reddit_1"] == pytest.approx(totals["blog"])
    for kind in ("blog", "reddit_1"):
        m = source == kind
        assert w[m & (y == 1)].sum() == pytest.approx(w[m & (y == 0)].sum())
    # A kind with one class only keeps its whole share; kinds with both are at even odds.
    both = source != "platform"
    assert np.average(y[both], weights=w[both]) == pytest.approx(0.5)


def test_a_retrain_with_identical_text_models_keeps_the_text_version(tmp_path):
    blog, reddit = _small_training_files(tmp_path)
    out = tmp_path / "model"
    args = ["--data", str(blog), "--reddit", str(reddit), "--out", str(out)]
    message = [{"type": "message", "text": "omg my mom is so annoying lol"}]

    def retrain(*extra: str):
        result = CliRunner().invoke(train, [*args, *extra])
        assert result.exit_code == 0, result.output
        return load_model(out)

    first = retrain("--no-lexicon")
    assert first.text_version == first.version
    state = first.update(None, message)
    # Text training is deterministic: the same data gives the same text models, so the new
    # version keeps the text version and a state stored under the first stays valid.
    second = retrain("--no-lexicon")
    assert second.version != first.version and second.text_version == first.version
    assert second.on_scale(state)
    assert json.loads((out / "card.json").read_text())["text_version"] == first.version
    # The lexicon is part of the state's text sums: with it, the text model is a new one.
    third = retrain()
    assert third.text_version == third.version != first.version
    assert not third.on_scale(state)


def test_the_text_version_is_kept_when_only_the_account_models_features_changed(tmp_path):
    # Issue 19 changed the second stage's features but not the text models: the model it
    # replaces no longer loads with this code, yet its text part is the same, so stored states
    # stay valid.
    from agegate import model as M
    from training.recalibrate import read_artifact
    from training.train import kept_text_version, write_artifact

    current, artifact, card = read_artifact(MODEL_DIR)
    old_layout = [*F.ACCOUNT_FEATURES, "weekend_share", "summer_share"]
    n = len(old_layout)
    previous = {**artifact, "account_features": old_layout, "account_mean": np.zeros(n),
                "account_scale": np.ones(n), "account_coef": np.ones(n)}
    out = tmp_path / "previous"
    sha = write_artifact(previous, out)
    (out / M.CARD_NAME).write_text(json.dumps({**card, "sha256": sha}))
    with pytest.raises(M.ModelLoadError):
        load_model(out)
    assert kept_text_version(artifact, out) == current.text_version
    # Other text models: nothing is kept.
    other = {**artifact, "account_text_intercept": artifact["account_text_intercept"] + 1.0}
    assert kept_text_version(other, out) is None
    # A tampered artifact is not read at all.
    (out / M.CARD_NAME).write_text(json.dumps({**card, "sha256": "0" * 64}))
    assert kept_text_version(artifact, out) is None
