"""Ad cost per channel (and campaign) per day from a CSV export into `hub_ad_costs`; a row that
cannot be read goes to quarantine with the file, line and reason."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from connectors.text import decode_text
from hub.channels import ChannelRules, classify_channel
from hub.ingest.stats import IngestStats
from hub.store.models import AdCost
from hub.store.quarantine import quarantine
from hub.store.upsert import upsert

SOURCE = "ad_costs_csv"
DATE_COLUMNS = ("date", "day", "дата")
COST_COLUMNS = ("cost", "spend", "amount", "расход", "стоимость")
DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y")


class CostRowError(ValueError):
    """A row of the cost file that cannot be used; the message says which column and why."""


def _pick(row: dict[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if row.get(name, "").strip():
            return row[name].strip()
    return None


def parse_day(value: str) -> date:
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise CostRowError(f"date {value!r} is not YYYY-MM-DD or DD.MM.YYYY")


def parse_cost(value: str) -> Decimal:
    text = value.replace("\u00a0", "").replace(" ", "").replace(",", ".")
    try:
        cost = Decimal(text)
    except InvalidOperation:
        raise CostRowError(f"cost {value!r} is not a number") from None
    if cost < 0 or not cost.is_finite():
        raise CostRowError(f"cost {value!r} is negative or not finite")
    return cost.quantize(Decimal("0.01"))


def cost_row(row: dict[str, str], rules: ChannelRules) -> dict[str, Any]:
    """One `hub_ad_costs` row from a CSV row with date, cost and either channel or utm_source/utm_medium."""
    day_text = _pick(row, DATE_COLUMNS)
    if day_text is None:
        raise CostRowError(f"no date (one of the columns {', '.join(DATE_COLUMNS)})")
    cost_text = _pick(row, COST_COLUMNS)
    if cost_text is None:
        raise CostRowError(f"no cost (one of the columns {', '.join(COST_COLUMNS)})")
    channel = _pick(row, ("channel", "канал"))
    if channel is None:
        source, medium = _pick(row, ("utm_source",)), _pick(row, ("utm_medium",))
        if source is None and medium is None:
            raise CostRowError("no channel (column channel, or utm_source and utm_medium)")
        channel = classify_channel(source, medium, rules=rules)
    return {
        "day": parse_day(day_text),
        "channel": channel.strip().lower()[:100],
        "campaign": (_pick(row, ("campaign", "utm_campaign", "кампания")) or "")[:200],
        "cost": parse_cost(cost_text),
    }


def read_cost_rows(text: str) -> list[tuple[int, dict[str, str]]]:
    """(line number, row with lower-cased headers) for each data row; `,` or `;` separated."""
    first_line = text.splitlines()[0] if text.strip() else ""
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    reader.fieldnames = [name.strip().lower() for name in reader.fieldnames or []]
    return [(reader.line_num, {k: v or "" for k, v in row.items() if k}) for row in reader]


def import_costs(session: Session, path: Path, rules: ChannelRules) -> IngestStats:
    """Write the file's costs; the same (day, channel, campaign) again replaces the cost, so a
    corrected export can be imported over the old one. Several rows of one key are added up."""
    stats = IngestStats()
    totals: dict[tuple[date, str, str], dict[str, Any]] = {}
    for line, raw in read_cost_rows(decode_text(path.read_bytes())):
        stats.rows_in += 1
        try:
            row = cost_row(raw, rules)
        except CostRowError as exc:
            quarantine(
                session, SOURCE, raw, f"{path.name} line {line}: {exc}", source_ref=f"{path.name}:{line}"
            )
            stats.note_quarantined(str(exc))
            continue
        key = (row["day"], row["channel"], row["campaign"])
        if key in totals:
            totals[key]["cost"] += row["cost"]
        else:
            totals[key] = row
    upsert(session, AdCost, list(totals.values()), key=["day", "channel", "campaign"], update=["cost"])
    stats.written = len(totals)
    for row in list(totals.values())[: IngestStats.PREVIEW_ROWS]:
        stats.add_preview({**row, "day": row["day"].isoformat(), "cost": str(row["cost"])})
    return stats
