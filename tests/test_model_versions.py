"""Model versions and stored account state: a recalibration (same text model) keeps every
account's evidence; a state of another text model (a full retrain) is reset, counted, and never
scored on the new scale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sklearn
from prometheus_client import REGISTRY

from agegate import create_app
from agegate import features as F
from agegate import model as M
from tests.conftest import auth
from tests.feedback_helpers import feedback_model_dir, held_out_accounts, post_lines, real_model
from training.recalibrate import read_artifact
from training.train import write_artifact


def write_variant(out: Path, **changes) -> Path:
    """The real artifact with some fields changed, written with a card as training does."""
    _, artifact, card = read_artifact(feedback_model_dir())
    artifact = {**artifact, **changes}
    sha = write_artifact(artifact, out)
    (out / M.CARD_NAME).write_text(json.dumps({**card, "sha256": sha, "version":
                                               artifact["version"],
                                               "sklearn_version": sklearn.__version__}))
    return out


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> dict[str, Path]:
    base = real_model()
    return {
        "recalibrated": write_variant(
            tmp_path_factory.mktemp("recal"), version=base.version + "+rtest",
            text_version=base.text_version, recalibrated_at="2026-11-24T12:00:00Z",
            account_intercept=float(read_artifact(feedback_model_dir())[1][
                "account_intercept"]) + 0.5),
        "retrained": write_variant(tmp_path_factory.mktemp("retrain"),
                                   version="age-retrained-test", text_version="age-retrained-test"),
    }


def app_on(config, clock, model_dir: Path):
    app = create_app(config.with_overrides(model_dir=model_dir, load_model=True), clock=clock)
    assert app.extensions["agegate"].model is not None
    return app


def stored_state(app, account_id: str) -> dict:
    state = app.extensions["agegate"]
    return state.accounts.accounts.state(state.redis, state.hasher.account(account_id))


def resets() -> float:
    return REGISTRY.get_sample_value("agegate_account_state_resets_total") or 0.0


def test_a_model_without_a_text_version_is_its_own_text_model():
    _, artifact, _ = read_artifact(feedback_model_dir())
    artifact = {k: v for k, v in artifact.items() if k != "text_version"}
    model = M.AgeModel(artifact)
    assert model.text_version == model.version
    assert model.new_state()["m"] == model.text_version


def test_a_recalibrated_version_keeps_every_stored_state(config, clock, variants):
    lines = held_out_accounts(40)[0][1]
    first = app_on(config, clock, feedback_model_dir())
    post_lines(first.test_client(), "acc-mv-1", lines[:-1], report=False)
    before = stored_state(first, "acc-mv-1")
    assert before["n"] == len(lines) - 1

    second = app_on(config, clock, variants["recalibrated"])  # the service restarted on it
    model = second.extensions["agegate"].model
    assert model.version != real_model().version
    assert model.text_version == real_model().text_version
    assert model.recalibrated_at == "2026-11-24T12:00:00Z"
    counted = resets()
    post_lines(second.test_client(), "acc-mv-1", lines[-1:], report=False)
    after = stored_state(second, "acc-mv-1")
    assert after["n"] == len(lines) and after["sd"] != 0.0
    decision = model.text_records([F.normalize_text(lines[-1])])[0][0]
    assert after["sd"] == pytest.approx(before["sd"] + decision, abs=1e-5)  # added, not restarted
    assert model.feedback_vector(before) == real_model().feedback_vector(before)
    assert resets() == counted
    body = second.test_client().get("/v1/admin/model", headers=auth("admin")).json
    assert body["recalibrated_at"] == "2026-11-24T12:00:00Z"
    assert body["text_version"] == real_model().text_version


def test_a_state_of_another_text_model_is_reset_counted_and_never_scored_on_its_scale(
        config, clock, variants):
    lines = held_out_accounts(40)[0][1]
    first = app_on(config, clock, feedback_model_dir())
    post_lines(first.test_client(), "acc-mv-2", lines)  # with one suspected-minor report
    old = stored_state(first, "acc-mv-2")
    assert old["n"] == len(lines) and old["plat"]["reports"] == {"suspected_minor": 1}

    second = app_on(config, clock, variants["retrained"])
    model = second.extensions["agegate"].model
    assert not model.on_scale(old)
    assert model.feedback_vector(old) is None  # no example from sums on another scale
    reset = {**model.new_state(), "plat": old["plat"]}
    assert model.score(old) == model.score(reset)
    assert second.test_client().get("/readyz").status_code == 200
    counted = resets()
    response = second.test_client().post(
        "/v1/accounts/acc-mv-2/signals", headers=auth("signals"),
        json={"signals": [{"type": "report", "at": "2026-11-24T13:00:00Z",
                           "reason": "suspected_minor"}]})
    assert response.status_code == 200, response.json
    new = stored_state(second, "acc-mv-2")
    assert new["m"] == "age-retrained-test"
    assert new["n"] == 0 and new["sd"] == 0.0 and new["top"] == []
    assert new["plat"]["reports"] == {"suspected_minor": 2}  # platform evidence is kept
    assert resets() == counted + 1
