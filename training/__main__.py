"""``python -m training train|evaluate``."""

import click

from agegate.cli_model import evaluate, train


@click.group()
def main() -> None:
    """agegate model training and evaluation."""


main.add_command(train)
main.add_command(evaluate)

if __name__ == "__main__":
    main()
