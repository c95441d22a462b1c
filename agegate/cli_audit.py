"""`agegate audit verify | checkpoint`: check the audit chain; anchor its heads outside Redis."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click


@contextmanager
def _state() -> Iterator[Any]:
    """The service's state from the environment, released afterwards (its Redis connections,
    and the embedded redis-server if this command started one)."""
    from agegate import create_app
    from agegate.config import from_env

    state = create_app(from_env().with_overrides(load_model=False)).extensions["agegate"]
    try:
        yield state
    finally:
        state.close()


@click.group("audit")
def audit() -> None:
    """The hash-chained audit trail."""


@audit.command("verify")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(dir_okay=False, path_type=Path),
              help="A file from `agegate audit checkpoint`: also check that every chain still "
                   "reaches the head it had then (no truncated tail, no dropped chain).")
def verify(checkpoint_file: Path | None) -> None:
    """Check every entry's hash and link; exit 1 on any problem."""
    checkpoint = None
    if checkpoint_file is not None:
        try:
            checkpoint = json.loads(checkpoint_file.read_text())
        except (OSError, ValueError) as error:
            raise click.ClickException(f"checkpoint {checkpoint_file}: {error}") from None
        if not isinstance(checkpoint, dict):
            raise click.ClickException(f"checkpoint {checkpoint_file}: not a checkpoint")
    with _state() as state:
        checked, problems = state.audit.log.verify(checkpoint, state.clock.now())
    click.echo(f"entries checked: {checked}")
    if checkpoint is not None:
        click.echo(f"checkpoint: {len(checkpoint.get('chains') or {})} chains as of "
                   f"{checkpoint.get('created_at')}")
    click.echo(f"problems: {len(problems)}")
    for problem in problems:
        click.echo(f"  {problem.entry_id}: {problem.problem}")
    if problems:
        sys.exit(1)


@audit.command("checkpoint")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the checkpoint here (mode 0600) instead of printing it.")
def checkpoint(output: Path | None) -> None:
    """Sign every chain's current head; keep the result outside Redis (refused while the
    chain does not verify)."""
    with _state() as state:
        now = state.clock.now()
        _, problems = state.audit.log.verify(None, now)
        if problems:
            raise click.ClickException(
                f"the audit chain does not verify ({len(problems)} problems): run "
                "`agegate audit verify`; no checkpoint written")
        text = json.dumps(state.audit.log.checkpoint(now), indent=2, sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    click.echo(f"checkpoint of {len(json.loads(text)['chains'])} chains written to {output}")
