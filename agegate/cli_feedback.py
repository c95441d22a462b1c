"""`agegate recalibrate`: refit the account-level model on the reviewers' de-identified examples."""

from __future__ import annotations

import time
from pathlib import Path

import click


def _log(msg: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {msg}", err=True)


@click.command()
@click.option("--model-dir", type=click.Path(file_okay=False), default=None,
              help="The current model (default: AGEGATE_MODEL_DIR or model/ in the repo).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where the new version goes (default: the model directory itself; the "
                   "service loads it on its next start).")
@click.option("--dry-run", is_flag=True, default=False,
              help="Print the comparison and whether it would be written; write nothing.")
@click.option("--data", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Blog authors (default: $AGEGATE_TRAINING_DATA or the shared data).")
@click.option("--max-authors", type=click.IntRange(min=10), default=None,
              help="Use at most this many stack and validation authors each (quick runs).")
def recalibrate(model_dir: str | None, out_dir: str | None, dry_run: bool, data: str | None,
                max_authors: int | None) -> None:
    """Refit the account-level model and keep the text model (stored states stay valid); write
    the new version only when it is no worse on held-back examples and blog validation."""
    from agegate.config import development_defaults, from_env
    from agegate.extensions import Agegate
    from agegate.model import ModelLoadError
    from training import recalibrate as R

    config = from_env()
    if config.development:
        config = development_defaults(config)
    config.validate()
    source = Path(model_dir) if model_dir else config.model_dir
    try:
        model, artifact, card = R.read_artifact(source)
    except ModelLoadError as error:
        raise click.ClickException(f"model: {error}") from None
    state = Agegate(config)
    try:
        examples = state.feedback.examples()
    finally:
        state.close()
    _log(f"model {model.version} (text model {model.text_version}); "
         f"{len(examples)} stored examples")
    try:
        corpus = R.load_corpus(data, max_authors)
    except (OSError, ValueError) as error:
        raise click.ClickException(f"training data: {error}") from None
    outcome = R.recalibrate(model, artifact, examples, corpus, log=_log)
    click.echo(R.format_outcome(outcome))
    if dry_run:
        click.echo("dry run: " + ("would write " + str(outcome.artifact["version"])
                                  if outcome.accepted and outcome.artifact
                                  else "would refuse: " + "; ".join(outcome.reasons)))
        return
    if not outcome.accepted:
        raise click.ClickException("recalibration refused, nothing written: "
                                   + "; ".join(outcome.reasons))
    target = Path(out_dir) if out_dir else source
    new_card = R.write(outcome, card, source, target)
    click.echo(f"wrote {new_card['version']} to {target} (text model "
               f"{new_card['text_version']}); restart the service to load it")
