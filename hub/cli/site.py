"""Commands of the website source."""

from __future__ import annotations

import json
from pathlib import Path

import click
from pydantic import ValidationError

from connectors.site import read_leads_csv
from hub.leads import LeadRejected, lead_row_from_web
from hub.settings import load_settings
from hub.store.quarantine import describe_error
from schemas.site import WebLead


def register(main: click.Group, inspect: click.Group) -> None:
    main.add_command(import_leads)
    inspect.add_command(inspect_leads_csv)


@click.command("import-leads")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_leads(csv_file: Path) -> None:
    """Import a CSV export of website leads into the store (then resolve and route them)."""
    from hub.ingest.site import sync_csv_dir

    settings = load_settings()
    stats = sync_csv_dir(settings.database_url, _single_file_dir(csv_file), settings.default_region)
    click.echo(json.dumps(stats.as_dict(), ensure_ascii=False))


def _single_file_dir(csv_file: Path) -> Path:
    # The folder importer keeps a per-file cursor, so a file imported twice writes nothing new.
    return csv_file.resolve().parent


@click.command("leads-csv")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def inspect_leads_csv(csv_file: Path) -> None:
    """Print the leads parsed from a CSV export as JSON lines, or why each row would be quarantined."""
    region = load_settings().default_region
    for row_number, record in read_leads_csv(csv_file):
        try:
            row = lead_row_from_web(WebLead.model_validate(record), "site_csv", region)
            out = {"row": row_number, **{k: v for k, v in row.items() if v is not None and k != "created_at"}}
        except (ValidationError, LeadRejected) as exc:
            out = {"row": row_number, "quarantine": describe_error(exc)}
        click.echo(json.dumps(out, ensure_ascii=False, default=str))
