"""Commands of the hub as a whole: the store's schema, the demo, the UI, the HTTP receiver."""

from __future__ import annotations

import os
import sys

import click

from hub.crm.registry import REPLAY_BACKENDS
from hub.masking import mask_url_password
from hub.processes import console_script
from hub.server.limits import ConnectionLimits
from hub.settings import PROJECT_DIR, load_settings


def register(main: click.Group, inspect: click.Group) -> None:
    main.add_command(db)
    main.add_command(demo)
    main.add_command(ui)
    main.add_command(serve)


@click.group()
def db() -> None:
    """Create or upgrade the store's schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="heads", show_default=True, help="Target revision.")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to the newest schema."""
    from hub.store import migrate

    url = load_settings().database_url
    migrate.upgrade(url, revision)
    click.echo(f"store is at {revision}: {mask_url_password(url)}")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION."""
    from hub.store import migrate

    migrate.downgrade(load_settings().database_url, revision)


@db.command("revision")
@click.option("-m", "--message", required=True)
@click.option("--branch-label", default=None, help="Start a new branch (a domain's own migrations).")
def db_revision(message: str, branch_label: str | None) -> None:
    """Autogenerate a migration from the models (for developers)."""
    from hub.store import migrate

    migrate.revision(load_settings().database_url, message, branch_label)


def _check_own_config() -> None:
    """The demo runs on settings of its own (var/demo/hub.yaml); the caller's environment and
    HUB_CONFIG file are still checked first, so a broken one is reported, not silently replaced."""
    own = os.environ.get("HUB_CONFIG")
    load_settings()
    if own:
        click.echo(f"note: HUB_CONFIG={own} is valid; the demo uses its own settings file instead", err=True)


@click.command()
@click.option("--reset", is_flag=True, help="Delete the demo store first and start over.")
@click.option(
    "--crm",
    type=click.Choice(REPLAY_BACKENDS),
    default=None,
    help="Run against a local replay of this CRM (the store is its mirror) and show what it now holds.",
)
def demo(reset: bool, crm: str | None) -> None:
    """Seed a local SQLite CRM, generate demo data for every source, run the whole graph once."""
    # The CLI is the entry point: the one Dagster step of the demo lives in assets/.
    from assets.demo import run_demo

    _check_own_config()
    ok = run_demo(reset=reset, echo=click.echo, crm=crm)
    sys.exit(0 if ok else 1)


@click.command()
@click.option("--port", default=3000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def ui(port: int, host: str) -> None:
    """Open the Dagster UI (webserver and daemon) on the demo data, with history kept in var/."""
    from hub.demo.run import prepare_environment

    _check_own_config()
    prepare_environment()
    os.chdir(PROJECT_DIR)
    args = [
        console_script("dagster"),
        "dev",
        "-w",
        str(PROJECT_DIR / "workspace.yaml"),
        "-h",
        host,
        "-p",
        str(port),
    ]
    click.echo(f"DAGSTER_HOME={os.environ['DAGSTER_HOME']}  UI at http://{host}:{port}")
    os.execvp(args[0], args)


_LIMITS = ConnectionLimits()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True)
@click.option("--workers", default=1, show_default=True, help="Worker processes (one per core).")
@click.option(
    "--header-timeout",
    default=_LIMITS.header_timeout_s,
    show_default=True,
    help="Seconds a client has to send a request's headers (then 408 and closed).",
)
@click.option(
    "--body-timeout",
    default=_LIMITS.body_timeout_s,
    show_default=True,
    help="Seconds a client has to send a request's body once its headers are in.",
)
def serve(host: str, port: int, workers: int, header_timeout: float, body_timeout: float) -> None:
    """Run the HTTP receiver: the site's signed lead webhook (and the other inbound endpoints)."""
    from dataclasses import replace

    from hub.server.run import serve as run_server

    settings = load_settings()
    if not settings.site.webhook_secret:
        # The tracking pixel needs no secret; the site webhook refuses every post without one.
        click.echo(
            "warning: HUB_SITE__WEBHOOK_SECRET is not set: site webhook posts will be refused", err=True
        )
    limits = replace(_LIMITS, header_timeout_s=header_timeout, body_timeout_s=body_timeout)
    run_server(settings, host, port, workers, limits)
