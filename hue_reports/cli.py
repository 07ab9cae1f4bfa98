"""Command line: `flask seed`, `flask worker`, `flask scheduler` (and Flask-Migrate's `flask db`)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from . import PACKAGE_DIR

DEFAULT_DATA_DIR = PACKAGE_DIR / "data" / "hue"


@click.command("seed")
@with_appcontext
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=DEFAULT_DATA_DIR, show_default=True,
              help="The city's data directory (city.yaml, wards, categories, agencies, routing rules).")
@click.option("--demo", is_flag=True, help="Also create the demo accounts (refused in production).")
@click.option("--if-empty", is_flag=True,
              help="Do nothing if a city is already loaded (deployments: never revert an admin's edits).")
def seed_command(data_dir: Path, demo: bool, if_empty: bool) -> None:
    """Load a city's wards, categories, agencies and routing rules. Running it again changes nothing."""
    from .services import seed

    if demo and current_app.config["HUE_ENV"] == "production":
        raise click.UsageError("--demo creates accounts with a published password: refused in production")
    if if_empty and seed.city_loaded():
        click.echo("a city is already loaded: nothing to do (--if-empty)")
        return
    try:
        summary = seed.load_city(data_dir, demo=demo)
    except seed.SeedError as exc:
        raise click.ClickException(str(exc)) from exc
    for table, counts in summary.items():
        click.echo(f"{table:>15}: {counts['created']} created, {counts['updated']} updated, "
                   f"{counts['unchanged']} unchanged")
    if demo:
        click.echo(f"demo accounts: password {seed.demo_password(data_dir)!r} "
                   f"({', '.join(seed.demo_usernames(data_dir))})")


@click.command("worker")
@with_appcontext
@click.option("--queues", "-q", help="Comma-separated queues, highest priority first (default: RQ_QUEUES).")
@click.option("--burst", is_flag=True, help="Run the jobs already queued, then exit.")
def worker_command(queues: str | None, burst: bool) -> None:
    """Run an RQ worker inside the application context."""
    from rq import Worker

    from .extensions import get_redis
    from .jobs import queue_names

    names = [q.strip() for q in queues.split(",")] if queues else queue_names()
    worker = Worker(names, connection=get_redis())
    # with_scheduler: RQ's own scheduler runs Retry(interval=...) and enqueue_in.
    worker.work(burst=burst, with_scheduler=True, logging_level=current_app.config["LOG_LEVEL"])


@click.command("scheduler")
@with_appcontext
@click.option("--once", is_flag=True, help="Enqueue what is due now, then exit.")
def scheduler_command(once: bool) -> None:
    """Enqueue periodic jobs on time (safe to run in several replicas)."""
    from . import scheduler
    from .extensions import get_redis

    jobs = scheduler.schedule(current_app)
    if once:
        for job_id in scheduler.tick(get_redis(), jobs):
            click.echo(f"enqueued {job_id}")
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    scheduler.run(get_redis(), jobs, stop)


@click.command("healthcheck")
@click.argument("component", type=click.Choice(["worker", "scheduler"]))
@with_appcontext
def healthcheck_command(component: str) -> None:
    """Exit 0 if this host's worker or scheduler is alive (for container healthchecks)."""
    import socket

    from rq import Worker

    from . import scheduler
    from .extensions import get_redis

    redis = get_redis()
    host = socket.gethostname()
    if component == "worker":
        alive = any(w.hostname == host for w in Worker.all(connection=redis))
    else:
        alive = bool(redis.exists(scheduler.alive_key(host)))
    if not alive:
        raise click.ClickException(f"no live {component} on {host}")
    click.echo(f"{component} alive on {host}")


def init_app(app: Flask) -> None:
    for command in (seed_command, worker_command, scheduler_command, healthcheck_command):
        app.cli.add_command(command)
