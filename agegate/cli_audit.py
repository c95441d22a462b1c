"""`agegate audit verify`: recompute the audit chain and report any break."""

from __future__ import annotations

import sys

import click


@click.group("audit")
def audit() -> None:
    """The hash-chained audit trail."""


@audit.command("verify")
def verify() -> None:
    """Check every entry's hash and link; exit 1 on any problem."""
    from agegate import create_app
    from agegate.config import from_env

    app = create_app(from_env().with_overrides(load_model=False))
    checked, problems = app.extensions["agegate"].audit.log.verify()
    click.echo(f"entries checked: {checked}")
    click.echo(f"problems: {len(problems)}")
    for problem in problems:
        click.echo(f"  {problem.entry_id}: {problem.problem}")
    if problems:
        sys.exit(1)
