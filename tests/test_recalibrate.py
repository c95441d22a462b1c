"""`agegate recalibrate`: reviewers' verdicts on real accounts refit the account-level model;
the new version scores held-out accounts at least as well and keeps every stored state; wrong
verdicts are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from agegate import create_app
from agegate.cli import cli
from agegate.model import load_model
from tests.cli_env import service_env
from tests.feedback_helpers import (
    AT,
    claim_and_decide,
    feedback_model_dir,
    held_out_accounts,
    post_lines,
    real_model,
)

DECIDED = 300  # accounts whose cases reviewers decide
HELD_OUT = 200  # accounts nobody decided, scored by both versions
QUICK = ["--max-authors", "150"]  # a CI-sized corpus


@pytest.fixture
def app(config, clock):
    real_model()
    return create_app(config.with_overrides(model_dir=feedback_model_dir(), load_model=True),
                      clock=clock)


def run_cli(monkeypatch, redis_url: str, tmp_path: Path, *args: str):
    for name, value in service_env(redis_url, tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AGEGATE_MODEL_DIR", str(feedback_model_dir()))
    return CliRunner().invoke(cli, ["recalibrate", *QUICK, *args])


def decide_all(client, accounts) -> None:
    for n, (y, lines) in enumerate(accounts):
        case_id = post_lines(client, f"acc-recal-{n}", lines)["case_id"]
        claim_and_decide(client, case_id, "confirm_minor" if y else "not_minor")


def held_out_auc(model, accounts) -> float:
    y, p = [], []
    for label, lines in accounts:
        state = model.update(None, [{"type": "message", "at": AT, "text": t} for t in lines])
        y.append(label)
        p.append(model.score(state).score)
    return float(roc_auc_score(np.asarray(y), np.asarray(p)))


def test_verdicts_refit_the_account_model_and_the_new_version_scores_at_least_as_well(
        app, client, monkeypatch, redis_url, tmp_path):
    accounts = held_out_accounts(DECIDED + HELD_OUT)
    decide_all(client, accounts[:DECIDED])
    counts = app.extensions["agegate"].feedback.store.counts()
    assert counts["minor"] + counts["adult"] == DECIDED

    out = tmp_path / "model-new"
    dry = run_cli(monkeypatch, redis_url, tmp_path, "--dry-run", "--out", str(out))
    print(dry.output)
    assert dry.exit_code == 0, dry.output
    assert "held_back" in dry.output and "blog_validation" in dry.output
    assert "would write" in dry.output
    assert not out.exists()  # a dry run writes nothing

    result = run_cli(monkeypatch, redis_url, tmp_path, "--out", str(out))
    assert result.exit_code == 0, result.output
    new, old = load_model(out), real_model()
    assert new.version != old.version and new.text_version == old.text_version
    assert new.recalibrated_at
    card = json.loads((out / "card.json").read_text())
    assert card["feedback"]["examples"]["usable"] == counts
    assert card["feedback"]["previous_version"] == old.version
    assert "## Platform feedback" in (out / "MODEL_CARD.md").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "card.json", "model.skops"]

    # The service picks the new version up on restart; scores from the same stored states.
    restarted = create_app(app.extensions["agegate"].config.with_overrides(model_dir=out),
                           clock=app.extensions["agegate"].clock)
    assert restarted.extensions["agegate"].model.version == new.version
    before, after = held_out_auc(old, accounts[DECIDED:]), held_out_auc(new, accounts[DECIDED:])
    print(f"held-out accounts ROC-AUC: {before:.4f} -> {after:.4f}")
    # The refit may only rescale the ranking (equal up to float rounding), never worsen it,
    assert after >= before - 1e-9
    # and it moves the calibration, so where the threshold falls, towards the verdicts.
    held = card["feedback"]["after"]["held_back"], card["feedback"]["before"]["held_back"]
    assert held[0]["log_loss"] < held[1]["log_loss"]


def test_deliberately_wrong_verdicts_are_refused_and_nothing_is_written(
        app, client, monkeypatch, redis_url, tmp_path):
    accounts = held_out_accounts(DECIDED + HELD_OUT)[:DECIDED]
    decide_all(client, [(1 - y, lines) for y, lines in accounts])
    out = tmp_path / "model-new"
    result = run_cli(monkeypatch, redis_url, tmp_path, "--out", str(out))
    print(result.output)
    assert result.exit_code == 1
    assert "recalibration refused, nothing written" in result.output
    assert "blog_validation" in result.output
    assert not out.exists()


def test_too_few_examples_are_refused(app, monkeypatch, redis_url, tmp_path):
    result = run_cli(monkeypatch, redis_url, tmp_path, "--out", str(tmp_path / "m"))
    assert result.exit_code == 1
    assert "not enough examples: 0 usable" in result.output


def test_a_model_that_does_not_load_is_one_line_and_exit_1(monkeypatch, redis_url, tmp_path):
    result = run_cli(monkeypatch, redis_url, tmp_path, "--model-dir", str(tmp_path / "none"))
    assert result.exit_code == 1
    assert "model: cannot read" in result.output and "Traceback" not in result.output
