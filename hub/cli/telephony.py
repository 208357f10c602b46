"""Commands of the telephony source: re-read a date range from every provider without
duplicates, and show what the hub parses from an Asterisk CDR file."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from connectors.asterisk_cdr import parse_cdr_file
from hub.settings import load_settings
from hub.store.quarantine import describe_error


def register(main: click.Group, inspect: click.Group) -> None:
    backfill = main.commands.get("backfill")
    if not isinstance(backfill, click.Group):
        backfill = click.Group("backfill", help="Re-read a source for a date range; nothing is duplicated.")
        main.add_command(backfill)
    backfill.add_command(backfill_telephony)
    inspect.add_command(inspect_cdr)


def _day_start(day: date, zone: str) -> datetime:
    return datetime.combine(day, time.min, ZoneInfo(zone)).astimezone(UTC)


@click.command("telephony")
@click.option(
    "--since", "since_day", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First day, inclusive."
)
@click.option(
    "--until", "until_day", type=click.DateTime(["%Y-%m-%d"]), help="Last day, inclusive (default: now)."
)
def backfill_telephony(since_day: datetime, until_day: datetime | None) -> None:
    """Re-read calls of Twilio, Zadarma and the CDR folder from SINCE to UNTIL (days in the
    hub's time zone). Calls already stored are left as they are; the incremental cursors too."""
    from datetime import timedelta

    from hub.ingest.telephony import sync_telephony

    settings = load_settings()
    since = _day_start(since_day.date(), settings.timezone)
    until = _day_start(until_day.date() + timedelta(days=1), settings.timezone) if until_day else None
    if until is not None and until <= since:
        raise click.BadParameter("--until is before --since")
    results = sync_telephony(
        settings.database_url, settings.telephony, settings.default_region, settings.timezone, since, until
    )
    if not results:
        raise click.UsageError(
            "no telephony source is configured: set HUB_TELEPHONY__TWILIO__ACCOUNT_SID, "
            "HUB_TELEPHONY__ZADARMA__API_KEY or HUB_TELEPHONY__ASTERISK__CDR_DIR (docs/telephony.md)"
        )
    for provider, stats in results.items():
        click.echo(json.dumps({"provider": provider, **stats.as_dict()}, ensure_ascii=False, default=str))


@click.command("cdr")
@click.argument("cdr_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--timezone", default=None, help="The PBX's time zone (default: the CDR setting, else the hub's)."
)
def inspect_cdr(cdr_file: Path, timezone: str | None) -> None:
    """Print the calls parsed from an Asterisk CDR file as JSON lines — with the external party's
    E.164 number, the rep's extension and the tracking number the hub will match on — a reason
    line for each row that would be quarantined, and a last summary line (layout, rows, calls)."""
    from connectors.errors import PermanentSourceError
    from hub.ingest.telephony import cdr_options, e164_of

    settings = load_settings()
    try:
        options = cdr_options(settings.telephony, settings.timezone)
    except PermanentSourceError as exc:
        raise click.ClickException(str(exc)) from None
    if timezone:
        options.timezone = timezone
    region = settings.default_region
    rows = calls = rejected = 0
    layout = ""
    for batch in parse_cdr_file(cdr_file, options):
        rows += batch.rows
        layout = batch.layout
        for call in batch.calls:
            calls += 1
            external = call.caller if call.direction == "inbound" else call.callee
            out = call.model_dump(mode="json", exclude_defaults=False)
            out["match_on"] = {
                "external_e164": e164_of(external, region) if call.direction != "internal" else None,
                "extension": call.extension,
                "dialled_e164": e164_of(call.dialled_number, region) if call.dialled_number else None,
            }
            click.echo(json.dumps(out, ensure_ascii=False))
        for bad in batch.rejected:
            rejected += 1
            out = {"quarantine": describe_error(bad.reason), "where": bad.ref, "raw": bad.raw}
            click.echo(json.dumps(out, ensure_ascii=False))
    summary = {"file": str(cdr_file), "layout": layout, "rows": rows, "calls": calls, "quarantined": rejected}
    click.echo(json.dumps({"summary": summary}, ensure_ascii=False))
