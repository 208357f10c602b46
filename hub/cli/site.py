"""Commands of the website source: import a leads export (a form tool's, a CRM's, or any other
with a mapping file) and show how the hub reads one."""

from __future__ import annotations

import json
from pathlib import Path

import click
from pydantic import ValidationError

from connectors.lead_exports import LeadMapping
from connectors.site import open_leads_export
from hub.leads import LeadRejected, lead_row_from_web, validate_web_lead
from hub.settings import load_settings
from hub.store.quarantine import describe_error

MAP_OPTION = click.option(
    "--map",
    "map_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML naming the file's columns (columns: {header: field}, day_first, timezone), for an "
    "export the hub does not recognize.",
)


def register(main: click.Group, inspect: click.Group) -> None:
    main.add_command(import_leads)
    inspect.add_command(inspect_leads_csv)


def _mapping(map_file: Path | None) -> LeadMapping | None:
    if map_file is None:
        return None
    try:
        return LeadMapping.load(map_file)
    except (ValueError, KeyError) as exc:
        raise click.BadParameter(str(exc), param_hint="--map") from None


@click.command("import-leads")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@MAP_OPTION
def import_leads(csv_file: Path, map_file: Path | None) -> None:
    """Import a leads export (CSV or TSV: Google Forms, Meta, Tilda, Contact Form 7 / Flamingo,
    Bitrix24, amoCRM, the site's own, or any other with --map) into the store; then resolve and
    route them. Importing the same file again writes nothing new."""
    from hub.ingest.site import sync_csv_file

    settings = load_settings()
    stats = sync_csv_file(
        settings.database_url,
        csv_file.resolve(),
        settings.default_region,
        mapping=_mapping(map_file),
        local_zone=settings.timezone,
    )
    click.echo(json.dumps(stats.as_dict(), ensure_ascii=False))


@click.command("leads-csv")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@MAP_OPTION
def inspect_leads_csv(csv_file: Path, map_file: Path | None) -> None:
    """Print how a leads export is read (its tool, encoding, delimiter and the order of its dates,
    with the reason), then each row as the lead the hub would write — with the E.164 phone and
    email it matches on — or why the row would be quarantined."""
    settings = load_settings()
    export = open_leads_export(csv_file, _mapping(map_file), settings.timezone)
    click.echo(json.dumps(export.describe(), ensure_ascii=False))
    for row_number, record in export.rows():
        from_file = record.pop("_time_from_file", False)
        try:
            row = lead_row_from_web(validate_web_lead(record), "site_csv", settings.default_region)
            out = {"row": row_number, **{k: v for k, v in row.items() if v is not None and k != "created_at"}}
            out["match_on"] = {"phone_e164": row["phone_e164"], "email": row["email"]}
            if from_file:
                out["time_from"] = "the file (the row has none)"
        except (ValidationError, LeadRejected) as exc:
            out = {"row": row_number, "quarantine": describe_error(exc)}
        click.echo(json.dumps(out, ensure_ascii=False, default=str))
