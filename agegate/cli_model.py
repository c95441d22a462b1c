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
              help="Blog authors (default: $AGEGATE_TRAINING_DATA or "
                   "../shared/data/blogs/authors.jsonl.gz beside the repo).")
@click.option("--reddit", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Reddit comments (default: $AGEGATE_REDDIT_DATA or "
                   "../shared/data/reddit/comments.jsonl.gz).")
@click.option("--lexicon", type=click.Path(dir_okay=False), default=None,
              help="Age lexicon CSV (default: $AGEGATE_LEXICON or "
                   "../shared/data/lexica/age_lexicon.csv).")
@click.option("--no-lexicon", "no_lexicon", is_flag=True, default=False,
              help="Build a model that never reads the lexicon (CC BY-NC-SA 3.0) file.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output directory (default: model/ in the repo).")
def train(data: str | None, reddit: str | None, lexicon: str | None, no_lexicon: bool,
          out_dir: str | None) -> None:
    """Rebuild the model artifact, card.json and MODEL_CARD.md end to end."""
    from training.data import lexicon_path
    from training.evaluate import format_targets
    from training.train import run

    if not no_lexicon and not lexicon_path(lexicon).is_file():
        raise click.UsageError(f"age lexicon not found at {lexicon_path(lexicon)}: pass "
                               "--lexicon FILE, or --no-lexicon to build a model without it")
    card = run(data, out_dir, log=_log, reddit=reddit, lexicon=lexicon,
               use_lexicon=not no_lexicon)
    click.echo(format_targets(card["evaluation"]["targets"]))
    click.echo(json.dumps({"sha256": card["sha256"], "train_seconds": card["train_seconds"],
                           "total_seconds": card["total_seconds"]}))


@click.command()
@click.option("--data", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Score every author of this authors file (shared format) with the shipped "
                   "model and print blog metrics. Without it: the full evaluation of the card "
                   "(blog test authors, Reddit across communities, which refits the two "
                   "cross-community models: several minutes).")
@click.option("--model-dir", type=click.Path(file_okay=False), default=None,
              help="Model directory (default: model/ in the repo).")
@click.option("--split", type=click.Choice(["all", "train", "validation", "test"]),
              default=None,
              help="Blog authors of this split only (default: all with --data, test without).")
@click.option("--reddit", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--lexicon", type=click.Path(dir_okay=False), default=None)
@click.option("--nps", type=click.Path(dir_okay=False), default=None,
              help="NPS Chat dev records (default: $AGEGATE_NPS_DATA or "
                   "../shared/data/chat/nps_dev.jsonl.gz; not measured when absent).")
@click.option("--nus", type=click.Path(dir_okay=False), default=None,
              help="NUS SMS senders (default: $AGEGATE_NUS_DATA or "
                   "../shared/data/chat/nus_sms.jsonl.gz; not measured when absent).")
def evaluate(data: str | None, model_dir: str | None, split: str | None, reddit: str | None,
             lexicon: str | None, nps: str | None, nus: str | None) -> None:
    """Print metrics as JSON (stdout), and every domain's row with its 90% interval and
    whether its target is met (stderr). Chat is scored at the service defaults (prevalence
    0.02, review threshold 0.5), one message signal per line, through the state path."""
    from agegate.model import load_model
    from training import domains as D
    from training import evaluate as E
    from training.data import iter_authors, load_reddit, read_lexicon, split_authors, split_of
    from training.train import DEFAULT_OUT, fit_directions

    model = load_model(model_dir or DEFAULT_OUT)
    head = {"model_version": model.version, "sha256": model.sha256}
    nps_records, nus_records = D.load_optional(nps, nus)
    if data is not None:
        split = split or "all"
        authors = [a for a in iter_authors(data)
                   if split == "all" or split_of(str(a["author_id"])) == split]
        with click.progressbar(length=len(authors), label="scoring authors",
                               file=sys.stderr) as bar:
            scores = E.score_authors(model, authors, progress=bar.update)
        report: dict = {"blog": E.blog_report(model, scores)}
        report["domains"] = E.domain_rows(model, scores, {}, nps_records, nus_records, _log)
        report["targets"] = E.check_targets(report)
        click.echo(json.dumps({**head, "authors": len(authors), "split": split,
                               "metrics": report["blog"], "domains": report["domains"],
                               "targets": report["targets"]}, indent=2))
    else:
        authors = list(iter_authors())
        comments = load_reddit(reddit)
        lex = read_lexicon(lexicon) if model.uses_lexicon else None
        directions = fit_directions(authors, comments, lex, _log)
        report = E.evaluate_all(model, split_authors(authors), comments, directions, _log,
                                split=split or "test", nps=nps_records, nus=nus_records)
        click.echo(json.dumps({**head, **report}, indent=2))
    # stdout stays one JSON document (it holds the targets too); the verdicts go to stderr.
    click.echo(E.format_targets(report["targets"]), err=True)
