"""`agegate serve | train | evaluate | audit verify`."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

import click
import redis

from agegate.config import ConfigError


class _Cli(click.Group):
    """The command group: a configuration or Redis problem is one clear line and exit status 1,
    not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigError as error:
            raise click.ClickException(f"configuration: {error}") from None
        except redis.RedisError as error:
            raise click.ClickException(f"redis: {error}") from None


@click.group(cls=_Cli)
def cli() -> None:
    """agegate: age gating and minor-account enforcement."""


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Run a development server (embedded Redis when REDIS_URL is unset)."""
    from werkzeug.serving import run_simple

    from agegate import create_app, freeze_startup_heap
    from agegate.config import development_defaults, from_env

    os.environ.setdefault("AGEGATE_ENV", "development")
    config = from_env()
    generated_tokens = config.development and not config.api_keys
    if config.development:
        config = development_defaults(config)
    app = create_app(config)
    state = app.extensions["agegate"]
    where = f"embedded redis-server in {state.embedded.data_dir}" if state.embedded else "REDIS_URL"
    click.echo(f"agegate listening on http://{host}:{port}  (docs: http://{host}:{port}/docs)")
    click.echo(f"storage: {where}; model: {state.readiness()['model']}")
    if generated_tokens:
        click.echo("development tokens (set AGEGATE_API_KEYS to choose your own):")
        for key in config.api_keys:
            click.echo(f"  {key.role:<13} Authorization: Bearer {key.token}")
    # SIGTERM (a service manager, docker stop) ends the server as Ctrl-C does, so the finally
    # below stops the embedded redis-server instead of leaving it running.
    if config.metrics_port:
        from agegate.metrics_server import start_metrics_server

        start_metrics_server(state.gauge_sources, config.metrics_port, host)
        click.echo(f"metrics: http://{host}:{config.metrics_port}/metrics")
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    freeze_startup_heap()
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        state.close()


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    """Leave the serving loop through the normal exit path (finally blocks, atexit)."""
    click.echo(f"agegate: {signal.Signals(signum).name}, stopping", err=True)
    sys.exit(0)


@cli.command()
@click.option("--consumer", default=None,
              help="This worker's name in the consumer groups (default: host and process id).")
def worker(consumer: str | None) -> None:
    """Run the background jobs (signal stream, webhook delivery) until SIGTERM or SIGINT."""
    import socket

    from agegate import freeze_startup_heap
    from agegate.config import development_defaults, from_env
    from agegate.extensions import Agegate
    from agegate.worker import Worker

    # The default local run, as `agegate serve`: without REDIS_URL both use the embedded
    # redis-server and the dev secret under AGEGATE_DATA_DIR (a worker started beside serve
    # shares its server). With REDIS_URL set the default stays production.
    if not os.environ.get("REDIS_URL"):
        os.environ.setdefault("AGEGATE_ENV", "development")
    config = from_env()
    if config.development:
        config = development_defaults(config)
    config.validate()
    state = Agegate(config)
    state.load_model()
    freeze_startup_heap()
    name = consumer or f"{socket.gethostname()}-{os.getpid()}"
    runner = Worker(state.worker_jobs, name)
    runner.install_signal_handlers()
    click.echo(f"agegate worker {name}: {len(runner.jobs)} job(s)")
    try:
        runner.run()
    finally:
        state.close()


def _register_optional_commands() -> None:
    """Commands that live beside the features they drive."""
    from agegate.cli_audit import audit
    from agegate.cli_feedback import recalibrate
    from agegate.cli_model import evaluate, train

    for command in (train, evaluate, audit, recalibrate):
        cli.add_command(command)


try:
    _register_optional_commands()
except ImportError:  # pragma: no cover - only while a feature branch is not merged yet
    pass


if __name__ == "__main__":  # `python -m agegate.cli`, as the console script does
    cli()
