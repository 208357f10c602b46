"""Commands of the telephony source: re-read a date range from every provider without
duplicates, and show what the hub parses from an Asterisk CDR file."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from connectors.asterisk_cdr import CdrOptions, parse_cdr_file
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
    """Print the calls parsed from an Asterisk CDR file as JSON lines, and a reason line for
    each row that would be quarantined."""
    settings = load_settings()
    options = CdrOptions(
        timezone=timezone or settings.telephony.asterisk.timezone or settings.timezone,
        extension_max_digits=settings.telephony.extension_max_digits,
        recording_base_url=settings.telephony.asterisk.recording_base_url,
    )
    for batch in parse_cdr_file(cdr_file, options):
        for call in batch.calls:
            click.echo(json.dumps(call.model_dump(mode="json", exclude_defaults=False), ensure_ascii=False))
        for rejected in batch.rejected:
            out = {"quarantine": describe_error(rejected.reason), "where": rejected.ref, "raw": rejected.raw}
            click.echo(json.dumps(out, ensure_ascii=False))
