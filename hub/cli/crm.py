"""`hub crm`: sync the CRM backend now, and what the sync looks like (backlog, errors, last runs)."""

from __future__ import annotations

import sys

import click

from connectors.errors import ConnectorError
from hub.crm.registry import BACKENDS, backend_spec, build_backend
from hub.crm.sync import crm_status, pull_crm, push_crm
from hub.settings import load_settings


def register(main: click.Group, inspect: click.Group) -> None:
    main.add_command(crm)


@click.group(
    help="Sync with the company's CRM (HUB_CRM__BACKEND: " + ", ".join(b.name for b in BACKENDS) + ")."
)
def crm() -> None:
    pass


def _refused(exc: ConnectorError) -> None:
    click.echo(f"hub crm: {exc}", err=True)
    sys.exit(1)


@crm.command()
def sync() -> None:
    """Pull the CRM into the mirror, then push what the hub decided; print what was done."""
    settings = load_settings()
    backend_name = settings.crm.backend
    if not backend_spec(backend_name).external:
        click.echo(f"backend {backend_name}: the store is the CRM, nothing to sync (HUB_CRM__BACKEND)")
        return
    try:
        backend = build_backend(settings)
        pulled = pull_crm(settings.database_url, backend, settings.default_region)
        pushed = push_crm(settings.database_url, backend, settings)
    except ConnectorError as exc:
        _refused(exc)
        return
    mirror = pulled.mirror
    click.echo(
        f"pulled  {mirror.total()} entities in {pulled.batches} pages: "
        f"{sum(mirror.created.values())} new, {sum(mirror.updated.values())} changed, "
        f"{mirror.reassigned_in_crm} reassigned in the CRM, {mirror.stage_moves} stage moves"
    )
    push = pushed.push
    click.echo(
        f"pushed  {push.done} of {pushed.plan.total()} planned: {push.skipped} skipped, {push.failed} failed, "
        f"{push.retried} to retry, {push.deferred} waiting, {push.recovered} recovered"
    )
    usage = backend.usage()
    click.echo(
        f"requests {usage.requests} ({usage.throttled} throttled, {usage.waited_s:.1f} s rate-limit wait)"
    )
    for error in push.errors[:5]:
        click.echo(f"  error: {error}")
    if push.busy:
        click.echo("another push is running: this one did nothing")


@crm.command()
def status() -> None:
    """Backlog, failed operations and the last pull and push of the configured backend."""
    settings = load_settings()
    state = crm_status(settings.database_url, settings.crm.backend)
    age = state.oldest_pending_minutes()
    click.echo(f"backend   {state.backend} ({backend_spec(state.backend).title})")
    click.echo(f"backlog   {state.pending} pending" + (f", oldest {age:.0f} min" if age is not None else ""))
    click.echo(f"failed    {state.failed}")
    click.echo(f"links     {state.links} hub rows linked to CRM entities")
    for what, run in (("last pull", state.last_pull), ("last push", state.last_push)):
        click.echo(f"{what} {run.get('at', 'never')}")
    for key, error in state.recent_errors:
        click.echo(f"  {key}: {error}")
    if state.failed:
        sys.exit(1)


@crm.command()
@click.argument("backend", type=click.Choice([b.name for b in BACKENDS if b.external]))
@click.argument("code")
def connect(backend: str, code: str) -> None:
    """Exchange the authorization CODE the CRM gave its OAuth application for the first token
    pair, kept in the store (the refresh token rotates; the hub keeps the newest)."""
    from importlib import import_module

    settings = load_settings()
    module = import_module(backend_spec(backend).module)
    exchange = getattr(module, "connect", None)
    if exchange is None:
        click.echo(f"hub crm connect: {backend} has no OAuth connection step", err=True)
        sys.exit(2)
    try:
        exchange(settings, settings.database_url, code)
    except ConnectorError as exc:
        _refused(exc)
        return
    click.echo(f"connected {backend}: tokens kept in the store; `hub crm sync` uses and renews them")
