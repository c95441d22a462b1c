"""Click commands ``train`` and ``evaluate`` (added to the main CLI by agegate/cli.py)."""

from __future__ import annotations

import json
import sys
import time

import click


def _log(msg: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {msg}", err=True)


@click.command()
@click.option("--data", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Training data (default: $AGEGATE_TRAINING_DATA or "
                   "../shared/data/blogs/authors.jsonl.gz beside the repo).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output directory (default: model/ in the repo).")
def train(data: str | None, out_dir: str | None) -> None:
    """Rebuild the model artifact, card.json and MODEL_CARD.md end to end."""
    from training.train import run

    card = run(data, out_dir, log=_log)
    click.echo(json.dumps({"sha256": card["sha256"], "test": {
        k: {m: v.get(m) for m in ("roc_auc", "pr_auc", "recall_at_precision_0_95", "brier")}
        for k, v in card["test"].items()}}, indent=2))


@click.command()
@click.option("--data", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Authors file in the shared format (.jsonl or .jsonl.gz).")
@click.option("--model-dir", type=click.Path(file_okay=False), default=None,
              help="Model directory (default: model/ in the repo).")
@click.option("--split", type=click.Choice(["all", "train", "validation", "test"]),
              default="all", show_default=True,
              help="Score only authors of this split of the author hash (for the training file).")
def evaluate(data: str, model_dir: str | None, split: str) -> None:
    """Score every author in DATA and print metrics as JSON."""
    from agegate.model import load_model
    from training import evaluate as E
    from training.data import iter_authors, split_of
    from training.train import DEFAULT_OUT

    model = load_model(model_dir or DEFAULT_OUT)
    authors = [a for a in iter_authors(data)
               if split == "all" or split_of(str(a["author_id"])) == split]
    with click.progressbar(length=len(authors), label="scoring authors", file=sys.stderr) as bar:
        scores = E.score_authors(model, authors, progress=bar.update)
    report = E.full_report(scores, model.review_threshold)
    click.echo(json.dumps({"model_version": model.version, "sha256": model.sha256,
                           "authors": len(authors), "split": split, "metrics": report}, indent=2))
